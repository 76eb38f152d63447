"""Unpadded (packed) execution of ragged batches.

A (B, T) batch with padding is run as its N real tokens, (N, D): embeddings, norms, linear layers and the
feed-forward never touch a padding token (as ModernBERT's unpadding, Warner et al., 2024, sec. 2.1.2).
Attention on SDPA needs a (batch, heads, length, head_dim) layout, so the rows are sorted by length and
split into a few groups, each padded only to its own longest row: attention cost follows sum(L_i^2) over
rows rather than B * T^2, without a variable-length kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import InputError
from .masks import AttnMask, build_mask


@dataclass
class Group:
    """Rows of similar length, laid out as (rows, seqlen)."""

    rows: torch.Tensor  # (Bg,) batch rows in this group
    seqlen: int  # the group's longest row
    token_idx: torch.Tensor  # (Ng,) positions of the group's tokens in the packed (N,) order
    flat_idx: torch.Tensor  # (Ng,) their positions in the group's (Bg * seqlen) layout
    key_valid: torch.Tensor | None  # (Bg, seqlen) bool, None when every row fills the group

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Packed (N, ...) -> this group's (Bg, seqlen, ...), zeros at padding."""
        out = x.new_zeros(len(self.rows) * self.seqlen, *x.shape[1:])
        out[self.flat_idx] = x[self.token_idx]
        return out.view(len(self.rows), self.seqlen, *x.shape[1:])

    def unpad(self, x: torch.Tensor) -> torch.Tensor:
        """(Bg, seqlen, ...) -> (Ng, ...), in the order of token_idx."""
        return x.flatten(0, 1)[self.flat_idx]


@dataclass
class Packing:
    indices: torch.Tensor  # (N,) flat positions of the real tokens in the (B * T) layout
    batch: int
    seqlen: int
    key_valid: torch.Tensor  # (B, T) bool
    groups: list[Group] = field(default_factory=list)

    @classmethod
    def from_mask(cls, attention_mask: torch.Tensor, n_groups: int = 4) -> "Packing":
        valid = attention_mask.bool()
        b, t = valid.shape
        lengths = valid.sum(dim=1)  # (B,)
        offsets = lengths.cumsum(0) - lengths  # where each row's tokens start in the packed order
        order = torch.argsort(lengths, stable=True)
        groups = []
        for rows in order.chunk(min(n_groups, b)):
            lens = lengths[rows]
            seqlen = int(lens.max())
            token_idx = torch.cat([torch.arange(int(o), int(o) + int(n)) for o, n in zip(offsets[rows], lens)])
            flat_idx = torch.cat([torch.arange(int(n)) + j * seqlen for j, n in enumerate(lens)])
            kv = valid[rows, :seqlen]
            groups.append(Group(rows, seqlen, token_idx.to(valid.device), flat_idx.to(valid.device),
                                None if bool(kv.all()) else kv))
        return cls(valid.flatten().nonzero().squeeze(1), b, t, valid, groups)

    def unpad(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) -> (N, ...)"""
        return x.flatten(0, 1)[self.indices]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) -> (B, T, ...), zeros at padding."""
        out = x.new_zeros(self.batch * self.seqlen, *x.shape[1:])
        out[self.indices] = x
        return out.view(self.batch, self.seqlen, *x.shape[1:])

    def masks(self, causal: bool, window: int | None, bias: torch.Tensor | None = None) -> list[AttnMask]:
        """Every group's attention mask (one per group) for layers with this window; bias (1|B, H|1, T, T), a
        position bias over the padded length, is cut to each group's length; a per-row bias (B > 1) also to the
        group's rows, in the group's order."""
        if bias is not None and bias.shape[0] not in (1, self.batch):
            raise InputError(f"Packing.masks: bias batch {bias.shape[0]} is neither 1 nor the batch {self.batch}")
        out = []
        for g in self.groups:
            t = g.seqlen
            m = build_mask(t, t, 0, causal=causal, window=window, key_valid=g.key_valid, device=self.indices.device)
            if bias is not None:
                rows = bias if bias.shape[0] == 1 else bias[g.rows]  # (1|Bg, H|1, T, T)
                m = m.with_bias(rows[..., :t, :t], t, t, self.indices.device)
            out.append(m)
        return out
