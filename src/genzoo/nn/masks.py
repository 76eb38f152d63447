"""Attention masks, built once per forward and shared by every layer with the same window.

An `AttnMask` is either "no mask" (``mask is None``; ``is_causal`` tells SDPA to apply its own
causal mask without materialising one, the fast path) or an explicit boolean (B|1, 1, Tq, Tk) mask
(True = attend), optionally combined with an additive float bias (B|1, H|1, Tq, Tk) such as ALiBi.

Query i (absolute position start + i) may attend key j when
  causal:   j <= start + i
  window W: j >  start + i - W   (causal: W keys including itself, as Mistral's sliding window)
            |j - (start + i)| <= W // 2   (bidirectional: W // 2 on each side, as ModernBERT's local layers)
  padding:  key_valid[b, j]
A query with no key left (a left-padding position) attends to itself, so no row is empty and no NaN
can appear; such rows are never read by real tokens.

A window over a long self-attention (no cache offset, Tk >= BANDED_FROM windows) is kept as a `banded.Band`
instead of a dense mask: the SDPA backend then runs banded attention in O(T * window) memory and time, and
`dense()` materialises the same mask for the paths that need one (eager, extra keys, a score bias).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .banded import Band

BANDED_FROM = 8  # run a window banded from Tk >= BANDED_FROM * window keys (below, dense SDPA is as fast)


@dataclass
class AttnMask:
    mask: torch.Tensor | None = None  # bool (B|1, 1, Tq, Tk), True = attend
    bias: torch.Tensor | None = None  # float (B|1, H|1, Tq, Tk), added to the scores
    is_causal: bool = False  # with mask None: SDPA's own causal mask (Tq == Tk)
    band: Band | None = None  # with mask None: a local window kept banded (self-attention, Tq == Tk)

    def dense(self, tq: int, tk: int, device) -> torch.Tensor | None:
        """The boolean mask, materialised if it was implicit (needed when keys are prepended)."""
        if self.mask is not None:
            return self.mask
        if self.band is not None:
            return self.band.dense(tk, device)
        if self.is_causal:
            return torch.ones(tq, tk, dtype=torch.bool, device=device).tril(tk - tq)[None, None]
        return None

    def with_bias(self, bias: torch.Tensor, tq: int, tk: int, device) -> "AttnMask":
        """This mask plus an additive score bias (ALiBi, T5, DeBERTa). The implicit causal mask is materialised
        first: a float bias goes to SDPA as attn_mask, which cannot be combined with is_causal."""
        return AttnMask(mask=self.dense(tq, tk, device), bias=bias if self.bias is None else self.bias + bias)


def build_mask(
    tq: int,
    tk: int,
    start: int,
    *,
    causal: bool,
    window: int | None = None,
    key_valid: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    self_attention: bool = True,
) -> AttnMask:
    """The mask for Tq queries at positions [start, start + Tq) over keys [0, Tk).

    key_valid: (B, Tk) bool or None (no padding). self_attention: queries and keys share positions
    (False for cross-attention, where the padding-row rule does not apply). The implicit fast path is taken whenever the result
    is plain causal (or no mask at all): no padding, window absent or covering every key.
    """
    window_bites = window is not None and (tk > window if causal else tk - 1 > window // 2)
    if window_bites and self_attention and tq == tk and start == 0 and tk >= BANDED_FROM * window:
        return AttnMask(band=Band.for_window(window, causal, key_valid))
    if key_valid is None and not window_bites:
        if not causal or tq == 1:  # one query at the end sees every cached key
            return AttnMask()
        if tq == tk and start == 0:
            return AttnMask(is_causal=True)
    q = torch.arange(start, start + tq, device=device)[:, None]  # (Tq, 1)
    k = torch.arange(tk, device=device)[None, :]  # (1, Tk)
    allowed = torch.ones(tq, tk, dtype=torch.bool, device=device)
    if causal:
        allowed = allowed & (k <= q)
    if window_bites:
        allowed = allowed & ((k > q - window) if causal else ((k - q).abs() <= window // 2))
    allowed = allowed[None, None]  # (1, 1, Tq, Tk)
    if key_valid is not None:
        allowed = allowed & key_valid[:, None, None, :tk]  # (B, 1, Tq, Tk)
    if self_attention:
        allowed = allowed | (k == q)[None, None]  # a query always sees itself: no empty row
    return AttnMask(mask=allowed)
