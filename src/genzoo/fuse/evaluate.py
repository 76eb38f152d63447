"""Bits per character: a language model's negative log-likelihood over sequences, in bits, divided by the
characters its predicted tokens cover. Comparable across tokenizers, unlike a per-token loss."""

from __future__ import annotations

import math

import torch

from ..modes import evaluating


@torch.no_grad()
def nll_sums(model, rows: list[list[int]], surfaces: list[str], batch_size: int = 16) -> dict:
    """Sum of -log p(token t+1 | tokens <= t) in nats over every sequence (each at least 2 tokens, at most the
    model's max_positions), the number of tokens predicted and the characters they cover."""
    device = next(model.parameters()).device
    nll, tokens, chars = 0.0, 0, 0
    with evaluating(model) as net:
        for start in range(0, len(rows), batch_size):
            group = rows[start: start + batch_size]
            width = max(len(r) for r in group)
            ids = torch.zeros(len(group), width, dtype=torch.long)
            labels = torch.full((len(group), width - 1), -100, dtype=torch.long)
            for i, r in enumerate(group):
                ids[i, : len(r)] = torch.tensor(r)
                labels[i, : len(r) - 1] = torch.tensor(r[1:])
            logits = net(ids[:, :-1].to(device)).logits.float()  # (B, T-1, V); right padding: causal, harmless
            nll += float(torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten().to(device),
                                                           ignore_index=-100, reduction="sum"))
            tokens += int((labels != -100).sum())
            chars += sum(len(surfaces[t]) for r in group for t in r[1:])
    return {"nll": nll, "tokens": tokens, "chars": chars}


def bits_per_char(sums: dict) -> float:
    return sums["nll"] / math.log(2) / max(sums["chars"], 1)


def merge(*sums: dict) -> dict:
    return {k: sum(s[k] for s in sums) for k in ("nll", "tokens", "chars")}
