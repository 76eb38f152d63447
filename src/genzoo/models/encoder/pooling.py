"""Sentence embeddings from token states: the pooling modes of sentence-transformers' `Pooling` module
(Reimers & Gurevych, "Sentence-BERT", 2019, arXiv:1908.10084, sec. 3: CLS token, mean, max), plus its
weighted mean (position-weighted, Muennighoff, "SGPT", 2022, arXiv:2202.08904, sec. 3.1) and last token."""

from __future__ import annotations

import torch

from ...registry import Registry

POOLING: Registry = Registry("pooling")


@POOLING.register("cls")
def cls_pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, T, D), (B, T) -> (B, D)
    return h[:, 0]


@POOLING.register("mean")
def mean_pool(h, mask):
    m = mask[..., None].to(h.dtype)  # (B, T, 1)
    return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)


@POOLING.register("mean-sqrt-len")
def mean_sqrt_len_pool(h, mask):
    """The sum over real tokens divided by the square root of their number (sentence-transformers' mean_sqrt_len)."""
    m = mask[..., None].to(h.dtype)  # (B, T, 1)
    return (h * m).sum(1) / m.sum(1).clamp(min=1e-9).sqrt()


@POOLING.register("max")
def max_pool(h, mask):
    """The largest value of each feature over the real tokens (padding set to -1e9 first, as sentence-transformers)."""
    return h.masked_fill(mask[..., None] == 0, -1e9).max(dim=1).values


@POOLING.register("weighted-mean")
def weighted_mean_pool(h, mask):
    """Token t (1-based) weighs t: later tokens, which have seen more of the text, count more (SGPT eq. 1)."""
    w = torch.arange(1, h.shape[1] + 1, device=h.device, dtype=h.dtype)[None, :, None] * mask[..., None].to(h.dtype)
    return (h * w).sum(1) / w.sum(1).clamp(min=1e-9)


@POOLING.register("last-token")
def last_token_pool(h, mask):
    """The state of each row's last real token, whichever side the padding is on."""
    t = h.shape[1]
    idx = t - 1 - mask.to(torch.long).flip(1).argmax(1)  # (B,) the last column where the mask is 1
    return h[torch.arange(h.shape[0], device=h.device), idx]


POOLINGS = tuple(POOLING.names())
