"""Building a model without allocating or initialising its parameters, then giving it the checkpoint's tensors.

`genzoo.load` builds the model inside `empty_parameters()`: every parameter is put on the meta device as it is
registered (shape and dtype, no storage), while buffers (RoPE cos/sin tables, ALiBi slopes, sinusoidal tables,
masks) are computed as usual, on the CPU, with their real values. This is accelerate's
`init_empty_weights(include_buffers=False)`, in the few lines genzoo needs. Random initialisation is skipped as
well: in-place random fills (`normal_`, `uniform_`, ... which every `nn.init` function calls) return their
tensor untouched, and random factories (`torch.randn`, ...) make meta tensors, so loading neither spends time
on random numbers nor draws from (and so changes) the global RNG.

`assign_weights` then puts the checkpoint's tensors in place with `load_state_dict(assign=True)`: a tensor that
already has the dtype and device asked for becomes the parameter itself (for safetensors a view of the
memory-mapped file, so nothing is copied; pages are read from disk, and count in the process's memory, when
first touched); any other is converted on its own, one tensor at a time. Layout is kept as the checkpoint format
gives it: GPT-2's Conv1D weights, stored (in, out), become transposed views (out, in) of the file, the layout
transformers computes with; `F.linear` takes such a weight as it is (measured as fast as a contiguous copy).
Tied parameters (a second name for a parameter, e.g. `lm_head.weight` for `embed.weight`) are re-tied, and a
parameter or buffer still on the meta device afterwards (the checkpoint lacked it) is an error.

The patch of `nn.Module.register_parameter` is process-wide while the `with` block runs: do not build other
modules in other threads meanwhile.
"""

from __future__ import annotations

import contextlib
from itertools import chain

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import CheckpointError

# random initialisation, skipped while a model is built for loading: in-place random fills, the nn.init functions
# that make random values (inside a function the mode is off, so each is caught by name, not by what it calls),
# and random factories (made on meta). Deterministic fills (zeros_, ones_, constant_) run: buffers may use them.
_RANDOM_FILLS = {getattr(torch.Tensor, n) for n in ("normal_", "uniform_", "bernoulli_", "random_", "exponential_",
                                                   "cauchy_", "log_normal_", "geometric_")}
_RANDOM_FILLS |= {getattr(nn.init, n) for n in ("normal_", "uniform_", "trunc_normal_", "kaiming_uniform_",
                                               "kaiming_normal_", "xavier_uniform_", "xavier_normal_", "orthogonal_",
                                               "sparse_")}
_RANDOM_FACTORIES = {torch.randn, torch.rand, torch.randint, torch.randperm, torch.randn_like, torch.rand_like,
                     torch.randint_like}


class _NoRandomInit(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _RANDOM_FILLS:  # the tensor, unfilled (it goes to meta when registered as a parameter)
            return args[0] if args else kwargs["tensor"]
        if func in _RANDOM_FACTORIES:
            kwargs.pop("generator", None)
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


@contextlib.contextmanager
def empty_parameters():
    """`with empty_parameters(): model = Model(config)`: parameters on the meta device, buffers real, no random
    initialisation. A parameter registered twice (tied weights) stays one object, so ties survive."""
    register = nn.Module.register_parameter

    def register_on_meta(module, name, param):
        if param is not None and not param.is_meta:
            param = type(param)(param.to("meta"), requires_grad=param.requires_grad)
        register(module, name, param)

    nn.Module.register_parameter = register_on_meta
    try:
        with _NoRandomInit():
            yield
    finally:
        nn.Module.register_parameter = register


def tie_sources(model: nn.Module, tied: list[str]) -> dict[str, str]:
    """{tied name: the name of the parameter it is} for each name in `tied` (e.g. lm_head.weight -> embed.weight)."""
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    out = {}
    for t in tied:
        p = model.get_parameter(t)
        sources = [n for n in names.get(id(p), []) if n not in tied]
        if sources:
            out[t] = sources[0]
    return out


def assign_weights(model: nn.Module, state: dict[str, torch.Tensor], tied: list[str], *,
                   dtype: torch.dtype | None = None, device: str | torch.device = "cpu", where="checkpoint") -> None:
    """Make `state` (already checked against the model's keys and shapes) the parameters and buffers of `model`,
    built in `empty_parameters()`. Floating-point tensors take `dtype` (default: the dtype the model was built
    with), each converted on its own; a tensor that needs no conversion is used as it is, without a copy."""
    expected = model.state_dict(keep_vars=True)
    sources = tie_sources(model, tied)
    for k, v in state.items():
        want = expected[k]
        to = (dtype or want.dtype) if want.is_floating_point() else want.dtype
        state[k] = v.to(device=device, dtype=to)  # `v` itself when there is nothing to do
    model.load_state_dict(state, strict=False, assign=True)
    for name, source in sources.items():  # assign replaced the source parameter; the second name follows it
        path, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(path), leaf, model.get_parameter(source))
    tensors = chain(model.named_parameters(remove_duplicate=False), model.named_buffers(remove_duplicate=False))
    left = [n for n, t in tensors if t.is_meta]
    if left:
        raise CheckpointError(f"{where}: the checkpoint gives no value for {len(left)} tensor(s) of the model "
                              f"(left on the meta device): {left[:20]}")
