"""Normalisation layers: LayerNorm (Ba et al., 2016) with optional bias, and RMSNorm (Zhang & Sennrich, 2019).

Factories in `NORMS` share one signature, ``make(dim, eps, bias)``, so a config names the norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Registry


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight (RMSNorm, eq. 4), computed in fp32 like Llama's reference."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., D)
        if x.dtype == torch.float32:
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


NORMS: Registry = Registry("norm")
NORMS.register("layernorm", lambda dim, eps, bias=True: nn.LayerNorm(dim, eps=eps, bias=bias))
NORMS.register("rmsnorm", lambda dim, eps, bias=False: RMSNorm(dim, eps=eps))
