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
or the build raises ConfigError (which the test also requires to name the field's value)."""

import pytest
import torch
from torch import nn

import genzoo
from genzoo import ConfigError
from genzoo.nn import ATTENTION_GATES, FFNS, NORMS, POSITIONS, SOFTMAX

GENRES = {"decoder": "llama-tiny", "encoder": "bert-tiny"}
FIELDS = {"position": POSITIONS, "softmax": SOFTMAX, "norm": NORMS, "ffn": FFNS, "attn_gate": ATTENTION_GATES}
FFN_ACTIVATION = {"swiglu": "silu", "geglu": "gelu"}  # these names fix their activation
CASES = [(g, f, n) for g in GENRES for f, reg in FIELDS.items() for n in reg.names()]
CASES += [("seq2seq", "ffn", n) for n in FFNS.names()]


def build(genre, field, name):
    preset = {"seq2seq": "t5-tiny"}.get(genre, GENRES.get(genre))
    # one decoder layer for positions: from the second layer on, the causal mask itself leaks order
    overrides = {field: name, "n_layers": 1 if (genre, field) == ("decoder", "position") else 2}
    if field == "ffn":
        overrides["activation"] = FFN_ACTIVATION.get(name, "gelu")
    torch.manual_seed(0)
    return genzoo.build(preset, **overrides).train(False)


def ids(genre, t=12):
    g = torch.Generator().manual_seed(1)
    return torch.randint(5, 500, (2, t), generator=g)


def hidden(model, genre, x):
    if genre == "encoder":
        return model(x).last_hidden_state
    if genre == "seq2seq":
        return model(x, decoder_input_ids=x[:, :6]).logits
    return model(x).logits


def assert_all_parameters_learn(model, genre, x):
    model.zero_grad()
    out = hidden(model, genre, x)
    loss = out.float().pow(2).mean()
    if genre == "encoder" and model.pooler is not None:
        loss = loss + model(x).pooler_output.sum()
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


def pass_through(model, field):
    """The same model with every part of this field replaced by a pass-through."""
    for block in model.blocks:
        if field == "norm":
            block.attn_norm, block.ffn_norm = nn.Identity(), nn.Identity()
        elif field == "attn_gate":
            block.attn.gate = None
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
        assert all(b.attn.gate is None for b in model.blocks)
    elif genre != "seq2seq":  # norm / ffn / attn_gate: the part is on the computation path
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
