"""Routing locality of a mixture of experts (Jiang et al., "Mixtral of Experts", 2024, sec. 5, Table 5):
how often consecutive tokens go to the same expert.

- same first choice: P(top1(t) == top1(t+1)); random baseline 1/E (12.5% for E = 8);
- same among first-or-second choices: P(top2(t) and top2(t+1) share an expert); random baseline for
  top-2 of 8: 1 - C(6,2)/C(8,2) = 1 - (6/8)(5/7) ~ 46.4%.
Source text is split into kinds with Python's own `tokenize`: comments and docstrings, string
literals, and code.
"""

from __future__ import annotations

import io
import math
import tokenize

import torch

KINDS = ("code", "comment/docstring", "string")


def random_baselines(n_experts: int, top_k: int) -> tuple[float, float]:
    """(same first choice, any shared expert among the top-k) for uniformly random routing."""
    disjoint = math.comb(n_experts - top_k, top_k) / math.comb(n_experts, top_k)
    return 1.0 / n_experts, 1.0 - disjoint


def locality(chosen: torch.Tensor, pair_ok: torch.Tensor | None = None) -> tuple[float, float]:
    """chosen (N, k) experts of N consecutive tokens, first choice first; pair_ok (N-1,) bool selects the
    pairs (t, t+1) to count. Returns (same first choice, any shared expert) as fractions."""
    a, b = chosen[:-1], chosen[1:]  # (N-1, k)
    same_first = a[:, 0] == b[:, 0]
    shared = (a[:, :, None] == b[:, None, :]).any(-1).any(-1)
    if pair_ok is not None:
        same_first, shared = same_first[pair_ok], shared[pair_ok]
    if same_first.numel() == 0:
        return float("nan"), float("nan")
    return same_first.float().mean().item(), shared.float().mean().item()


def char_kinds(source: str) -> list[int]:
    """The kind (index into KINDS) of every character of a Python source file."""
    kinds = [0] * len(source)
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(rc):
        return starts[rc[0] - 1] + rc[1]

    try:
        toks = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return kinds
    significant = [t for t in toks if t.type not in (tokenize.NL, tokenize.COMMENT)]
    for i, t in enumerate(significant):
        if t.type != tokenize.STRING:
            continue
        before = significant[i - 1].type if i else tokenize.NEWLINE
        after = significant[i + 1].type if i + 1 < len(significant) else tokenize.NEWLINE
        docstring = before in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING) and \
            after == tokenize.NEWLINE
        kind = 1 if docstring else 2
        for c in range(offset(t.start), min(offset(t.end), len(kinds))):
            kinds[c] = kind
    for t in toks:
        if t.type == tokenize.COMMENT:
            for c in range(offset(t.start), min(offset(t.end), len(kinds))):
                kinds[c] = 1
    return kinds
