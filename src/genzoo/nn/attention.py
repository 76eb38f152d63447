"""Multi-head attention (Vaswani et al., 2017, eq. 1: softmax(Q K^T / sqrt(d_k)) V), with grouped-query
(Ainslie et al., 2023) and multi-query (Shazeer, 2019) attention as n_kv_heads < n_heads.

The part takes its projections, position module, softmax variant and optional output gate (`gates.py`, gated
attention) as arguments. Two backends:
- ``sdpa``: `torch.nn.functional.scaled_dot_product_attention`, with `is_causal` and no materialised
  mask whenever the mask allows it (see `masks.build_mask`), native GQA, softmax-off-by-one
  through a prepended zero key/value, and a long local window run banded (`banded.py`, O(T * window));
- ``eager``: the formula written out, the reference the fast path is tested against; it also runs
  softmax variants SDPA cannot express (clipped softmax).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from .banded import banded_attention
from .cache import StaticKVCache
from .masks import AttnMask
from .packing import Packing
from .positions import RotaryPositions
from .softmax import SoftmaxVariant, Standard

# name -> kernel(q (B, H, Tq, Dh), k, v (B, Hkv, Tk, Dh), mask, softmax, scale, dropout_p) -> (B, H, Tq, Dh)
ATTENTION_BACKENDS: Registry = Registry("attention backend")


@ATTENTION_BACKENDS.register("sdpa")
def sdpa_attention(q, k, v, mask: AttnMask, softmax: SoftmaxVariant, scale: float, dropout_p: float):
    """torch's fused scaled_dot_product_attention; softmax1 through a prepended zero key/value."""
    if softmax.sdpa is None:  # a variant SDPA cannot express
        return eager_attention(q, k, v, mask, softmax, scale, dropout_p)
    if mask.band is not None and mask.bias is None and softmax.sdpa == "native":  # a long local window
        return banded_attention(q, k, v, mask.band, scale, dropout_p)
    attn_mask, is_causal = mask.mask, mask.is_causal
    if softmax.sdpa == "zero_kv":
        # softmax1 = softmax over [0, scores]: prepend a zero key (score 0) and a zero value.
        zeros = k.new_zeros(k.shape[0], k.shape[1], 1, k.shape[3])  # (B, Hkv, 1, Dh)
        k, v = torch.cat([zeros, k], dim=2), torch.cat([zeros, v], dim=2)
        dense = mask.dense(q.shape[2], k.shape[2] - 1, q.device)
        if dense is not None:
            attn_mask = F.pad(dense, (1, 0), value=True)  # the zero key is always visible
        is_causal = False
        if mask.bias is not None:
            mask = AttnMask(bias=F.pad(mask.bias, (1, 0), value=0.0))
    if mask.bias is not None:
        bias = mask.bias.to(q.dtype)
        if attn_mask is not None:
            bias = bias.masked_fill(~attn_mask, torch.finfo(q.dtype).min)
        attn_mask, is_causal = bias, False
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                                          scale=scale, enable_gqa=k.shape[1] != q.shape[1])


@ATTENTION_BACKENDS.register("eager")
def eager_attention(q, k, v, mask: AttnMask, softmax: SoftmaxVariant, scale: float, dropout_p: float):
    """The formula written out: the reference the fast path is tested against."""
    groups = q.shape[1] // k.shape[1]
    if groups > 1:  # (B, Hkv, Tk, Dh) -> (B, H, Tk, Dh)
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale  # (B, H, Tq, Tk)
    if mask.bias is not None:
        scores = scores + mask.bias.to(scores.dtype)
    dense = mask.dense(q.shape[2], k.shape[2], q.device)
    if dense is not None:
        scores = scores.masked_fill(~dense, torch.finfo(scores.dtype).min)
    probs = F.dropout(softmax(scores), p=dropout_p, training=dropout_p > 0)
    return torch.matmul(probs, v)  # (B, H, Tq, Dh)


BACKENDS = tuple(ATTENTION_BACKENDS.names())


