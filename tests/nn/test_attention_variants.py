"""The attention softmax variant and gate in every genre that builds the shared `Attention` (seq2seq, CLIP, the
diffusion denoisers, next to the decoder and encoder genres): the config fields reach every attention of the model,
gates start near 0.25 (Bondarenko et al., arXiv 2306.12929, sec. 4.2) and learn, clipped softmax takes its gamma and
zeta from ``softmax_args`` (eq. 4.1), Hugging Face formats refuse what they cannot express, genzoo's own format
keeps it, and bad values raise ConfigError naming the field, the value and what is allowed."""

import math

import pytest
import torch
from torch import nn

import genzoo
from genzoo import ConfigError
from genzoo.nn import Attention, make_softmax
from genzoo.nn.gates import AttentionGate
from genzoo.nn.softmax import Clipped, Softmax1, Standard

# preset -> how many attention parts it builds (a gate or a softmax that misses one is caught)
PRESETS = {"t5-tiny": 6, "clip-tiny": 4, "dit-tiny": 2, "ddpm-tiny": 1, "ddpm-text-tiny": 2, "ddpm-unet2d-tiny": 4,
           "gpt2-tiny": 2, "bert-tiny": 2}
NEW = ["t5-tiny", "clip-tiny", "dit-tiny", "ddpm-text-tiny", "ddpm-unet2d-tiny"]


def attentions(model):
    return [m for m in model.modules() if isinstance(m, Attention)]


def run(model, g=None):
    """A forward pass of any of the presets on small random inputs -> a scalar to differentiate."""
    g = g or torch.Generator().manual_seed(1)
    c = model.config
    if c.genre in ("seq2seq", "decoder", "encoder"):
        ids = torch.randint(5, 500, (2, 12), generator=g)
        if c.genre == "seq2seq":
            return model(ids, labels=ids[:, :7]).loss
        out = model(ids)
        return (out.logits if c.genre == "decoder" else out.last_hidden_state).pow(2).mean()
    images = torch.randn(2, c.channels, c.image_size, c.image_size, generator=g)
    if c.genre == "clip":
        return model(torch.randint(5, 500, (2, 10), generator=g), images, return_loss=True).loss
    labels = torch.tensor([1, 2]) if c.n_classes else None
    context = torch.randn(2, 5, c.context_dim, generator=g) if c.context_dim else None
    return model(images, labels=labels, context=context, generator=g).loss


GATED = [(p, k) for p in NEW for k in ("head", "linear") if (p, k) != ("ddpm-unet2d-tiny", "linear")]  # UNet: once


@pytest.mark.parametrize("preset,kind", GATED, ids=[f"{p}-{k}" for p, k in GATED])
def test_every_attention_is_gated_starts_near_a_quarter_and_learns(preset, kind):
    torch.manual_seed(0)
    model = genzoo.build(preset, attn_gate=kind)
    for p in model.parameters():  # the denoisers' zero-initialised output layers would stop every gradient at step 0
        if p.dim() > 1 and not p.detach().any():
            nn.init.normal_(p, std=0.02)
    parts = attentions(model)
    assert len(parts) == PRESETS[preset] and all(isinstance(a.gate, AttentionGate) for a in parts)
    seen = []  # the gate values on the model's own activations, every gate
    hooks = [a.gate.register_forward_hook(lambda m, args, out: seen.append(torch.sigmoid(m.logits(args[0]))))
             for a in parts]
    loss = run(model)
    for h in hooks:
        h.remove()
    assert len(seen) >= len(parts)
    pi = torch.cat([s.detach().flatten() for s in seen])
    assert abs(pi.mean().item() - 0.25) < 0.03 and pi.std() < 0.1, (pi.mean(), pi.std())
    loss.backward()
    for a in parts:
        for name, p in a.gate.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches gate {name}"


@pytest.mark.parametrize("preset", list(PRESETS))
def test_softmax_variant_and_its_parameters_reach_every_attention(preset):
    model = genzoo.build(preset, softmax="clipped", softmax_args={"gamma": -0.01, "zeta": 1.02})
    parts = attentions(model)
    assert len(parts) == PRESETS[preset]
    assert all(isinstance(a.softmax, Clipped) and (a.softmax.gamma, a.softmax.zeta) == (-0.01, 1.02) for a in parts)
    assert all(isinstance(a.softmax, Softmax1) for a in attentions(genzoo.build(preset, softmax="softmax1")))
    default = genzoo.build(preset)
    assert all(type(a.softmax) is Standard and a.gate is None for a in attentions(default))
    assert math.isfinite(run(model).item())


def test_clipped_softmax_takes_gamma_and_zeta():
    scores = torch.randn(3, 40)
    p = torch.softmax(scores, -1)
    out = make_softmax("clipped", {"gamma": -0.1, "zeta": 1.2})(scores)
    torch.testing.assert_close(out, (1.3 * p - 0.1).clamp(0, 1), atol=1e-6, rtol=0)
    assert (out == 0).any() and (out > 0).any()  # exact zeros where 1.3 p <= 0.1, the rest passes


