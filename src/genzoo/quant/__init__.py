"""Quantization: `genzoo.quantize(model, scheme)` returns a quantized copy of a model (the original is unchanged).

    sim = genzoo.quantize(model, "w8a8", calibration=batches)   # simulated int8 weights and activations
    fast = genzoo.quantize(model, "int8")                        # real int8 kernels (torchao)

Schemes (`SCHEMES`):
- ``w8a8``: simulated per-tensor int8 weights and activations with min-max calibration (`simulated.py`), to
  measure what 8-bit inference would cost a model in quality (activation outliers, Bondarenko et al., 2023);
- ``int8``, ``int8-weight``, ``int4-weight``: real low-bit inference (`real.py`);
- ``bf16``: the model cast to bfloat16; ``fp32``: an unchanged copy (baselines for `genzoo bench quant`).
`model_bytes` measures a model as stored. `outliers.OutlierMeter` measures the activation outliers themselves.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from .real import int4_weight, int8, int8_weight, model_bytes
from .simulated import W8A8

SCHEMES: Registry = Registry("quantization scheme")
REAL = ("int8", "int8-weight", "int4-weight", "bf16", "fp32")  # schemes that need no calibration


def _w8a8(model, calibration=None):
    if calibration is None:
        raise ConfigError("quantize 'w8a8' needs calibration=: an iterable of model inputs (min-max ranges are "
                          "observed on them)")
    return W8A8(model).calibrate(calibration).model


SCHEMES.register("w8a8", _w8a8)
SCHEMES.register("int8", int8)
SCHEMES.register("int8-weight", int8_weight)
SCHEMES.register("int4-weight", int4_weight)
SCHEMES.register("bf16", lambda model: copy.deepcopy(model).to(torch.bfloat16).eval())
SCHEMES.register("fp32", lambda model: copy.deepcopy(model).float().eval())


def quantize(model: nn.Module, scheme: str, **options) -> nn.Module:
    """A copy of `model` quantized with `scheme` (see `SCHEMES`); options go to the scheme (``calibration=``
    for w8a8). Raises ConfigError for an unknown scheme or an option the scheme does not take."""
    fn = SCHEMES.get(scheme)
    if options and scheme != "w8a8":
        raise ConfigError(f"quantize {scheme!r} takes no options, got {sorted(options)}")
    unknown = sorted(set(options) - {"calibration"})
    if unknown:
        raise ConfigError(f"quantize 'w8a8' takes calibration= only, got {unknown}")
    return fn(model, **options)


__all__ = ["REAL", "SCHEMES", "W8A8", "model_bytes", "quantize"]
