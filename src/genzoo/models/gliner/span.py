"""Span representations (`SPAN_REPS`): word states -> one vector per (start, end) span.

markerV0 (GLiNER, Zaratiana et al., 2023, arXiv 2311.08526, sec. 2.2, eq. 2, as the `gliner` package implements
it): each word is projected twice by a two-layer ReLU MLP, once as a span start and once as a span end; a span
(i, j) is

    out_project(relu(cat(project_start(h)[i], project_end(h)[j])))

with out_project a ReLU MLP 2D -> 4D -> D. Its first layer acts on a concatenation, so it splits into a start
half and an end half, W [s; e] + b = W_s s + W_e e + b: `start_in` / `end_in` below apply them once per word, and
a span costs an addition of two (4D,) rows instead of a (2D x 4D) product. The checkpoint holds the fused
(4D, 2D) matrix; `hf.py` splits and joins it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...nn import MLP, make_dropout
from ...registry import Registry

SPAN_REPS: Registry = Registry("span representation")


def projection(dim: int, out: int, dropout: float) -> MLP:
    """GLiNER's projection layer: Linear(dim, 4 out), ReLU, dropout, Linear(4 out, out)."""
    return MLP(nn.Linear(dim, 4 * out), nn.Linear(4 * out, out), "relu", dropout)


@SPAN_REPS.register("markerV0")
class MarkerV0(nn.Module):
    """Start/end marker span representation, every width 1..max_width (flat over the spans asked for)."""

    def __init__(self, dim: int, max_width: int, dropout: float = 0.0):
        super().__init__()
        self.max_width = max_width
        self.project_start = projection(dim, dim, dropout)
        self.project_end = projection(dim, dim, dropout)
        # out_project = Linear(2D, 4D), ReLU, dropout, Linear(4D, D), its first layer as its two halves
        self.start_in = nn.Linear(dim, 4 * dim)
        self.end_in = nn.Linear(dim, 4 * dim, bias=False)
        self.drop = make_dropout(dropout)
        self.out = nn.Linear(4 * dim, dim)

    def hidden(self, h: torch.Tensor, rows: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        """h (B, W, D) word states; rows, starts, ends (N,): each span's batch row and its first and last word
        (inclusive) -> the hidden layer of out_project (N, 4D)."""
        s = self.start_in(F.relu(self.project_start(h)))  # (B, W, 4D)
        e = self.end_in(F.relu(self.project_end(h)))  # (B, W, 4D)
        return self.drop(F.relu(s[rows, starts] + e[rows, ends]))  # (N, 4D): out_project's first layer on cat(s, e)

    def forward(self, h: torch.Tensor, rows: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        """-> span representations (N, D)."""
        return self.out(self.hidden(h, rows, starts, ends))

    def scores(self, h: torch.Tensor, types: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Span . type scores (B, W, K, C) of every span (start i, width k + 1) against the types (B, C, D) of its
        row; -inf where the span runs past its row's `lengths` (B,).

        Width by width, the spans (i, i + k) of a batch are the contiguous slices s[:, :W-k] + e[:, k:] (no
        gather). And out(z) . q = z . (W_out^T q) + b_out . q: the last layer maps each row's C types into the
        hidden space once, instead of every span into D, so a span costs 4D x C instead of 4D x D. Exact (dropout
        acts on z, before it); taken when `out` is a plain nn.Linear (a quantised or adapter-wrapped `out` runs its
        own forward on every span)."""
        b, w, _ = h.shape
        k_max = self.max_width
        s = self.start_in(F.relu(self.project_start(h)))  # (B, W, 4D)
        e = self.end_in(F.relu(self.project_end(h)))  # (B, W, 4D)
        fused = type(self.out) is nn.Linear
        if fused:
            q4 = (types @ self.out.weight).transpose(1, 2)  # (B, 4D, C)
            qb = (types @ self.out.bias)[:, None] if self.out.bias is not None else 0.0  # (B, 1, C)
        out = h.new_full((b, w, k_max, types.shape[1]), float("-inf"))
        for k in range(min(k_max, w)):
            z = self.drop(F.relu(s[:, : w - k] + e[:, k:]))  # (B, W - k, 4D): the spans (i, i + k)
            out[:, : w - k, k] = z @ q4 + qb if fused else self.out(z) @ types.transpose(1, 2)  # (B, W - k, C)
        start = torch.arange(w, device=h.device)[None, :, None]  # (1, W, 1)
        width = torch.arange(k_max, device=h.device)[None, None, :]  # (1, 1, K)
        return out.masked_fill(~(start + width < lengths[:, None, None])[..., None], float("-inf"))