def test_clipped_softmax_pitfall_uniform_rows():
    """The docstring's arithmetic: gamma = -0.03, zeta = 1 clips all of a uniform row over more than 34 keys."""
    clipped = Clipped()
    assert clipped(torch.zeros(1, 34)).sum() > 0
    assert clipped(torch.zeros(1, 35)).sum() == 0
    # a smaller |gamma| keeps a 128-key uniform row alive: -gamma < zeta / (T - 1)
    assert make_softmax("clipped", {"gamma": -0.5 / 127})(torch.zeros(1, 128)).sum() > 0


@pytest.mark.parametrize("args,match", [
    ({"gamma": 0.1}, r"softmax_args\.gamma=0\.1 .*<= 0"),
    ({"gamma": float("nan")}, r"softmax_args\.gamma=nan .*finite"),
    ({"gamma": float("-inf")}, r"softmax_args\.gamma=-inf .*finite"),
    ({"gamma": "small"}, r"softmax_args\.gamma='small' .*number"),
    ({"gamma": True}, r"softmax_args\.gamma=True .*number"),
    ({"zeta": 0.5}, r"softmax_args\.zeta=0\.5 .*>= 1"),
    ({"zeta": float("inf")}, r"softmax_args\.zeta=inf .*finite"),
    ({"alpha": 4}, r"softmax_args=\{'alpha': 4\} .*'clipped' takes only gamma, zeta, not alpha"),
    ([1, 2], r"softmax_args=\[1, 2\] .*None or a dict"),
])
@pytest.mark.parametrize("preset", ["t5-tiny", "clip-tiny", "dit-tiny", "gpt2-tiny", "bert-tiny"])
def test_bad_softmax_args_raise(preset, args, match):
    with pytest.raises(ConfigError, match=match):
        genzoo.build(preset, softmax="clipped", softmax_args=args)


def test_variants_without_parameters_take_none():
    for name in ("standard", "softmax1"):
        with pytest.raises(ConfigError, match=f"softmax '{name}' takes no parameters, not gamma"):
            genzoo.build("t5-tiny", softmax=name, softmax_args={"gamma": -0.1})
        assert isinstance(make_softmax(name, {}), (Standard, Softmax1))


@pytest.mark.parametrize("preset", ["t5-tiny", "clip-tiny", "dit-tiny", "ddpm-unet2d-tiny"])
@pytest.mark.parametrize("field,value", [("softmax", "nope"), ("attn_gate", "nope")])
def test_unknown_names_raise(preset, field, value):
    with pytest.raises(ConfigError, match="nope"):
        genzoo.build(preset, **{field: value})


def test_head_gate_needs_d_model_divisible_by_heads():
    # T5's head_dim is free, so d_model need not split into n_heads slices: the 'head' gate is refused, 'linear' is fine
    with pytest.raises(ConfigError, match=r"attn_gate='head'.*d_model=60.*n_heads=8"):
        genzoo.build("t5-tiny", d_model=60, n_heads=8, attn_gate="head")
    genzoo.build("t5-tiny", d_model=60, n_heads=8, attn_gate="linear")


@pytest.mark.parametrize("preset,fmt", [("t5-tiny", "t5"), ("clip-tiny", "clip"), ("ddpm-unet2d-tiny", "diffusers")])
@pytest.mark.parametrize("field,value", [("attn_gate", "head"), ("softmax", "softmax1"), ("softmax", "clipped")])
def test_hugging_face_formats_refuse_variants(tmp_path, preset, fmt, field, value):
    model = genzoo.build(preset, **{field: value})
    with pytest.raises(ConfigError, match=f"{field}='{value}' cannot be written as a '{fmt}' checkpoint"):
        genzoo.save(model, tmp_path / "m", format=fmt)
    assert not (tmp_path / "m").exists()  # refused before anything is written


@pytest.mark.parametrize("preset", ["t5-tiny", "clip-tiny", "ddpm-text-tiny"])
def test_genzoo_format_keeps_gate_and_softmax_args(tmp_path, preset):
    torch.manual_seed(0)
    model = genzoo.build(preset, attn_gate="linear", softmax="clipped", softmax_args={"gamma": -0.02, "zeta": 1.01},
                         checkpoint_format="genzoo").eval()
    with torch.no_grad():  # gates away from their init, so a gate lost in the round trip shows
        for a in attentions(model):
            a.gate.proj.bias.normal_()
    genzoo.save(model, tmp_path / "m")
    loaded = genzoo.load(tmp_path / "m").eval()
    assert loaded.config.softmax_args == {"gamma": -0.02, "zeta": 1.01} and loaded.config.attn_gate == "linear"
    with torch.no_grad():
        assert torch.equal(run(loaded), run(model))


def test_gato_passes_gate_and_softmax_args_to_its_decoder_blocks():
    model = genzoo.build("gato-nano", attn_gate="head", softmax="clipped", softmax_args={"gamma": -0.01})
    parts = attentions(model)
    assert len(parts) == model.config.n_layers
    for a in parts:  # reset_parameters zeroes every 1-D parameter; the gates are re-opened after it
        torch.testing.assert_close(torch.sigmoid(a.gate.bias), torch.full_like(a.gate.bias, 0.25))
        assert isinstance(a.softmax, Clipped) and a.softmax.gamma == -0.01
