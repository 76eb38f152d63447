"""Softmax variants used to turn attention scores into weights.

Each variant says how it runs on `torch.nn.functional.scaled_dot_product_attention` (SDPA):
- ``standard``: natively.
- ``softmax1``: softmax-off-by-one (E. Miller, "Attention Is Off By One", 2023),
  ``softmax1(x)_i = exp(x_i) / (1 + sum_j exp(x_j))``. On SDPA it is exact by prepending one zero key
  and one zero value to every head (x-transformers ``add_zero_kv``): the zero key scores 0, adds
  exp(0) = 1 to the denominator and contributes the zero vector to the output.
- ``clipped``: clipped softmax (Bondarenko et al., "Quantizable Transformers", 2023, eq. 4.2),
  ``clip((zeta - gamma) * softmax(x) + gamma, 0, 1)``. SDPA cannot express it: eager path only.
"""

from __future__ import annotations

import torch

from ..registry import Registry


class SoftmaxVariant:
    """How scores become weights. `sdpa` is "native", "zero_kv" or None (eager only)."""

    name: str = ""
    sdpa: str | None = None

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:  # (..., Tk) -> (..., Tk)
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Standard(SoftmaxVariant):
    name, sdpa = "standard", "native"

    def __call__(self, scores):
        return torch.softmax(scores.float(), dim=-1).to(scores.dtype)


class Softmax1(SoftmaxVariant):
    name, sdpa = "softmax1", "zero_kv"

    def __call__(self, scores):
        # exp(x_i) / (1 + sum_j exp(x_j)), computed stably: shift by m = max(0, max_j x_j).
        s = scores.float()
        m = s.amax(dim=-1, keepdim=True).clamp(min=0.0)
        e = torch.exp(s - m)
        return (e / (torch.exp(-m) + e.sum(dim=-1, keepdim=True))).to(scores.dtype)


class Clipped(SoftmaxVariant):
    name, sdpa = "clipped", None

    def __init__(self, gamma: float = -0.03, zeta: float = 1.0):
        self.gamma, self.zeta = gamma, zeta

    def __call__(self, scores):
        p = torch.softmax(scores.float(), dim=-1)
        return ((self.zeta - self.gamma) * p + self.gamma).clamp(0.0, 1.0).to(scores.dtype)


SOFTMAX: Registry[type] = Registry("softmax")
SOFTMAX.register("standard", Standard)
SOFTMAX.register("softmax1", Softmax1)
SOFTMAX.register("clipped", Clipped)


def softmax1(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The off-by-one softmax along `dim` (reference formula, used in tests and eager attention)."""
    return Softmax1()(x.transpose(dim, -1)).transpose(dim, -1)
