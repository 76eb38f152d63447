"""Every registered part, in every genre that can choose it, either does something or is refused when the model
is built: no silent no-op combination (issue: `bert-tiny` + ALiBi once gave an encoder with no position
information at all; `gpt2-tiny` + disentangled trained a table that got no gradient).

For each (genre, field, registered name) the model is built with that part, and then
- a position part makes the model position-aware (an encoder's output is no longer permutation-equivariant; a
  decoder's last logits change when two earlier tokens swap), except "none", which is checked to be unaware;
- a softmax variant changes the output against the standard softmax on the same weights;
- an attention gate changes the output against the same model with its gates removed;
- a norm or FFN part changes the output when it is replaced by a pass-through (identity / zero);
- and every parameter of the model receives a non-zero gradient;
or the build raises ConfigError (which the test also requires to name the field's value).

The other genres that build the shared `Attention` (seq2seq, CLIP, the diffusion DiT and UNet) choose its softmax
variant and gate too: those two fields are checked there the same way (the norm / FFN / position parts of those
genres are fixed by their architectures)."""

import pytest
import torch
from torch import nn

import genzoo
from genzoo import ConfigError
from genzoo.nn import ATTENTION_GATES, FFNS, NORMS, POSITIONS, SOFTMAX, Attention

GENRES = {"decoder": "llama-tiny", "encoder": "bert-tiny"}
FIELDS = {"position": POSITIONS, "softmax": SOFTMAX, "norm": NORMS, "ffn": FFNS, "attn_gate": ATTENTION_GATES}
FFN_ACTIVATION = {"swiglu": "silu", "geglu": "gelu"}  # these names fix their activation
CASES = [(g, f, n) for g in GENRES for f, reg in FIELDS.items() for n in reg.names()]
CASES += [("seq2seq", "ffn", n) for n in FFNS.names()]
# genres whose attention parts are chosen by softmax / attn_gate only; "unet": self- and cross-attention
ATTENTION_ONLY = {"seq2seq": "t5-tiny", "clip": "clip-tiny", "dit": "dit-tiny", "unet": "ddpm-text-tiny"}
CASES += [(g, f, n) for g in ATTENTION_ONLY for f in ("softmax", "attn_gate") for n in FIELDS[f].names()]


def build(genre, field, name):
    preset = ATTENTION_ONLY.get(genre, GENRES.get(genre))
    # one decoder layer for positions: from the second layer on, the causal mask itself leaks order
    overrides = {field: name}
    if genre in GENRES or genre == "seq2seq":
        overrides["n_layers"] = 1 if (genre, field) == ("decoder", "position") else 2
    if field == "ffn":
        overrides["activation"] = FFN_ACTIVATION.get(name, "gelu")
    torch.manual_seed(0)
    model = genzoo.build(preset, **overrides).train(False)
    for p in model.parameters():  # the denoisers' zero-initialised output layers would stop every gradient
        if p.dim() > 1 and not p.detach().any():
            nn.init.normal_(p, std=0.02)
    return model


def ids(genre, t=12):
    g = torch.Generator().manual_seed(1)
    return torch.randint(5, 500, (2, t), generator=g)


def side_inputs(model):
    """Images, timesteps, labels and text states for the genres that read more than token ids."""
    g = torch.Generator().manual_seed(3)
    c = model.config
    images = torch.randn(2, c.channels, c.image_size, c.image_size, generator=g)
    if c.genre == "clip":
        return dict(pixel_values=images)
    labels = torch.tensor([1, 2]) if c.n_classes else None
    context = torch.randn(2, 5, c.context_dim, generator=g) if c.context_dim else None
    return dict(x_t=images, t=torch.tensor([3, 50]), labels=labels, context=context)


def hidden(model, genre, x):
    if genre == "encoder":
        return model(x).last_hidden_state
    if genre == "seq2seq":
        return model(x, decoder_input_ids=x[:, :6]).logits
    if genre == "clip":  # every token of both towers
        px = side_inputs(model)["pixel_values"]
        return torch.cat([model.text(x)[0].flatten(), model.vision(px)[0].flatten()])
    if genre in ("dit", "unet"):
        return model.denoise(**side_inputs(model))
    return model(x).logits


