"""generate(compile=True) caches its compiled decoding step per model and shape bucket: the same model and bucket
reuse one entry (no recompilation), a batch above 1, another dtype or another model get their own, and an entry
goes with its model."""

import gc

import torch

import genzoo
from genzoo.generate import _COMPILED, compiled_step, shape_bucket


def test_compiled_step_is_cached_per_model_and_bucket():
    a, b = genzoo.build("llama-tiny").eval(), genzoo.build("llama-tiny").eval()
    one = compiled_step(a, 1)
    assert compiled_step(a, 1).func is one.func and one.args == (a,)  # reused, bound to its model
    assert compiled_step(a, 8).func is not one.func  # batch > 1 is another bucket ...
    assert compiled_step(a, 3).func is compiled_step(a, 8).func  # ... shared by every batch above 1
    assert compiled_step(b, 1).func is not one.func  # another model: its own entry
    assert one.func._torchdynamo_orig_callable.__code__ is not compiled_step(b, 1).func._torchdynamo_orig_callable.__code__
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert compiled_step(a, 1).func is not one.func  # bf16 autocast: another bucket
    assert shape_bucket(a.to(torch.bfloat16), 1)[1] == torch.bfloat16
    n = len(_COMPILED)
    del a, one
    gc.collect()
    assert len(_COMPILED) == n - 1  # the model's entries went with it
