"""`Linear`: `nn.Linear` with a fused CPU inference path.

On CPU in fp32 with autograd off (`torch.no_grad`, `torch.inference_mode`, generation, evaluation), the product
runs through oneDNN's linear primitive with its post-ops (`torch.ops.mkldnn._linear_pointwise`, the kernel
`torch.compile`'s CPU backend emits for a linear layer):

- the bias and an activation after the product (GELU, GELU-tanh, ReLU, SiLU) are applied as the output is
  written, instead of two more passes over it;
- a GLU's elementwise product with the gate (`multiply=`) is fused the same way;
- oneDNN's small-batch kernels, which on the 2-core machines we measured are faster than the BLAS call behind
  `F.linear` (decoding a batch of a few sequences is mostly such products).

A single input row (decoding at batch 1) takes a third kernel instead, `gemv`: the product as a batched
matrix-matrix product over the weight cut into row blocks, which streams a weight that is not in cache at about
twice the rate of the single-row kernels (see `gemv`). It is also what torch.compile is handed for one row (the
compiled decoding step of `generate(compile=True)`): inductor's own fp32 matrix-vector product is slower still.

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
    """Turn the CPU inference kernels (oneDNN, `gemv`) on or off (for comparisons); returns the previous setting."""
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


def _cpu_fp32(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """The CPU kernels' shared condition: enabled, CPU, fp32 operands, not under CPU autocast (F.linear obeys it)."""
    return (_enabled and x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu"))


def _kernel_ok(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (_OP is not None and not torch.compiler.is_compiling()  # compiled: inductor's own path
            and _cpu_fp32(x, weight) and (weight.numel() >= MIN_WEIGHT or x.numel() * weight.shape[0] >= MIN_WORK))


def _records_grad(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)


# Matrix-vector products, measured on the 2-core development machine with weights that are not in cache (a model
# larger than the last-level cache, read once per decoded token): oneDNN's and MKL's single-row kernels read a weight
# at 8-17 GB/s and a plain sum over it runs at 25-35 GB/s. `torch.bmm` over the weight cut into 4 row blocks, the row
# broadcast to each, reads it at 24-31 GB/s (MKL's batched kernel, both threads). It pays from 128 x 128 (cold);
# below MIN_GEMV_WEIGHT F.linear's call is cheaper on a weight that stays in cache.
MIN_GEMV_WEIGHT = 2**15
GEMV_BLOCKS = (4, 2)


def gemv_ok(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether `Linear` computes x W^T as `gemv`: one row on CPU in fp32, autograd off, a contiguous weight of at
    least MIN_GEMV_WEIGHT elements whose rows split into equal blocks."""
    return (x.numel() == weight.shape[-1] and _cpu_fp32(x, weight) and weight.numel() >= MIN_GEMV_WEIGHT
            and weight.shape[0] % 2 == 0 and weight.is_contiguous() and not _records_grad(x, weight))


def gemv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x (..., in) holding one row, weight (out, in), bias (out,) or None -> x W^T + b (..., out): `torch.bmm` of
    the weight as c row blocks (c, out/c, in) with the row as a column broadcast to every block (stride 0: nothing
    is copied), (in, 1); the bias is added by the same call (`torch.baddbmm`)."""
    out, d = weight.shape
    c = next(c for c in GEMV_BLOCKS if out % c == 0)
    # (c, in, 1) with strides (0, 1, in): the kernel's fast layout, one view op eagerly (three as reshape, t,
    # expand); traced by torch.compile, views cost nothing and the compiler is given the plain ones
    if x.is_contiguous() and not torch.compiler.is_compiling():
        column = x.as_strided((c, d, 1), (0, 1, d))
    else:
        column = x.reshape(1, d).t().expand(c, d, 1)
    blocks = weight.view(c, out // c, d)  # (c, out/c, in)
    y = torch.bmm(blocks, column) if bias is None else torch.baddbmm(bias.view(c, out // c, 1), blocks, column)
    return y.view(*x.shape[:-1], out)  # (c, out/c, 1) -> (..., out)


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
        if gemv_ok(x, self.weight):  # one row (decoding at batch 1)
            y = gemv(x, self.weight, self.bias)
        else:
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
        # the activation and the gate product that no kernel above fused
        if activation is not None:
            y = ACTIVATIONS.get(activation)(y)
        return y if multiply is None else y * multiply
