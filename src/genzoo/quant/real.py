"""Real low-bit inference through a kept library: `torchao` (`quantize_` on every `nn.Linear`), or torch's own
dynamic quantization for int8 where torchao is not installed.

- ``int8``: int8 dynamic activations (per token) x int8 weights (per output row), torchao's
  `Int8DynamicActivationInt8WeightConfig`; without torchao, `torch.ao.quantization.quantize_dynamic` (qint8);
- ``int8-weight``: int8 weights (per row), activations in the model's float dtype (`Int8WeightOnlyConfig`);
- ``int4-weight``: int4 weights in groups of 32 along the input (asymmetric, scale and zero per group) and the
  rest of the model in bf16, CPU only: torchao's `Int4OpaqueTensor` (the tinygemm layout run by torch's
  `_weight_int4pack_mm_for_cpu`, whose fast path takes bf16 activations: with fp32 activations a 512 x 1536 MLP
  ran 7x slower here; on CUDA torchao's int4 layouts need an extra kernel package, not wired here).

Every `nn.Linear` is quantized, the language-model head included (a tied head is untied: the embedding table
keeps its float weights). Parameters that are not `nn.Linear` (embeddings, norms, a mixture's stacked experts)
stay as they are.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings

import torch
from torch import nn

from ..errors import ConfigError

INT4_GROUP = 32


def torchao():
    """The torchao package, or None. Its import logs that the CUDA-only extensions do not load on CPU; that
    message is silenced here."""
    try:
        with _quiet():
            import torchao.quantization  # noqa: F401
    except ImportError:
        return None
    import torchao as ao

    return ao


@contextlib.contextmanager
def _quiet():
    loggers = [logging.getLogger(n) for n in ("", "torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _linear(module: nn.Module, fqn: str) -> bool:
    return type(module) is nn.Linear


def _prepare(model: nn.Module) -> nn.Module:
    if not any(type(m) is nn.Linear for m in model.modules()):
        raise ConfigError(f"quantize: {type(model).__name__} has no nn.Linear to quantize")
    return copy.deepcopy(model).eval()


def int8(model: nn.Module) -> nn.Module:
    model = _prepare(model)
    ao = torchao()
    with _quiet():
        if ao is None:  # torch's own dynamic quantization (per-tensor activations, per-tensor weights)
            return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        quantize_(model, Int8DynamicActivationInt8WeightConfig(), filter_fn=_linear)
    return model


def int8_weight(model: nn.Module) -> nn.Module:
    model = _prepare(model)
    if torchao() is None:
        raise ConfigError("quantize 'int8-weight' needs torchao: pip install 'genzoo[quant]' (or use 'int8')")
    with _quiet():
        from torchao.quantization import Int8WeightOnlyConfig, quantize_

        quantize_(model, Int8WeightOnlyConfig(), filter_fn=_linear)
    return model


def int4_weight(model: nn.Module) -> nn.Module:
    model = _prepare(model)
    if torchao() is None:
        raise ConfigError("quantize 'int4-weight' needs torchao: pip install 'genzoo[quant]'; torch alone has no "
                          "int4 module swap (it has the kernel, torch.ops.aten._weight_int4pack_mm_for_cpu)")
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ConfigError(f"quantize 'int4-weight' runs on the CPU here (torchao's tinygemm CPU layout); the model "
                          f"is on {device}")
    odd = [n for n, m in model.named_modules() if type(m) is nn.Linear and m.in_features % INT4_GROUP]
    if odd:
        raise ConfigError(f"quantize 'int4-weight': in_features of {odd[:3]} is not a multiple of the group size "
                          f"{INT4_GROUP}")
    model = model.to(torch.bfloat16)  # bf16 activations: the int4 kernel's fast path
    with _quiet():
        from torchao.prototype.quantization.int4.inference_workflow import PrototypeInt4WeightOnlyConfig
        from torchao.quantization import quantize_

        quantize_(model, PrototypeInt4WeightOnlyConfig(group_size=INT4_GROUP), filter_fn=_linear)
    return model


def model_bytes(model: nn.Module) -> int:
    """Bytes of the model's weights as saved: its state dict serialised by torch.save (shared tensors once), so
    packed int8/int4 storage and its scales count as they are stored."""
    buf = io.BytesIO()
    with _quiet():
        torch.save(model.state_dict(), buf)
    return buf.tell()
