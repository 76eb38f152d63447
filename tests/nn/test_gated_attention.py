"""Gated attention (Bondarenko et al., arXiv 2306.12929, eq. 6): the gate part against its formula, a gate forced
open (pi = 1) equal to the ungated model in every genre that offers it, the initial gate value, and the errors."""

import pytest
import torch
from torch import nn

import genzoo
from genzoo import ConfigError
from genzoo.nn import ATTENTION_GATES, Attention
from genzoo.nn.gates import HeadGate, LinearGate
from genzoo.nn.masks import build_mask


def attention(gate, d=32, h=4, causal=True):
    torch.manual_seed(0)
    return Attention(*(nn.Linear(d, d) for _ in range(3)), nn.Identity(), n_heads=h, n_kv_heads=h, head_dim=d // h,
                     causal=causal, gate=gate).eval()


@pytest.mark.parametrize("kind", ["head", "linear"])
def test_gate_against_its_formula(kind):
    d, h = 32, 4
    attn = attention(ATTENTION_GATES.get(kind)(d, h), d, h)
    with torch.no_grad():  # weights away from their small init, so the gate varies with x
        for p in attn.gate.parameters():
            p.normal_(std=0.5)
    x = torch.randn(2, 7, d)
    mask = build_mask(7, 7, 0, causal=True)
    with torch.no_grad():
        gated = attn(x, mask)
        gate, attn.gate = attn.gate, None
        heads = attn(x, mask).view(2, 7, h, d // h)  # o_proj is the identity: the heads' outputs
    if kind == "head":  # G_i(x) = w_i . x[i C:(i + 1) C] + b_i
        logits = torch.einsum("bthc,hc->bth", x.view(2, 7, h, d // h), gate.weight) + gate.bias
    else:  # G(x) = W x + b
        logits = x @ gate.proj.weight.T + gate.proj.bias
    expected = (heads * torch.sigmoid(logits)[..., None]).reshape(2, 7, d)
    torch.testing.assert_close(gated, expected, atol=1e-6, rtol=0)
    assert logits.std() > 0.5  # the check compared gates that differ per token and head


def force_open(model):
    """Every gate to exactly 1: zero weights, bias 30 (sigmoid(30) rounds to 1.0 in fp32)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".attn.gate." in name:
                p.fill_(30.0 if name.endswith("bias") else 0.0)
    return model


def ungated_twin(preset, gated, **overrides):
    plain = genzoo.build(preset, **overrides).eval()
    state = {k: v for k, v in gated.state_dict().items() if ".attn.gate." not in k}
    missing, unexpected = plain.load_state_dict(state, strict=False)
    assert not missing and not unexpected
    return plain


@pytest.mark.parametrize("preset,kind", [("gpt2-tiny", "head"), ("llama-tiny", "linear"), ("bert-tiny", "head"),
                                         ("modernbert-tiny", "head")])
def test_gate_forced_to_one_equals_ungated(preset, kind):
    torch.manual_seed(0)
    gated = force_open(genzoo.build(preset, attn_gate=kind).eval())
    plain = ungated_twin(preset, gated)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 500, (2, 12), generator=g)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 8:] = 0  # a ragged batch: encoders run it unpadded, decoders with a padding mask
    with torch.no_grad():
        if preset.startswith(("bert", "modernbert")):
            a, b = gated(ids, attention_mask=mask).last_hidden_state, plain(ids, attention_mask=mask).last_hidden_state
            a, b = a[mask.bool()], b[mask.bool()]
        else:
            a, b = gated(ids, attention_mask=mask).logits, plain(ids, attention_mask=mask).logits
            a, b = a[mask.bool()], b[mask.bool()]
            # and greedy decoding through the static cache
            assert torch.equal(gated.generate(ids[:1], max_new_tokens=8), plain.generate(ids[:1], max_new_tokens=8))
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_gate_starts_near_its_init_and_learns():
    torch.manual_seed(0)
    model = genzoo.build("gpt2-tiny", attn_gate="head")
    gate = model.blocks[0].attn.gate
    x = torch.randn(4, 16, model.config.d_model)
    pi = torch.sigmoid(gate.logits(x))
    assert abs(pi.mean().item() - 0.25) < 0.02 and pi.std() < 0.05
    ids = torch.randint(5, 500, (2, 12))
    model(ids, labels=ids).loss.backward()
    assert gate.weight.grad.abs().sum() > 0 and gate.bias.grad.abs().sum() > 0


def test_gate_round_trips_through_the_genzoo_format(tmp_path):
    torch.manual_seed(0)
    model = genzoo.build("bert-tiny", attn_gate="head", checkpoint_format="genzoo").eval()
    genzoo.save(model, tmp_path / "m")
    loaded = genzoo.load(tmp_path / "m")
    ids = torch.randint(5, 500, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).last_hidden_state, model(ids).last_hidden_state, atol=0, rtol=0)


def test_gate_errors(tmp_path):
    with pytest.raises(ConfigError, match="attn_gate|nope"):
        genzoo.build("gpt2-tiny", attn_gate="nope")
    with pytest.raises(ConfigError, match="multiple of n_heads"):
        HeadGate(30, 4)
    with pytest.raises(ConfigError, match="init"):
        LinearGate(32, 4, init=1.0)
    for preset in ("gpt2-tiny", "llama-tiny", "bert-tiny"):  # no Hugging Face format has a gate
        with pytest.raises(ConfigError, match="attn_gate"):
            genzoo.save(genzoo.build(preset, attn_gate="head"), tmp_path / preset)
