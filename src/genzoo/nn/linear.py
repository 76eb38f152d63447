"""`Linear`: `nn.Linear` with a fused CPU inference path.

On CPU in fp32 with autograd off (`torch.no_grad`, `torch.inference_mode`, generation, evaluation), the product
runs through oneDNN's linear primitive with its post-ops (`torch.ops.mkldnn._linear_pointwise`, the kernel
`torch.compile`'s CPU backend emits for a linear layer):

- the bias and an activation after the product (GELU, GELU-tanh, ReLU, SiLU) are applied as the output is
  written, instead of two more passes over it;
- a GLU's elementwise product with the gate (`multiply=`) is fused the same way;
- oneDNN's small-batch matrix-vector kernel, which on the 2-core machines we measured is faster than the
  BLAS call behind `F.linear` (decoding at batch 1 is mostly such products).

With autograd on (training), the plain product also runs forward through oneDNN (`OneDNNLinear`: its backward
takes oneDNN for the input gradient and BLAS for the weight gradient); the activation then follows as its own
op. Layers too small to pay for oneDNN's call overhead (`MIN_WEIGHT`, `MIN_WORK`), other devices and dtypes,
CPU autocast, tracing by torch.compile, torch builds without the op, and GENZOO_ONEDNN=0 take `F.linear`.
Both paths compute the same function; they differ by float rounding (summation order), about 1e-6 relative.
The state dict is `nn.Linear`'s, so checkpoints are unaffected.
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


# oneDNN costs ~15-20 us more per call than F.linear (measured on the 2-core development machine): it pays off
# for a weight of at least 512 x 512 (even at one row: decoding) or a product of at least 2^24 multiply-adds
MIN_WEIGHT, MIN_WORK = 2**18, 2**24


def onednn_ok(x: torch.Tensor, weight: torch.Tensor, training: bool = False) -> bool:
    """Whether `Linear` takes the oneDNN path for this input: CPU, fp32, large enough (MIN_WEIGHT, MIN_WORK),
    not under CPU autocast (which F.linear obeys), not being traced by torch.compile (which picks its own
    kernels), and (unless `training`) no autograd graph to record."""
    return _kernel_ok(x, weight) and (training or not _records_grad(x, weight))


def _kernel_ok(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (_enabled and _OP is not None and not torch.compiler.is_compiling()  # compiled: inductor's own path
            and x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and weight.dtype == torch.float32
            and (weight.numel() >= MIN_WEIGHT or x.numel() * weight.shape[0] >= MIN_WORK))


def _records_grad(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)


class OneDNNLinear(torch.autograd.Function):
    """x W^T + b with the oneDNN forward; backward dx = g W (oneDNN), dW = g^T x, db = sum g, the products
    autograd takes for F.linear."""

    @staticmethod
    def forward(ctx, x, weight, bias):  # (..., in), (out, in), (out,) or None -> (..., out)
        ctx.save_for_backward(x, weight)
        return _OP(x, weight, bias, "none", [], "")

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        g2 = grad.reshape(-1, grad.shape[-1])  # (N, out)
        # dx through oneDNN as well (the transposed weight is a view); dW stays with BLAS, faster for it here
        gx = _OP(grad, weight.t(), None, "none", [], "") if ctx.needs_input_grad[0] else None  # (..., in)
        gw = (g2.t() @ x.reshape(-1, x.shape[-1])) if ctx.needs_input_grad[1] else None  # (out, in)
        gb = g2.sum(0) if ctx.needs_input_grad[2] else None  # (out,); False for a bias of None
        return gx, gw, gb


class Linear(nn.Linear):
    """y = act(x W^T + b) * multiply: (..., in) -> (..., out). activation: an `ACTIVATIONS` name, or None;
    multiply: a (..., out) tensor (a GLU's activated gate), or None."""

    def forward(self, x: torch.Tensor, activation: str | None = None,
                multiply: torch.Tensor | None = None) -> torch.Tensor:
        kernel = _kernel_ok(x, self.weight)  # evaluated once per call: this is every linear layer's hot path
        inference = kernel and not _records_grad(x, self.weight)
        if inference and multiply is None and (activation is None or activation in ONEDNN_ACTIVATIONS):
            post, algorithm = ONEDNN_ACTIVATIONS[activation] if activation else ("none", "")
            return _OP(x, self.weight, self.bias, post, [], algorithm)
        if inference and activation is None and multiply.dtype == x.dtype \
                and multiply.shape == (*x.shape[:-1], self.out_features):
            return _OP.binary(x, multiply.contiguous(), self.weight, self.bias, "mul")
        if inference:
            y = _OP(x, self.weight, self.bias, "none", [], "")
        elif kernel:
            y = OneDNNLinear.apply(x, self.weight, self.bias)
        else:
            y = F.linear(x, self.weight, self.bias)
        if activation is not None:
            y = ACTIVATIONS.get(activation)(y)
        return y if multiply is None else y * multiply
