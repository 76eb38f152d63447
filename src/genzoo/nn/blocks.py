"""The transformer block: attention then feed-forward, each inside a residual connection.

Pre-norm (GPT-2, Llama; Xiong et al., 2020): x = x + attn(norm1(x)); x = x + ffn(norm2(x)).
Post-norm (the original Transformer, BERT):  x = norm1(x + attn(x)); x = norm2(x + ffn(x)).
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
    def __init__(
        self,
        attn: nn.Module,
        ffn: nn.Module,
        attn_norm: nn.Module,
        ffn_norm: nn.Module,
        *,
        norm_position: str = "pre",
        dropout: float = 0.0,
    ):
        super().__init__()
        if norm_position not in NORM_POSITIONS:
            raise ConfigError(f"norm_position must be one of {NORM_POSITIONS}, got {norm_position!r}")
        self.attn_norm, self.attn, self.ffn_norm, self.ffn = attn_norm, attn, ffn_norm, ffn
        self.prenorm = norm_position == "pre"
        self.drop = make_dropout(dropout)

    def forward(self, x: torch.Tensor, mask, **attn_kwargs) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        if self.prenorm:
            x = x + self.drop(self.attn(self.attn_norm(x), mask, **attn_kwargs))
            return x + self.drop(self.ffn(self.ffn_norm(x)))
        x = self.attn_norm(x + self.drop(self.attn(x, mask, **attn_kwargs)))
        return self.ffn_norm(x + self.drop(self.ffn(x)))


class CrossBlock(nn.Module):
    """A pre-norm decoder block of an encoder-decoder (Vaswani et al., 2017, sec. 3.1): causal self-attention,
    attention over the encoder output (memory), feed-forward, each inside a residual connection."""

    def __init__(self, self_attn: nn.Module, cross_attn: nn.Module, ffn: nn.Module, self_norm: nn.Module,
                 cross_norm: nn.Module, ffn_norm: nn.Module, dropout: float = 0.0):
        super().__init__()
        self.self_norm, self.self_attn = self_norm, self_attn
        self.cross_norm, self.cross_attn = cross_norm, cross_attn
        self.ffn_norm, self.ffn = ffn_norm, ffn
        self.drop = make_dropout(dropout)

    def forward(self, x, mask, cross_mask, memory_kv, **self_kwargs) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        """memory_kv: the encoder output projected by this block's cross-attention, (k, v), 2 x (B, Tm, ...)."""
        x = x + self.drop(self.self_attn(self.self_norm(x), mask, **self_kwargs))
        x = x + self.drop(self.cross_attn(self.cross_norm(x), cross_mask, memory_kv=memory_kv))
        return x + self.drop(self.ffn(self.ffn_norm(x)))
