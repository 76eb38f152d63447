"""Meta-Transformer: a tokenizer per modality into a frozen shared encoder (no gradient, unchanged after training;
only tokenizers and head train), the text tokenizer starting as the pretrained encoder's own input, the embedded
data sets of six modalities, farthest-point sampling, inputs_embeds in the shared stack, bad inputs."""

import pytest
import torch

import genzoo
from genzoo.data.modality_sets import MODALITY_SETS
from genzoo.errors import ConfigError, InputError
from genzoo.models.fusion.modalities import MODALITY_TOKENIZERS, farthest_points

INPUTS = {  # modality -> (input_shape, patch, example batch)
    "image": ((1, 8, 8), 2, lambda: torch.randn(4, 1, 8, 8)),
    "audio": ((1, 16, 16), 4, lambda: torch.randn(4, 1, 16, 16)),
    "text": ((6,), 1, lambda: torch.tensor([[101, 7, 8, 102, 0, 0]] * 4)),
    "point-cloud": ((64, 3), 1, lambda: torch.randn(4, 64, 3)),
    "tabular": ((5,), 1, lambda: torch.randn(4, 5)),
    "time-series": ((32,), 8, lambda: torch.randn(4, 32)),
}


def tiny(modality, **kw):
    shape, patch, _ = INPUTS[modality]
    return genzoo.build("meta-transformer-tiny", modality=modality, input_shape=shape, patch=patch, n_classes=3,
                        n_groups=8, group_size=8, **kw)


def test_every_modality_has_a_tokenizer():
    assert set(INPUTS) <= set(MODALITY_TOKENIZERS.names())


@pytest.mark.parametrize("modality", list(INPUTS))
def test_frozen_encoder_gets_no_gradient_and_does_not_change(modality):
    model = tiny(modality).train()
    assert not model.encoder.training  # frozen: no dropout either
    x, y = INPUTS[modality][2](), torch.tensor([0, 1, 2, 1])
    frozen = {n: p.clone() for n, p in model.encoder.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        out = model(x, y)
        assert out.logits.shape == (4, 3)
        opt.zero_grad()
        out.loss.backward()
        assert all(p.grad is None for p in model.encoder.parameters())
        assert all(p.grad is not None for p in model.head.parameters())
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.modality_tokenizer.parameters())
        opt.step()
    assert all(torch.equal(p, frozen[n]) for n, p in model.encoder.named_parameters())
    counts = model.parameter_counts()
    assert counts["trainable"] == sum(p.numel() for p in (*model.modality_tokenizer.parameters(),
                                                           *model.head.parameters()))


def test_unfrozen_encoder_trains():
    model = tiny("image", freeze_encoder=False).train()
    model(INPUTS["image"][2](), torch.tensor([0, 1, 2, 1])).loss.backward()
    assert all(p.grad is not None for p in model.encoder.blocks.parameters())


def test_text_tokens_start_as_the_pretrained_encoders_own_input():
    """With all-MiniLM-L6-v2 as the shared encoder, the text tokenizer (word embeddings + identity adapter) makes
    the encoder see exactly what the pretrained encoder sees: its hidden states are the pretrained ones. The
    trainable share is far under 10%."""
    from genzoo.train.meta_task import shared_encoder

    pretrained, cfg = shared_encoder("all-MiniLM-L6-v2")
    model = genzoo.build("meta-transformer-minilm", modality="text", input_shape=(8,), n_classes=3,
                         encoder=genzoo.config.to_dict(cfg)).load_encoder(pretrained).eval()
    from genzoo.data.modality_sets import encoder_tokens

    ids = encoder_tokens(["a frozen shared encoder", "reads every modality"], 8)
    mask = (ids != 0).long()
    with torch.no_grad():
        want = pretrained.eval()(ids, attention_mask=mask).last_hidden_state
        got = model(ids).last_hidden_state
    keep = mask.bool()
    torch.testing.assert_close(got[keep], want[keep], atol=1e-5, rtol=0)
    assert model.parameter_counts()["trainable_share"] < 0.10


@pytest.mark.parametrize("genre_preset", ["bert-tiny", "llama-tiny"])
def test_inputs_embeds_equal_embedded_ids(genre_preset):
    model = genzoo.build(genre_preset).eval()
    ids = torch.randint(1, 100, (2, 7))
    with torch.no_grad():
        a = model(ids).last_hidden_state
        b = model(None, inputs_embeds=model.embed(ids)).last_hidden_state
    torch.testing.assert_close(a, b)
    with pytest.raises(InputError, match="inputs_embeds"):
        model(None, inputs_embeds=torch.zeros(2, 7, 3))


def test_farthest_point_sampling():
    g = torch.Generator().manual_seed(0)
    xyz = torch.randn(2, 50, 3, generator=g)
    idx = farthest_points(xyz, 6)
    assert idx.shape == (2, 6) and (idx[:, 0] == 0).all()
    for b in range(2):
        assert len(set(idx[b].tolist())) == 6
        d = (xyz[b] - xyz[b, 0]).pow(2).sum(-1)
        assert idx[b, 1] == d.argmax()  # the second point is the farthest from the first
        chosen = xyz[b, idx[b, :3]]
        gap = torch.cdist(xyz[b], chosen).min(1).values
        assert idx[b, 3] == gap.argmax()  # each next point is the farthest from those chosen


@pytest.mark.parametrize("name", ["digits", "textures", "shapes", "sounds", "wine", "breast-cancer", "signals"])
def test_embedded_data_sets(name):
    s = MODALITY_SETS.get(name)
    tx, ty, vx, vy = s.load(20.0, 0)
    assert tuple(tx.shape[1:]) == s.input_shape == tuple(vx.shape[1:])
    assert set(ty.tolist()) == set(range(s.n_classes)) == set(vy.tolist())
    assert tx.is_floating_point() and torch.isfinite(tx).all()
    assert s.modality in MODALITY_TOKENIZERS.names()


@pytest.mark.slow
def test_docstring_text_set():
    s = MODALITY_SETS.get("docstrings")
    tx, ty, vx, vy = s.load(20.0, 0)
    assert tx.dtype == torch.long and tuple(tx.shape[1:]) == s.input_shape and (tx[:, 0] == 101).all()
    assert set(ty.tolist()) == {0, 1, 2}


def test_bad_inputs():
    with pytest.raises(ConfigError, match="smell"):
        genzoo.build("meta-transformer-tiny", modality="smell")  # an unknown modality
    with pytest.raises(ConfigError, match="smell"):
        MODALITY_SETS.get("smell")
    model = tiny("image")
    with pytest.raises(InputError, match="shape"):
        model(torch.zeros(2, 1, 16, 16))  # an image of the wrong size
    with pytest.raises(InputError, match="floating"):
        model(torch.zeros(2, 1, 8, 8, dtype=torch.long))
    text = tiny("text")
    with pytest.raises(InputError, match="out of range"):
        text(torch.full((1, 6), 10**6))
    with pytest.raises(InputError, match="no real token"):
        text(torch.zeros(1, 6, dtype=torch.long))