class Attention(nn.Module):
    def __init__(
        self,
        q_proj: nn.Module,
        k_proj: nn.Module,
        v_proj: nn.Module,
        o_proj: nn.Module,
        *,
        n_heads: int,
        n_kv_heads: int,
        head_dim: int,
        softmax: SoftmaxVariant | None = None,
        rotary: bool = False,
        window: int | None = None,
        causal: bool = True,
        scale: float | None = None,
        dropout: float = 0.0,
        backend: str = "sdpa",
        relative: nn.Module | None = None,
        gate: nn.Module | None = None,
    ):
        """relative: a part adding content-dependent position terms to the scores (DeBERTa's
        `DisentangledBias`); it then also sets the score scale. gate: a part scaling each head's output by a
        sigmoid of the input before the output projection (`gates.AttentionGate`, gated attention)."""
        super().__init__()
        if n_heads % n_kv_heads:
            raise ConfigError(f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads})")
        self.kernel = ATTENTION_BACKENDS.get(backend)
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = q_proj, k_proj, v_proj, o_proj
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, head_dim
        self.softmax = softmax or Standard()
        self.rotary, self.window, self.causal = rotary, window, causal
        self.relative = relative
        self.gate = gate
        if relative is not None and scale is None:
            scale = 1.0 / math.sqrt(head_dim * relative.scale_factor)
        self.scale = scale if scale is not None else 1.0 / math.sqrt(head_dim)
        self.dropout = dropout
        self.backend = backend

    def extra_repr(self) -> str:
        return (
            f"heads={self.n_heads}, kv_heads={self.n_kv_heads}, head_dim={self.head_dim}, "
            f"softmax={self.softmax.name}, window={self.window}, causal={self.causal}, backend={self.backend}"
            + (f", gate={type(self.gate).__name__}" if self.gate is not None else "")
        )

    def forward(
        self,
        x: torch.Tensor,
        mask: AttnMask,
        *,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: StaticKVCache | None = None,
        layer: int = 0,
        start: int = 0,
        kv_input: torch.Tensor | None = None,
        packing: Packing | None = None,
        rel=None,
        memory_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """x (B, Tq, D); kv_input (B, Tk, D) for cross-attention (default: x). Returns (B, Tq, D).

        rope: (cos, signed_sin) from `RotaryPositions` for the query/key positions when the part is rotary;
        cache/layer/start: write this step's keys and values into the static cache at [start, start + Tq) and
        attend over it.
        packing: x is (N, D), the real tokens of a padded batch; projections run on those N rows only and
        the result is (N, D) too; `mask` is then a list, one mask per length group (`Packing.masks`). memory_kv: cross-attention keys/values already projected (`project_memory`),
        so an encoder output is projected once per sequence, not once per decoding step.
        """
        if packing is not None:
            heads = self._attend_packed(x, packing, mask, rope, rel)  # (N, H * Dh)
        else:
            if memory_kv is not None:
                k, v = memory_kv
            else:
                src = x if kv_input is None else kv_input
                k, v = self.k_proj(src), self.v_proj(src)
            heads = self._attend(self.q_proj(x), k, v, mask, rope, rel, cache, layer, start)  # (B, Tq, H * Dh)
        if self.gate is not None:  # gated attention: each head's output times sigmoid(G_i(x))
            heads = self.gate(x, heads)
        return self.o_proj(heads)

    def project_memory(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """memory (B, Tm, D) -> (k, v), 2 x (B, Tm, Hkv * Dh), for `memory_kv`."""
        return self.k_proj(memory), self.v_proj(memory)

    def _attend(self, q, k, v, mask: AttnMask, rope, rel, cache=None, layer: int = 0, start: int = 0):
        """Projected q (B, Tq, H * Dh), k/v (B, Tk, Hkv * Dh) -> attention output (B, Tq, H * Dh)."""
        b, tq, tk = q.shape[0], q.shape[1], k.shape[1]
        q = q.view(b, tq, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, Tq, Dh)
        k = k.view(b, tk, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, Tk, Dh)
        v = v.view(b, tk, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, Tk, Dh)
        if self.rotary:
            cos, signed_sin = rope
            q, k = RotaryPositions.apply(q, cos, signed_sin), RotaryPositions.apply(k, cos, signed_sin)
        if cache is not None:
            k, v = cache.update(layer, k, v, start)  # 2 x (B, Hkv, start + Tq, Dh)
            tk = k.shape[2]
        if self.relative is not None:  # content-dependent position terms join the scores as a bias
            extra = self.relative(q, k, self.q_proj, self.k_proj, rel)  # (B, H, Tq, Tk)
            mask = mask.with_bias(extra, tq, tk, q.device)
        out = self.kernel(q, k, v, mask, self.softmax, self.scale, self.dropout if self.training else 0.0)
        return out.transpose(1, 2).reshape(b, tq, self.n_heads * self.head_dim)  # (B, Tq, H * Dh)

    def _attend_packed(self, x: torch.Tensor, packing: Packing, masks: list[AttnMask], rope, rel) -> torch.Tensor:
        """x (N, D), the real tokens -> (N, H * Dh): projections on the N rows, attention group by group,
        each group padded only to its own longest row (self-attention only)."""
        q_all, k_all, v_all = self.q_proj(x), self.k_proj(x), self.v_proj(x)  # (N, ...)
        out = q_all.new_empty(x.shape[0], self.n_heads * self.head_dim)  # the projections' dtype (bf16 under autocast)
        for i, g in enumerate(packing.groups):
            t = g.seqlen
            g_rope = None if rope is None else tuple(r[g.rows, :, :t] for r in rope)
            g_rel = None if rel is None else (rel[0], rel[1][:t, :t])
            y = self._attend(g.pad(q_all), g.pad(k_all), g.pad(v_all), masks[i], g_rope, g_rel)  # (Bg, t, H * Dh)
            out[g.token_idx] = g.unpad(y).to(out.dtype)
        return out
