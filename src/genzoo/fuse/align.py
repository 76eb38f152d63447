"""Token alignment across tokenizers (FuseLLM, Wan et al. 2024, arXiv 2401.10491, sec. 3.3 and appendix A).

Two tokenizations of the same text are aligned by dynamic time warping (DTW) on the edit distance of their
token surfaces (`surface.py`) with the space markers stripped, as FuseLLM's `dist_fn` strips "Ġ" / "▁" before
`editdistance.eval`: " def" and "def" cost 0, so a word is paired with the same word whatever the tokenizer does
with the space before it. The path is the least-cost monotone one through the (source token, target token) cost
matrix - source rows, as FuseLLM calls `dtw(blending_tokens, base_tokens)` - from the first pair to the last,
and ties in its back-trace are broken in FuseLLM's order: the diagonal, then one source token back, then one
target token back. A target token on the path with exactly one source token is *aligned* when the two match
(on the full surfaces, spaces included, as FuseLLM compares the tokens themselves):

  exact  the surfaces are equal;
  mined  the source token maps to the target token in the vocabulary mapping: its exact surface in the target
         vocabulary if there is one, else the target token at minimum edit distance (MinED).
An aligned target position takes the source's top-k next-token distribution at the aligned source position,
each source id mapped to a target id by the same vocabulary mapping (exact: ids with no exact match are
dropped) and renormalised to sum to 1; every other position falls back to the one-hot distribution of the gold
next target token. Where FuseLLM's code falls back to the *current* token, we use the next one, the token the
position predicts, so a fallback position asks exactly what the language-modelling loss asks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError, InputError
from ..registry import Registry

ALIGNMENTS: Registry = Registry("token alignment")  # name -> which vocabulary mapping decides a match
ALIGNMENTS.register("exact", "exact")
ALIGNMENTS.register("mined", "mined")

_BIG = np.int64(1) << 60  # "infinite" path cost that cannot overflow when a few are added


def edit_distances(a: list[str], b: list[str]) -> np.ndarray:
    """Levenshtein distance (unit insert / delete / substitute) of every pair: (len(a), len(b)) int64.
    Computed by rapidfuzz (C++); tests check it against the textbook dynamic programme."""
    try:
        from rapidfuzz.distance import Levenshtein
        from rapidfuzz.process import cdist
    except ImportError:
        raise ConfigError("FuseLLM's token alignment computes edit distances with rapidfuzz: "
                          "pip install 'genzoo[fuse]' (or rapidfuzz)") from None

    if not a or not b:
        return np.zeros((len(a), len(b)), dtype=np.int64)
    return cdist(a, b, scorer=Levenshtein.distance, dtype=np.int32).astype(np.int64)


def spaceless(surface: str) -> str:
    """A token surface with its spaces removed: what DTW compares. The surfaces hold the space that "Ġ" and "▁"
    mark as " " (`surface.py`); FuseLLM removes those markers wherever they are in the token
    (`a.replace(special_token, "")`), so every space goes, leading or not. Tabs and newlines stay."""
    return surface.replace(" ", "")


def alignment_cost(target: list[str], source: list[str]) -> np.ndarray:
    """The DTW cost matrix: edit distance of every (source token, target token) pair of surfaces with their
    spaces removed, (len(source), len(target)) int64 (source rows, as FuseLLM's `dtw(blending, base)`)."""
    return edit_distances([spaceless(s) for s in source], [spaceless(t) for t in target])


def dtw_path(cost: np.ndarray) -> list[tuple[int, int]]:
    """The least-cost monotone path from (0, 0) to (n - 1, m - 1) with steps (1, 1), (1, 0), (0, 1) through an
    integer cost matrix (n, m) (Sakoe & Chiba 1978). The back-trace from (n - 1, m - 1) takes the first least
    of (i - 1, j - 1), (i - 1, j), (i, j - 1): the diagonal, then a row back, then a column back, as FuseLLM's
    `dtw` (its np.argmin over [diag, up, left]); with `alignment_cost`'s source rows, a source token back
    before a target token back.

    Row i of the accumulated cost D is one vectorised step: with M[j] = cost[i, j] + min(D[i-1, j-1], D[i-1, j])
    and C the running sum of cost[i], D[i, j] = min(M[j], cost[i, j] + D[i, j-1]) = C[j] + min_{k<=j}(M[k] - C[k]).
    """
    cost = np.asarray(cost, dtype=np.int64)
    if cost.ndim != 2 or 0 in cost.shape:
        raise InputError(f"dtw_path needs a non-empty (n, m) cost matrix, got shape {tuple(cost.shape)}")
    n, m = cost.shape
    acc = np.empty((n, m), dtype=np.int64)
    up = np.full(m, _BIG)  # D[i-1, j]; the virtual row -1 is only reachable at its corner
    diag = np.full(m, _BIG)  # D[i-1, j-1]
    diag[0] = 0
    for i in range(n):
        best = cost[i] + np.minimum(diag, up)  # M: arrive from row i-1
        run = np.cumsum(cost[i])  # C
        acc[i] = run + np.minimum.accumulate(best - run)
        up = acc[i]
        diag = np.concatenate(([_BIG], acc[i, :-1]))
    path = [(n - 1, m - 1)]
    i, j = n - 1, m - 1
    while i > 0 or j > 0:
        options = (acc[i - 1, j - 1] if i and j else _BIG, acc[i - 1, j] if i else _BIG, acc[i, j - 1] if j else _BIG)
        move = int(np.argmin(options))  # first minimum: diagonal, then up, then left
        i, j = (i - 1, j - 1) if move == 0 else (i - 1, j) if move == 1 else (i, j - 1)
        path.append((i, j))
    return path[::-1]


def aligned_source(target: list[str], source: list[str]) -> np.ndarray:
    """For each target token, the one source token DTW pairs it with, or -1 when it pairs with several:
    (len(target),) int64. target, source: token surfaces (`surface.surfaces`), spaces included."""
    if not target or not source:
        raise InputError(f"cannot align an empty token sequence (target {len(target)} tokens, source {len(source)})")
    path = dtw_path(alignment_cost(target, source))  # (source j, target i) pairs
    count = np.zeros(len(target), dtype=np.int64)
    partner = np.full(len(target), -1, dtype=np.int64)
    for j, i in path:
        count[i] += 1
        partner[i] = j
    partner[count != 1] = -1
    return partner


@dataclass
class VocabMap:
    """Source id -> target id: `exact` (-1 where the surface is not in the target vocabulary) and `mined`
    (exact, else the target token at minimum edit distance; the lowest id among ties)."""

    exact: torch.Tensor  # (V_source,) int64
    mined: torch.Tensor  # (V_source,) int64

    def get(self, name: str) -> torch.Tensor:
        return getattr(self, ALIGNMENTS.get(name))

    @property
    def overlap(self) -> int:
        """How many source ids have an exact surface match in the target vocabulary."""
        return int((self.exact >= 0).sum())


def vocab_map(source: list[str], target: list[str], source_special: set[int] = frozenset(),
              target_special: set[int] = frozenset(), rows: int = 512) -> VocabMap:
    """The vocabulary mapping between two lists of surfaces (index = id). Special tokens map only to a special
    token of the same text and are never a MinED target. The edit distances are computed `rows` at a time."""
    first: dict[str, int] = {}
    for i, s in enumerate(target):
        first.setdefault(s, i)
    exact = torch.full((len(source),), -1, dtype=torch.long)
    for i, s in enumerate(source):
        t = first.get(s, -1)
        if t >= 0 and (i in source_special) == (t in target_special):
            exact[i] = t
    mined = exact.clone()
    candidates = [i for i in range(len(target)) if i not in target_special and target[i]]
    todo = [i for i in range(len(source)) if exact[i] < 0 and i not in source_special]
    if not candidates:
        raise ConfigError("the target vocabulary has no ordinary (non-special) token to map to")
    cand = np.asarray(candidates)
    for k in range(0, len(todo), rows):
        ids = todo[k: k + rows]
        dist = edit_distances([source[i] for i in ids], [target[i] for i in candidates])  # (rows, V_target')
        mined[ids] = torch.from_numpy(cand[dist.argmin(axis=1)])
    return VocabMap(exact, mined)


def map_distributions(partner: np.ndarray, target_ids: torch.Tensor, source_ids: torch.Tensor,
                      topk_ids: torch.Tensor, topk_probs: torch.Tensor, vmap: torch.Tensor, match: torch.Tensor):
    """The source's top-k next-token distributions carried onto the target positions (the last target token
    predicts nothing and gets none).

    partner (n,): `aligned_source`; target_ids (n,); source_ids (m,); topk_ids, topk_probs (m, k): the source's
    top-k next-token ids and probabilities at each of its positions; vmap (V_source,): the mapping that carries
    the distribution (-1: dropped); match (V_source,): the mapping that decides whether a pair is aligned.
    Returns ids (n - 1, k) int64, probs (n - 1, k) float32 summing to 1 per row (an id may repeat: its
    probability is the sum), aligned (n - 1,) bool: True where the source's distribution was used.
    """
    n, m, k = len(target_ids), len(source_ids), topk_ids.shape[1]
    pos = torch.as_tensor(partner[: n - 1], dtype=torch.long)  # (n-1,)
    # a pair is usable when the source position exists and predicts a token inside the text (not its last one)
    usable = (pos >= 0) & (pos < m - 1)
    j = pos.clamp(0, m - 1)
    aligned = usable & (match[source_ids[j]] == target_ids[: n - 1])
    ids = vmap[topk_ids[j]]  # (n-1, k)
    probs = topk_probs[j].float() * (ids >= 0)
    total = probs.sum(-1)  # (n-1,)
    aligned &= total > 0  # nothing of the top k has a target id
    gold = target_ids[1:n]  # the fallback: one-hot on the next target token
    fallback_ids = torch.zeros(n - 1, k, dtype=torch.long)
    fallback_ids[:, 0] = gold
    fallback_probs = torch.zeros(n - 1, k)
    fallback_probs[:, 0] = 1.0
    a = aligned[:, None]
    out_ids = torch.where(a, ids.clamp(min=0), fallback_ids)
    out_probs = torch.where(a, probs / total.clamp(min=1e-30)[:, None], fallback_probs)
    return out_ids, out_probs, aligned
