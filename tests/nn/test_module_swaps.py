"""Models hold plain `torch.nn.Linear`, so the ecosystem's module swaps work on them as they are: dynamic int8
quantization (`torch.ao.quantization.quantize_dynamic`, which matches `nn.Linear` exactly) and LoRA adapters
from `peft`, whose layers call the wrapped projection with `x` alone."""

import pytest
import torch
from peft import LoraConfig, inject_adapter_in_model
from torch import nn

import genzoo

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate", "up", "down")


def linear_names(model):
    return {n for n, m in model.named_modules() if type(m) is nn.Linear and n.rsplit(".", 1)[-1] in PROJECTIONS}


@pytest.mark.parametrize("preset", ["llama-tiny", "gpt2-tiny", "bert-tiny", "modernbert-tiny"])
def test_quantize_dynamic_converts_every_projection(preset):
    torch.manual_seed(0)
    model = genzoo.build(preset).eval()
    names = linear_names(model)
    assert len(names) >= 4 * model.config.n_layers
    q = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    kinds = dict(q.named_modules())
    quantized = torch.ao.nn.quantized.dynamic.Linear
    assert all(isinstance(kinds[n], quantized) for n in names), [n for n in names if not isinstance(kinds[n], quantized)]
    x = torch.randint(5, 500, (2, 16))
    with torch.no_grad():
        ref = model(x)
        out = q(x)
    ref, out = (ref.logits, out.logits) if preset.startswith(("llama", "gpt2")) else \
        (ref.last_hidden_state, out.last_hidden_state)
    rel = (out - ref).norm() / ref.norm()
    assert rel < 0.05, f"int8 output is {rel:.3f} relative away from fp32"


def batch(preset):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 500, (2, 12), generator=g)
    if preset.startswith(("llama", "gpt2", "mixtral")):
        return lambda m: m(ids, labels=ids).loss
    if preset.startswith(("bert", "modernbert", "deberta")):
        return lambda m: m(ids).last_hidden_state.pow(2).mean()
    if preset.startswith("t5"):
        return lambda m: m(ids, labels=ids[:, :6]).loss
    if preset.startswith("clip"):
        pixels = torch.randn(2, 3, 16, 16, generator=g)
        return lambda m: m(ids, pixels, return_loss=True).loss
    images = torch.randn(2, 1, 8, 8, generator=g)
    return lambda m: m(images, torch.tensor([1, 2]), generator=torch.Generator().manual_seed(0)).loss


@pytest.mark.parametrize("preset", ["llama-tiny", "gpt2-tiny", "mixtral-tiny", "bert-tiny", "modernbert-tiny",
                                    "deberta-v2-tiny", "t5-tiny", "clip-tiny", "dit-tiny"])
def test_peft_lora_wraps_every_projection_and_trains(preset):
    torch.manual_seed(0)
    model = genzoo.build(preset)
    names = linear_names(model)
    loss_of = batch(preset)
    model.eval()
    with torch.no_grad():
        before = loss_of(model)
    model = inject_adapter_in_model(LoraConfig(r=4, lora_alpha=8, target_modules=list(PROJECTIONS)), model)
    wrapped = {n for n, m in model.named_modules() if hasattr(m, "lora_A")}
    assert names and names <= wrapped, sorted(names - wrapped)
    with torch.no_grad():  # LoRA's B starts at zero: the wrapped model computes what the base model did
        torch.testing.assert_close(loss_of(model), before, atol=1e-6, rtol=1e-6)
    trainable = [p for n, p in model.named_parameters() if "lora_" in n]
    for n, p in model.named_parameters():
        p.requires_grad_("lora_" in n)
    opt = torch.optim.AdamW(trainable, lr=1e-2)
    start = [p.detach().clone() for p in trainable]
    model.train()
    loss = loss_of(model)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(start, trainable)), "the adapters did not move"
