"""`Linear`: `nn.Linear` with a fused CPU inference path.

On CPU in fp32 with autograd off (`torch.no_grad`, `torch.inference_mode`, generation, evaluation), the product
runs through oneDNN's linear primitive with its post-ops (`torch.ops.mkldnn._linear_pointwise`, the kernel
`torch.compile`'s CPU backend emits for a linear layer):

- the bias and an activation after the product (GELU, GELU-tanh, ReLU, SiLU) are applied as the output is
  written, instead of two more passes over it;
- a GLU's elementwise product with the gate (`multiply=`) is fused the same way;
- oneDNN's small-batch matrix-vector kernel, which on the 2-core machines we measured is faster than the
  BLAS call behind `F.linear` (decoding at batch 1 is mostly such products).

Training (autograd on), other devices and dtypes, torch builds without the op, and GENZOO_ONEDNN=0 take the
plain `F.linear` path. Both paths compute the same function; they differ by float rounding (summation order),
about 1e-6 relative. The state dict is `nn.Linear`'s, so checkpoints are unaffected.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from .activations import ACTIVATIONS

# genzoo activation name -> (oneDNN post-op, its algorithm)
ONEDNN_ACTIVATIONS = {"gelu": ("gelu", "none"), "gelu_tanh": ("gelu", "tanh"), "relu": ("relu", ""),
                      "silu": ("swish", "")}
_OP = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
_enabled = os.environ.get("GENZOO_ONEDNN", "1") != "0" and torch.backends.mkldnn.is_available()


def set_onednn(enabled: bool) -> bool:
    """Turn the fused CPU inference path on or off (for comparisons); returns the previous setting."""
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    return previous


def onednn_ok(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether `Linear` takes the oneDNN path for this input: CPU, fp32, no autograd graph to record."""
    return (_enabled and _OP is not None and x.device.type == "cpu" and x.dtype == torch.float32
            and weight.dtype == torch.float32
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)))


class Linear(nn.Linear):
    """y = act(x W^T + b) * multiply: (..., in) -> (..., out). activation: an `ACTIVATIONS` name, or None;
    multiply: a (..., out) tensor (a GLU's activated gate), or None."""

    def forward(self, x: torch.Tensor, activation: str | None = None,
                multiply: torch.Tensor | None = None) -> torch.Tensor:
        if onednn_ok(x, self.weight):
            if multiply is None and (activation is None or activation in ONEDNN_ACTIVATIONS):
                post, algorithm = ONEDNN_ACTIVATIONS[activation] if activation else ("none", "")
                return _OP(x, self.weight, self.bias, post, [], algorithm)
            if activation is None and multiply.dtype == x.dtype \
                    and multiply.shape == (*x.shape[:-1], self.out_features):
                return _OP.binary(x, multiply.contiguous(), self.weight, self.bias, "mul")
        y = F.linear(x, self.weight, self.bias)
        if activation is not None:
            y = ACTIVATIONS.get(activation)(y)
        return y if multiply is None else y * multiply
