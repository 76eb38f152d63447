"""Unpadded (packed) execution of ragged batches.

A (B, T) batch with padding is run as its N real tokens, (N, D): embeddings, norms, linear layers and the
feed-forward never touch a padding token. Attention on CPU/SDPA needs the (B, H, T, Dh) layout, so the
attention part scatters its packed q/k/v into it, attends with the key-padding mask, and gathers the real
rows back (the same idea as ModernBERT's unpadding, Warner et al., 2024, sec. 2.1.2, without a
variable-length kernel).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Packing:
    indices: torch.Tensor  # (N,) flat positions of the real tokens in the (B * T) layout
    batch: int
    seqlen: int
    key_valid: torch.Tensor  # (B, T) bool

    @classmethod
    def from_mask(cls, attention_mask: torch.Tensor) -> "Packing":
        valid = attention_mask.bool()
        return cls(valid.flatten().nonzero().squeeze(1), valid.shape[0], valid.shape[1], valid)

    def unpad(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) -> (N, ...)"""
        return x.flatten(0, 1)[self.indices]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) -> (B, T, ...), zeros at padding."""
        out = x.new_zeros(self.batch * self.seqlen, *x.shape[1:])
        out[self.indices] = x
        return out.view(self.batch, self.seqlen, *x.shape[1:])
