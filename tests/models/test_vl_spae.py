"""SPAE (genzoo.models.vl.spae): streaming average quantisation against its formula, the frozen codebook (only
allowed vocabulary ids, no gradient, unchanged by training), the semantic loss against its formula, decoding from
any prefix, save/load, and bad input."""

import pytest
import torch
import torch.nn.functional as F

import genzoo
from genzoo.errors import ConfigError, InputError
from genzoo.models.vl import SPAE, psnr


@pytest.fixture
def spae():
    torch.manual_seed(0)
    m = genzoo.build("spae-tiny")
    m.set_codebook(torch.randn(64, 16), range(8, 64))  # ids 0..7 are not content words
    return m


def test_saq_matches_its_formula(spae):
    """t_l = pool_l(l z - sum_{i<l} up(e_i)); k_l = nearest allowed row; zq_l = mean of the l upsampled codes."""
    z = torch.randn(3, 16, 4, 4)
    q = spae.quantize(z)
    e, allowed = spae.codebook, spae.allowed
    total = torch.zeros_like(z)
    for level, (s, ids, target) in enumerate(zip((1, 2, 4), q.ids, q.targets), 1):
        want = F.avg_pool2d(level * z - total, 4 // s).flatten(2).transpose(1, 2)  # (B, s*s, Dc)
        torch.testing.assert_close(target, want, atol=1e-5, rtol=0)
        d = torch.cdist(want, e[allowed][None].expand(3, -1, -1))  # brute-force nearest allowed row
        torch.testing.assert_close(ids, allowed.nonzero().squeeze(1)[d.argmin(-1)])
        code = e[ids].transpose(1, 2).reshape(3, 16, s, s)
        total = total + F.interpolate(code, scale_factor=4 // s, mode="nearest")
        torch.testing.assert_close(q.prefixes[level - 1], total / level, atol=1e-5, rtol=0)


def test_decoding_any_prefix_equals_the_forward_pass(spae):
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    with torch.no_grad():
        out = spae(x)
    assert out.token_ids.shape == (4, 21) and bool(spae.allowed[out.token_ids].all())
    for depth, end in enumerate((1, 5, 21)):
        torch.testing.assert_close(spae.decode_tokens(out.token_ids[:, :end]),
                                   out.reconstructions[depth].clamp(-1, 1), atol=1e-5, rtol=0)
    assert [t.shape[1] for t in spae.split(out.token_ids)] == [1, 4, 16]


def test_quantiser_only_emits_allowed_ids(spae):
    spae.set_codebook(spae.codebook, [40, 41, 42])
    ids = spae.tokenize(torch.rand(16, 1, 8, 8) * 2 - 1)
    assert set(ids.unique().tolist()) <= {40, 41, 42}


def test_semantic_loss_matches_its_formula(spae):
    """-mean over positives c of log softmax_k(-||t_1 - e_k||^2 / (tau * spread))[c], k over allowed rows."""
    z = torch.randn(2, 16, 4, 4)
    q = spae.quantize(z)
    pos = torch.tensor([[10, 20], [30, 63]])
    t = q.targets[0][:, 0]  # (B, Dc): the coarse layer's one token
    e = spae.codebook[spae.allowed]
    spread = ((e - e.mean(0)) ** 2).sum(-1).mean()
    logp = (-(torch.cdist(t, e) ** 2) / (spae.config.semantic_temperature * spread)).log_softmax(-1)  # (B, 56)
    want = -logp.gather(1, pos - 8).mean()  # allowed ids start at 8
    torch.testing.assert_close(spae.semantic_loss(q, pos), want, atol=1e-4, rtol=1e-4)


def test_codebook_is_frozen_through_training(spae):
    before = spae.codebook.clone()
    names = {n for n, _ in spae.named_parameters()}
    assert "codebook" not in names and "allowed" not in names
    opt = torch.optim.AdamW(spae.parameters(), lr=1e-2)
    x = torch.rand(8, 1, 8, 8) * 2 - 1
    first = None
    for _ in range(3):
        out = spae(x, positives=torch.randint(8, 64, (8, 2)))
        first = first if first is not None else out.loss.item()
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert spae.codebook.grad is None and torch.equal(spae.codebook, before)
    assert spae(x).reconstruction_loss.item() < first  # the rest does train


def test_save_load_keeps_codebook_and_outputs(spae, tmp_path):
    genzoo.save(spae, tmp_path / "s")
    back = genzoo.load(tmp_path / "s")
    assert isinstance(back, SPAE) and torch.equal(back.codebook, spae.codebook)
    assert torch.equal(back.allowed, spae.allowed)
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    assert torch.equal(back.tokenize(x), spae.eval().tokenize(x))


def test_psnr():
    x = torch.zeros(2, 1, 8, 8)
    assert psnr(x + 0.2, x) == pytest.approx(10 * torch.log10(torch.tensor(4 / 0.04)).item(), rel=1e-5)


def test_bad_input(spae):
    with pytest.raises(InputError, match="channels 1, 8x8"):
        spae.tokenize(torch.zeros(2, 3, 8, 8))
    with pytest.raises(InputError, match=r"expected \(batch, \*\(1, 8, 8\)\)"):
        spae(torch.zeros(2, 1, 16, 16))
    with pytest.raises(InputError, match="do not end a pyramid layer"):
        spae.decode_tokens(torch.full((1, 3), 9))
    with pytest.raises(InputError, match="allowed codebook ids"):
        spae.decode_tokens(torch.full((1, 5), 2))  # id 2 is not a content word
    with pytest.raises(InputError, match="allowed_ids is empty"):
        spae.set_codebook(spae.codebook, [])
    with pytest.raises(ConfigError, match="codebook_size"):
        spae.set_codebook(torch.zeros(10, 16))
    with pytest.raises(ConfigError, match="pyramid"):
        genzoo.build("spae-tiny", pyramid=(2, 1, 4))
    with pytest.raises(InputError, match="positives"):
        spae(torch.zeros(2, 1, 8, 8), positives=torch.zeros(3, 2, dtype=torch.long))


def test_spae_takes_the_attention_options_of_clips_blocks():
    """SPAE builds its encoder/decoder from CLIP's blocks, so it has CLIP's attention fields (a regression: the
    blocks read `softmax`, which SPAE's config lacked, and every SPAE build failed)."""
    from genzoo.models.vl.spae import SPAEConfig
    from genzoo.nn import Attention

    cfg = SPAEConfig(softmax="softmax1", attn_gate="head")
    attn = [m for m in SPAE(cfg).modules() if isinstance(m, Attention)]
    assert attn and all(a.softmax.name == "softmax1" and a.gate is not None for a in attn)
    with pytest.raises(ConfigError):
        SPAEConfig(softmax="nope")
