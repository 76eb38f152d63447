"""Simulated W8A8 quantization for measurement (the set-up of Bondarenko et al., "Quantizable Transformers",
2023, arXiv 2306.12929, sec. 5; Nagel et al., "A White Paper on Neural Network Quantization", 2021, sec. 2):

- weights: per-tensor symmetric int8, w_hat = s * clamp(round(w / s), -127, 127), s = max|w| / 127;
- activations: per-tensor asymmetric int8 with a min-max range fixed by calibration,
  x_hat = s * (clamp(round(x / s) + z, -128, 127) - z), s = (max - min) / 255, z = -128 - round(min / s),
  the range widened to contain 0 (so zero is exact).

The activations quantized are the input of every `nn.Linear` and the output of every transformer block (the
residual stream, where the outliers live). Both are forward hooks on a copy of the model: the model's code is
unchanged. Rounding and clamping are torch's own `fake_quantize_per_tensor_affine`. A single outlier stretches
a per-tensor range, so every other value of that tensor keeps fewer of the 256 levels: the effect measured.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

from ..errors import ConfigError
from ..nn.blocks import Block

QMIN, QMAX = -128, 127


def quantize_weight(w: torch.Tensor) -> torch.Tensor:
    """Per-tensor symmetric int8 fake quantization of a weight (levels -127..127)."""
    scale = float(w.detach().abs().max()) / 127.0
    if scale == 0.0:
        return w.detach().clone()
    return torch.fake_quantize_per_tensor_affine(w.detach().float(), scale, 0, -127, 127).to(w.dtype)


class ActivationRange:
    """Running min/max of one activation (calibration), then its asymmetric int8 fake quantization."""

    def __init__(self, name: str):
        self.name = name
        self.lo, self.hi = float("inf"), float("-inf")
        self.calibrating = True

    def observe(self, x: torch.Tensor) -> None:
        self.lo = min(self.lo, float(x.detach().min()))
        self.hi = max(self.hi, float(x.detach().max()))

    def qparams(self) -> tuple[float, int]:
        """(scale, zero point) of the range [min(lo, 0), max(hi, 0)] over the 256 int8 levels."""
        lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)
        scale = (hi - lo) / (QMAX - QMIN) if hi > lo else 1.0
        zero = int(max(QMIN, min(QMAX, QMIN - round(lo / scale))))
        return scale, zero

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:
            self.observe(x)
            return x
        scale, zero = self.qparams()
        return torch.fake_quantize_per_tensor_affine(x.float(), scale, zero, QMIN, QMAX).to(x.dtype)


def run_batch(model: nn.Module, batch) -> None:
    """One forward pass on a calibration item: a tensor (model(x)), a dict (model(**x)) or a tuple (model(*x))."""
    if isinstance(batch, dict):
        model(**batch)
    elif isinstance(batch, (tuple, list)):
        model(*batch)
    else:
        model(batch)


class W8A8:
    """A fake-quantized copy of `model`: `W8A8(model).calibrate(batches).model`. `ranges` maps each quantized
    activation ("<module>:in" for a Linear's input, "<module>:out" for a block's output) to its ActivationRange."""

    def __init__(self, model: nn.Module):
        self.model = copy.deepcopy(model).eval()
        linears = [(n, m) for n, m in self.model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ConfigError(f"quantize: {type(model).__name__} has no nn.Linear to quantize")
        self.ranges: dict[str, ActivationRange] = {}
        self.hooks = []
        for name, m in linears:
            m.weight = nn.Parameter(quantize_weight(m.weight), requires_grad=False)  # unties a tied head
            r = self.ranges[f"{name}:in"] = ActivationRange(f"{name}:in")
            self.hooks.append(m.register_forward_pre_hook(lambda mod, args, r=r: (r(args[0]), *args[1:])))
        for name, m in self.model.named_modules():
            if isinstance(m, Block):
                r = self.ranges[f"{name}:out"] = ActivationRange(f"{name}:out")
                self.hooks.append(m.register_forward_hook(lambda mod, args, out, r=r: r(out)))

    @torch.no_grad()
    def calibrate(self, batches: Iterable) -> "W8A8":
        """Observe every activation's min and max over `batches`, then quantize from there on."""
        n = 0
        for batch in batches:
            run_batch(self.model, batch)
            n += 1
        if n == 0:
            raise ConfigError("quantize 'w8a8': calibration= gave no batch; pass an iterable of model inputs")
        unseen = [k for k, r in self.ranges.items() if r.lo > r.hi]
        if unseen:
            raise ConfigError(f"quantize 'w8a8': calibration never reached {unseen[:3]}")
        for r in self.ranges.values():
            r.calibrating = False
        self.model.w8a8 = self
        return self
