"""Softmax variants used to turn attention scores into weights.

Each variant says how it runs on `torch.nn.functional.scaled_dot_product_attention` (SDPA):
- ``standard``: natively.
- ``softmax1``: softmax-off-by-one (E. Miller, "Attention Is Off By One", 2023),
  ``softmax1(x)_i = exp(x_i) / (1 + sum_j exp(x_j))``. On SDPA it is exact by prepending one zero key
  and one zero value to every head (x-transformers ``add_zero_kv``): the zero key scores 0, adds
  exp(0) = 1 to the denominator and contributes the zero vector to the output.
- ``clipped``: clipped softmax (Bondarenko et al., "Quantizable Transformers: Removing Outliers by Helping
  Attention Heads Do Nothing", 2023, arXiv 2306.12929, sec. 4.1, eq. 4.1),
  ``clip((zeta - gamma) * softmax(x) + gamma, 0, 1)``, parameters ``gamma <= 0`` and ``zeta >= 1``. SDPA cannot
  express it: eager path only.

A variant's parameters come from a config's ``softmax_args`` dict (``make_softmax(name, args)``, used by every
genre); a variant without parameters takes none, and a bad name or value raises ConfigError naming it.
"""

from __future__ import annotations

import inspect
import math

import torch

from ..errors import ConfigError
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
    """clip((zeta - gamma) * softmax(x) + gamma, 0, 1) (Bondarenko et al., arXiv 2306.12929, eq. 4.1).

    gamma < 0 lets a weight reach exactly 0 (a head can attend to nothing with finite scores), zeta > 1 lets it
    reach exactly 1; gamma = 0, zeta = 1 is the standard softmax. Where the gradient stops: a weight p is clipped
    to 0, with no gradient, whenever (zeta - gamma) p + gamma <= 0, i.e. p <= -gamma / (zeta - gamma).

    Pitfall: gamma is an absolute offset, so its effect depends on the number of keys T. A uniform row has
    p = 1 / T, and all of its weights are clipped to zero once T > 1 + zeta / -gamma (equivalently: a uniform row
    keeps weight only while -gamma < zeta / (T - 1)). With the defaults gamma = -0.03, zeta = 1 that is every row
    over more than 34 keys, so at initialisation (scores near 0, rows near uniform) a head over a longer context
    outputs zeros and its queries and keys get no gradient. The paper relates gamma to the sequence length
    (gamma = -alpha / T); set ``softmax_args={"gamma": ..., "zeta": ...}`` in the model's config for the context
    length you train on."""

    name, sdpa = "clipped", None

    def __init__(self, gamma: float = -0.03, zeta: float = 1.0):
        for field, value, ok, allowed in (("gamma", gamma, lambda v: v <= 0, "a finite number <= 0"),
                                          ("zeta", zeta, lambda v: v >= 1, "a finite number >= 1")):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not ok(value):
                raise ConfigError(f"config field softmax_args.{field}={value!r} is invalid for softmax 'clipped': "
                                  f"{allowed}")
        self.gamma, self.zeta = float(gamma), float(zeta)

    def __call__(self, scores):
        p = torch.softmax(scores.float(), dim=-1)
        return ((self.zeta - self.gamma) * p + self.gamma).clamp(0.0, 1.0).to(scores.dtype)

    def __repr__(self) -> str:
        return f"Clipped(gamma={self.gamma}, zeta={self.zeta})"


SOFTMAX: Registry[type] = Registry("softmax")
SOFTMAX.register("standard", Standard)
SOFTMAX.register("softmax1", Softmax1)
SOFTMAX.register("clipped", Clipped)


def softmax_params(name: str) -> list[str]:
    """The parameter names the variant registered as `name` takes from ``softmax_args``."""
    return [p for p in inspect.signature(SOFTMAX.get(name)).parameters if p != "self"]


def make_softmax(name: str, args: dict | None = None) -> SoftmaxVariant:
    """The softmax variant registered as `name`, built with `args` (a config's ``softmax_args``; None: defaults).

    Raises ConfigError for an unknown name, an argument the variant does not take, or a value it refuses."""
    allowed = softmax_params(name)  # ConfigError for an unknown name, listing the known ones
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ConfigError(f"config field softmax_args={args!r} is invalid: None or a dict of the parameters of "
                          f"softmax {name!r} ({', '.join(allowed) or 'none'})")
    unknown = sorted(str(k) for k in args if k not in allowed)
    if unknown:
        raise ConfigError(f"config field softmax_args={args!r} is invalid: softmax {name!r} takes "
                          f"{'only ' + ', '.join(allowed) if allowed else 'no parameters'}, not {', '.join(unknown)}")
    return SOFTMAX.get(name)(**args)


def softmax1(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The off-by-one softmax along `dim` (reference formula, used in tests and eager attention)."""
    return Softmax1()(x.transpose(dim, -1)).transpose(dim, -1)