def assert_all_parameters_learn(model, genre, x):
    model.zero_grad()
    out = hidden(model, genre, x)
    loss = out.float().pow(2).mean()
    if genre == "encoder" and model.pooler is not None:
        loss = loss + model(x).pooler_output.sum()
    if genre == "clip":  # the projections and the temperature
        loss = loss + model(x, **side_inputs(model), return_loss=True).loss
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not dead, f"parameters that get no gradient: {dead}"


def position_aware(model, genre, x) -> bool:
    """Whether reordering the input changes more than float rounding (relative 1e-6; without positions the
    change measures ~1e-7, with the weakest part, sinusoidal next to 0.02-scale embeddings, ~7e-6)."""
    perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        if genre == "encoder":  # equivariant without positions: f(x[:, perm]) == f(x)[:, perm]
            a, b = hidden(model, genre, x[:, perm]), hidden(model, genre, x)[:, perm]
        else:  # causal, one layer: without positions the last token sees its prefix as a set
            swapped = x.clone()
            swapped[:, [0, 10]] = x[:, [10, 0]]
            a, b = hidden(model, genre, swapped)[:, -1], hidden(model, genre, x)[:, -1]
    return bool((a - b).abs().max() > 1e-6 * b.abs().max())


def attentions(model):
    return [m for m in model.modules() if isinstance(m, Attention)]


def pass_through(model, field):
    """The same model with every part of this field replaced by a pass-through."""
    if field == "attn_gate":
        for attn in attentions(model):
            attn.gate = None
        return model
    for block in model.blocks:
        if field == "norm":
            block.attn_norm, block.ffn_norm = nn.Identity(), nn.Identity()
        else:
            block.ffn = ZeroFFN()
    return model


class ZeroFFN(nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


@pytest.mark.parametrize("genre,field,name", CASES, ids=[f"{g}-{f}-{n}" for g, f, n in CASES])
def test_every_part_acts_or_is_refused(genre, field, name):
    try:
        model = build(genre, field, name)
    except ConfigError as e:
        assert name in str(e) or field in str(e), f"the error must name the field or value: {e}"
        return
    x = ids(genre)
    assert_all_parameters_learn(model, genre, x)
    if field == "position":
        assert position_aware(model, genre, x) == (name != "none"), f"{name}: position awareness"
    elif field == "softmax":
        if name != "standard":
            reference = build(genre, field, "standard")
            reference.load_state_dict(model.state_dict())
            with torch.no_grad():
                assert not torch.allclose(hidden(model, genre, x), hidden(reference, genre, x), atol=1e-5)
    elif field == "attn_gate" and name == "none":
        assert all(a.gate is None for a in attentions(model))
    elif field == "attn_gate" or genre != "seq2seq":  # norm / ffn / attn_gate: the part is on the computation path
        if field == "attn_gate":
            assert all(a.gate is not None for a in attentions(model)), "every attention of the model is gated"
        with torch.no_grad():
            before = hidden(model, genre, x)
            after = hidden(pass_through(model, field), genre, x)
        assert not torch.allclose(before, after, atol=1e-5), f"{field}={name} changes nothing"


def test_most_combinations_build():
    """The product test is not satisfied by refusing everything: every position kind builds in both genres."""
    for genre in GENRES:
        for name in POSITIONS.names():
            build(genre, "position", name)


def test_rotary_attention_without_a_rotary_part_is_refused():
    from genzoo.nn import Attention, Block, MLP, Stack
    from genzoo.nn.positions import ALiBi

    d = 16
    attn = Attention(*(nn.Linear(d, d) for _ in range(4)), n_heads=2, n_kv_heads=2, head_dim=8, rotary=True)
    block = Block(attn, MLP.build(d, 32), nn.LayerNorm(d), nn.LayerNorm(d))
    with pytest.raises(ConfigError, match="rotary"):
        Stack([block], embed=nn.Embedding(10, d), positions=ALiBi(2))
