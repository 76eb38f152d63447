"""Banded (local-window) attention in O(T * window) memory and time, for Mistral's sliding window (Jiang et al.,
2023, arXiv:2310.06825, sec. 2: query i attends keys i - W < j <= i) and ModernBERT's local layers (Warner et al.,
2024, arXiv:2412.13663, sec. 2.1.2: |i - j| <= W / 2).

A dense T x T mask makes a windowed layer cost what a global one does: T^2 scores, most of them masked. Here the
queries are cut into blocks of `block` rows; each block attends only the keys its rows can reach,

    keys of block [s, s + block) = [s - left, s + block + right)      (left, right: the window's reach)

so every block has the same key span (block + left + right), the blocks form one batch for SDPA, and the scores
held at once are T * (block + left + right) instead of T^2. The blocks' keys are an `unfold` of the zero-padded
keys; a (B|1, n_blocks, block, span) boolean mask keeps the exact band, the key padding and the rule that a query
always sees itself (`masks.build_mask`), so the result equals the dense path (tests/nn/test_banded.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Band:
    """Query i may attend key j when i - left <= j <= i + right (and key_valid[b, j], or j == i)."""

    left: int
    right: int
    key_valid: torch.Tensor | None = None  # (B, T) bool, None = no padding
    block: int = 128  # query rows per block

    @classmethod
    def for_window(cls, window: int, causal: bool, key_valid: torch.Tensor | None = None) -> "Band":
        """The band of a window as `build_mask` defines it: causal W keys including the query itself, or W // 2
        on each side; one block per window (at least 32 rows)."""
        left, right = (window - 1, 0) if causal else (window // 2, window // 2)
        return cls(left, right, key_valid, block=max(32, min(window, 512)))

    def dense(self, t: int, device) -> torch.Tensor:
        """The same mask as a dense (B|1, 1, T, T) boolean tensor (for the paths that need one)."""
        q = torch.arange(t, device=device)[:, None]  # (T, 1)
        k = torch.arange(t, device=device)[None, :]  # (1, T)
        allowed = ((k >= q - self.left) & (k <= q + self.right))[None, None]  # (1, 1, T, T)
        if self.key_valid is not None:
            allowed = allowed & self.key_valid[:, None, None, :t]  # (B, 1, T, T)
        return allowed | (k == q)[None, None]

    def block_mask(self, t: int, device) -> torch.Tensor:
        """(B|1, n_blocks, block, span) bool: which of each block's keys each of its queries may attend."""
        nb, span = -(-t // self.block), self.block + self.left + self.right
        s = torch.arange(nb, device=device)[:, None, None] * self.block  # (nb, 1, 1) first query of each block
        q = s + torch.arange(self.block, device=device)[None, :, None]  # (nb, block, 1) query positions
        k = s - self.left + torch.arange(span, device=device)[None, None, :]  # (nb, 1, span) key positions
        inside = (k >= 0) & (k < t)
        allowed = (inside & (k >= q - self.left) & (k <= q + self.right))[None]  # (1, nb, block, span)
        if self.key_valid is not None:
            valid = self._blocks(self.key_valid[:, None, :t, None].to(torch.uint8), t).bool()  # (B, 1, nb, span, 1)
            allowed = allowed & valid[:, 0, :, None, :, 0]  # (B, nb, block, span)
        return allowed | (k == q)[None]  # a query always sees itself (rows past T too: never read, never NaN)

    def _blocks(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """x (B, H, T, D) -> (B, H, n_blocks, span, D): each query block's keys, zeros outside [0, T)."""
        nb, span = -(-t // self.block), self.block + self.left + self.right
        pad_right = nb * self.block + self.right - t
        x = F.pad(x, (0, 0, self.left, pad_right))  # (B, H, left + nb * block + right, D)
        return x.unfold(2, span, self.block).transpose(-1, -2)  # (B, H, nb, span, D), a view


def banded_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, band: Band, scale: float,
                     dropout_p: float = 0.0) -> torch.Tensor:
    """q (B, H, T, Dh), k/v (B, Hkv, T, Dh) (self-attention, same positions) -> (B, H, T, Dh)."""
    b, h, t, dh = q.shape
    hkv, nb = k.shape[1], -(-t // band.block)
    span = band.block + band.left + band.right
    qb = F.pad(q, (0, 0, 0, nb * band.block - t)).view(b, h, nb, band.block, dh)  # (B, H, nb, block, Dh)
    qb = qb.transpose(1, 2).reshape(b * nb, h, band.block, dh)  # (B * nb, H, block, Dh)
    kb = band._blocks(k, t).transpose(1, 2).reshape(b * nb, hkv, span, dh)  # (B * nb, Hkv, span, Dh)
    vb = band._blocks(v, t).transpose(1, 2).reshape(b * nb, hkv, span, dh)
    mask = band.block_mask(t, q.device)  # (B|1, nb, block, span)
    mask = mask.expand(b, nb, band.block, span).reshape(b * nb, 1, band.block, span)
    out = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask, dropout_p=dropout_p, scale=scale,
                                         enable_gqa=hkv != h)  # (B * nb, H, block, Dh)
    out = out.view(b, nb, h, band.block, dh).transpose(1, 2).reshape(b, h, nb * band.block, dh)
    return out[:, :, :t]  # (B, H, T, Dh)
