"""The transformer block: attention then feed-forward, each inside a residual connection.

Pre-norm (GPT-2, Llama; Xiong et al., 2020): x = x + attn(norm1(x)); x = x + ffn(norm2(x)).
Post-norm (the original Transformer, BERT):  x = norm1(x + attn(x)); x = norm2(x + ffn(x)).
An encoder-decoder's decoder block has a cross-attention sublayer between the two, in the same residual form.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

NORM_POSITIONS = ("pre", "post")


def make_dropout(p: float) -> nn.Module:
    """nn.Dropout(p), or nn.Identity() for p = 0: a dropout of 0 is still an op call per use (a few microseconds
    each, a visible share of a decoding step at batch 1)."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


class Block(nn.Module):
    """One transformer layer. With `cross_attn` it is the decoder layer of an encoder-decoder (Vaswani et al., 2017,
    sec. 3.1): self-attention, attention over the encoder output (memory), feed-forward, each in a residual."""

    def __init__(
        self,
        attn: nn.Module,
        ffn: nn.Module,
        attn_norm: nn.Module,
        ffn_norm: nn.Module,
        *,
        cross_attn: nn.Module | None = None,
        cross_norm: nn.Module | None = None,
        norm_position: str = "pre",
        dropout: float = 0.0,
    ):
        super().__init__()
        if norm_position not in NORM_POSITIONS:
            raise ConfigError(f"norm_position must be one of {NORM_POSITIONS}, got {norm_position!r}")
        if (cross_attn is None) != (cross_norm is None):
            raise ConfigError("a block's cross-attention needs both cross_attn and cross_norm")
        self.attn_norm, self.attn = attn_norm, attn
        if cross_attn is not None:
            self.cross_norm, self.cross_attn = cross_norm, cross_attn
        self.ffn_norm, self.ffn = ffn_norm, ffn
        self.has_cross = cross_attn is not None
        self.prenorm = norm_position == "pre"
        self.drop = make_dropout(dropout)

    def forward(self, x: torch.Tensor, mask, *, cross=None, **attn_kwargs) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        """cross: (mask over the memory, the memory's keys/values projected by this block's `cross_attn`)."""
        x = self._residual(x, self.attn_norm, lambda h: self.attn(h, mask, **attn_kwargs))
        if self.has_cross:
            cross_mask, memory_kv = cross
            x = self._residual(x, self.cross_norm, lambda h: self.cross_attn(h, cross_mask, memory_kv=memory_kv))
        return self._residual(x, self.ffn_norm, self.ffn)

    def _residual(self, x, norm, f):
        """Pre-norm x + f(norm(x)), or post-norm norm(x + f(x))."""
        if self.prenorm:
            return x + self.drop(f(norm(x)))
        return norm(x + self.drop(f(x)))


class GatedCrossBlock(nn.Module):
    """Flamingo's GATED XATTN-DENSE layer (Alayrac et al., 2022, arXiv 2204.14198, sec. 2.2 and fig. 4) in front of
    an existing (frozen) block:

        x = x + tanh(alpha) * cross_attn(cross_norm(x), memory)
        x = x + tanh(beta)  * ffn(ffn_norm(x))
        x = block(x)

    alpha and beta are scalars initialised at 0, so at initialisation the wrapped block sees exactly its input and
    the language model is unchanged. The Stack treats it as the block it wraps (`attn` is the wrapped block's
    self-attention: window, direction, positions) and hands it the memory's keys/values (`cross`, from
    `Stack.project_memory`, which projects through `cross_attn`). Without a memory it is the wrapped block."""

    def __init__(self, block: nn.Module, cross_attn: nn.Module, cross_norm: nn.Module, ffn: nn.Module,
                 ffn_norm: nn.Module):
        super().__init__()
        self.block = block
        self.cross_norm, self.cross_attn = cross_norm, cross_attn
        self.ffn_norm, self.ffn = ffn_norm, ffn
        self.attn_gate = nn.Parameter(torch.zeros(1))  # alpha
        self.ffn_gate = nn.Parameter(torch.zeros(1))  # beta

    @property
    def attn(self) -> nn.Module:
        return self.block.attn

    def forward(self, x: torch.Tensor, mask, *, cross=None, **attn_kwargs) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        """cross: (mask over the memory, the memory's keys/values projected by `cross_attn`), or None."""
        if cross is not None:
            cross_mask, memory_kv = cross
            x = x + torch.tanh(self.attn_gate) * self.cross_attn(self.cross_norm(x), cross_mask, memory_kv=memory_kv)
            x = x + torch.tanh(self.ffn_gate) * self.ffn(self.ffn_norm(x))
        return self.block(x, mask, **attn_kwargs)
