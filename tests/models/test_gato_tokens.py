"""Gato's tokenization, each piece against its formula (arXiv 2205.06175, sec. 2.1, appendix C.3): mu-law and its
round trip, bin edges, the joint vocabulary's offsets, patches and their normalisation and intervals, and the loss
mask, checked position by position on a sequence built by hand."""

import math

import pytest
import torch

import genzoo
from genzoo import InputError
from genzoo.models.gato.model import masked_loss
from genzoo.models.gato.sequence import (ControlSpec, Layout, Tokens, action_tokens, caption_tokens, episode_tokens,
                                         loss_mask, observation_tokens, text_tokens)
from genzoo.models.gato.tokens import (BINS, CONTINUOUS, DISCRETE, IMAGE, SEPARATOR, TEXT, Vocab, bin_centres,
                                       bin_edges, discretise, interval_index, inverse_mu_law, mu_law,
                                       normalise_patches, patch_intervals, patchify)

CARTPOLE = ControlSpec("cartpole", "CartPole-v1", "continuous", (4,), "discrete", n_actions=2)
ARM = ControlSpec("arm", "Arm-v0", "continuous", (3,), "continuous", action_dims=2, action_low=(-2.0, -1.0),
                  action_high=(2.0, 1.0))


def test_mu_law_formula():
    x = torch.tensor([0.0, 1.0, -1.0, 256.0, -256.0, 0.01], dtype=torch.float64)
    expected = torch.sign(x) * torch.log(x.abs() * 100 + 1) / math.log(256 * 100 + 1)
    torch.testing.assert_close(mu_law(x), expected, rtol=0, atol=1e-12)
    assert mu_law(torch.tensor(256.0, dtype=torch.float64)) == 1.0  # F(M) = 1
    torch.testing.assert_close(inverse_mu_law(mu_law(x)), x, rtol=1e-12, atol=1e-12)
    grid = torch.linspace(-300, 300, 10001, dtype=torch.float64)
    assert bool((mu_law(grid).diff() > 0).all())  # strictly increasing


def test_mu_law_round_trip_error_bound():
    """A value in [-M, M] comes back inside its bin's value interval, so the error is at most that interval's width
    (mu-law makes it fine near 0: under 1e-3 for |x| < 0.05) ; beyond M it is clipped to the last bin."""
    v = Vocab(text_size=100)
    x = torch.cat([torch.linspace(-256, 256, 20001, dtype=torch.float64), torch.tensor([0.0, 1e-6, -1e-6])])
    ids = v.continuous(x)
    back = v.continuous_values(ids)
    k = ids - v.continuous_offset
    edges = bin_edges()
    lo, hi = inverse_mu_law(edges[k]), inverse_mu_law(edges[(k + 1).clamp(max=BINS)])
    assert bool(((x >= lo - 1e-9) & (x <= hi + 1e-9)).all())
    assert bool(((back - x).abs() <= (hi - lo) + 1e-12).all())
    small = x.abs() < 0.05
    assert float((back - x)[small].abs().max()) < 1e-3
    # the analytic bound: half a bin in mu-law space, |dF^-1/dy| <= ln(M mu + 1) / mu * (|x| mu + 1) there
    bound = (1.0 / BINS) * math.log(256 * 100 + 1) / 100 * ((x.abs() + (hi - lo)) * 100 + 1)
    assert bool(((back - x).abs() <= bound).all())
    assert v.continuous_values(v.continuous(torch.tensor([1e6, -1e6]))).abs().min() > 250  # clipped to +-M


def test_bin_edges():
    edges = bin_edges()
    assert edges.shape == (BINS + 1,) and edges[0] == -1 and edges[-1] == 1
    torch.testing.assert_close(edges.diff(), torch.full((BINS,), 2 / BINS, dtype=torch.float64))
    i = torch.arange(BINS)
    assert torch.equal(discretise(edges[:-1]), i)  # a left edge belongs to its bin
    assert torch.equal(discretise(edges[1:] - 1e-9), i)  # just below the right edge too
    assert discretise(torch.tensor(1.0)) == BINS - 1  # the last bin is closed
    assert discretise(torch.tensor([5.0, -5.0])).tolist() == [BINS - 1, 0]  # clipped to [-1, 1] first
    c = bin_centres(i)
    assert bool(((c > edges[:-1]) & (c < edges[1:])).all()) and torch.equal(discretise(c), i)


def test_offsets_never_collide_with_text():
    v = Vocab(text_size=1000)
    assert (v.discrete_offset, v.continuous_offset, v.separator, v.size) == (1000, 1000 + BINS, 1000 + 2 * BINS,
                                                                            1001 + 2 * BINS)
    continuous = v.continuous(torch.linspace(-1e4, 1e4, 5001))
    discrete = v.discrete(torch.arange(BINS))
    assert int(continuous.min()) == v.continuous_offset and int(continuous.max()) == v.separator - 1
    assert torch.equal(discrete, torch.arange(1000, 1000 + BINS))  # [text_size, text_size + bins)
    for ids in (continuous, discrete):  # above every text id, below the separator, never each other
        assert int(ids.min()) >= v.text_size and int(ids.max()) < v.separator
    assert not set(continuous.tolist()) & set(discrete.tolist())
    assert torch.equal(v.discrete_values(discrete), torch.arange(BINS))
    with pytest.raises(InputError, match="out of range"):
        v.discrete(torch.tensor([BINS]))
    with pytest.raises(InputError, match="out of range"):
        v.discrete(torch.tensor([-1]))
    with pytest.raises(InputError, match=r"\[0, 1000\)"):
        v.text(torch.tensor([1000]))
    with pytest.raises(InputError, match="finite"):
        v.continuous(torch.tensor([float("nan")]))
    with pytest.raises(InputError, match="continuous token ids must lie in"):
        v.continuous_values(discrete[:3])


def test_patch_extraction_and_normalisation():
    img = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    p = patchify(img, 4)
    assert p.shape == (2, 4, 3, 4, 4)
    for n, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):  # raster order
        assert torch.equal(p[:, n], img[:, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4])
    x = normalise_patches(torch.tensor([0.0, 8.0, 16.0]), 0.0, 16.0, 4)
    torch.testing.assert_close(x, torch.tensor([-0.5, 0.0, 0.5]))  # [-1, 1] / sqrt(4)
    with pytest.raises(InputError, match="multiple of patch_size=4"):
        patchify(torch.zeros(1, 1, 6, 8), 4)


def test_patch_intervals_train_and_eval():
    rows, cols = patch_intervals(8, 8, 4, 128)
    assert rows.tolist() == [[0, 64], [0, 64], [64, 128], [64, 128]]
    assert cols.tolist() == [[0, 64], [64, 128], [0, 64], [64, 128]]
    assert interval_index(rows, sample=False).tolist() == [32, 32, 96, 96]  # the interval's mean at evaluation
    g = torch.Generator().manual_seed(0)
    drawn = interval_index(rows[:1].expand(4000, 2), sample=True, generator=g)  # uniform within it in training
    assert int(drawn.min()) == 0 and int(drawn.max()) == 63 and abs(float(drawn.float().mean()) - 31.5) < 1.5
    r, _ = patch_intervals(12, 12, 4, 128)  # 3 patches: intervals 0-42, 42-85, 85-128
    assert r[::3].tolist() == [[0, 42], [42, 85], [85, 128]]


def test_loss_mask_position_by_position():
    """Text, a caption (image then text), then a continuous-observation timestep with a 2-dim continuous action:
    the mask is True exactly at text and action tokens; the loss counts exactly the predictions of those."""
    layout = Layout(Vocab(50), patch=4, channels=1, position_bins=16)
    text = text_tokens([5, 6, 7], layout)
    caption = caption_tokens(torch.zeros(1, 1, 8, 8), [[8, 9]], layout, (-1.0, 1.0), eos=0)[0]
    step = episode_tokens(torch.tensor([[0.1, -0.2, 3.0]]), torch.tensor([[1.5, -0.5]]), ARM, layout)
    seq = Tokens.cat([text, caption, step])
    expected_kinds = [TEXT] * 3 + [IMAGE] * 4 + [TEXT] * 3 + [CONTINUOUS] * 3 + [SEPARATOR] + [CONTINUOUS] * 2
    expected_target = [True] * 3 + [False] * 4 + [True] * 3 + [False] * 4 + [True] * 2
    expected_local = [-1] * 10 + [0, 1, 2] + [-1] * 3
    assert seq.kinds.tolist() == expected_kinds
    assert seq.target.tolist() == expected_target
    assert seq.local.tolist() == expected_local
    assert loss_mask(seq).tolist() == expected_target[1:]
    assert seq.ids[-3] == layout.vocab.separator and seq.ids[7:10].tolist() == [8, 9, 0]

    model = genzoo.build("gato-tiny", text_vocab_size=50).eval()
    batch = seq.expand(2)
    logits = torch.randn(2, len(seq), model.config.vocab_size)
    manual = [torch.nn.functional.cross_entropy(logits[b, t], batch.ids[b, t + 1])
              for b in range(2) for t in range(len(seq) - 1) if expected_target[t + 1]]
    torch.testing.assert_close(masked_loss(logits, batch), torch.stack(manual).mean())


def test_observation_and_action_tokens():
    layout = Layout(Vocab(100), patch=4)
    obs = observation_tokens(torch.tensor([[0.0, 1.0, -1.0, 0.5]]), CARTPOLE, layout)
    assert obs.kinds.tolist() == [[CONTINUOUS] * 4 + [SEPARATOR]] and obs.local.tolist() == [[0, 1, 2, 3, -1]]
    act = action_tokens(torch.tensor([1]), CARTPOLE, layout)
    assert act.ids.tolist() == [[101]] and act.kinds.tolist() == [[DISCRETE]] and act.target.all()
    arm = action_tokens(torch.tensor([[0.0, 1.0]]), ARM, layout)
    assert arm.ids.tolist() == [[100 + BINS + BINS // 2, 100 + BINS + int((mu_law(torch.tensor(1.0)) + 1) * BINS / 2)]]


@pytest.mark.parametrize("obs, match", [(torch.zeros(1, 5), r"shape \(5,\); the task spec \(CartPole-v1\) expects "
                                                            r"\(4,\)"),
                                        (torch.zeros(1, 2, 2), r"expects \(4,\)")])
def test_observation_of_the_wrong_dimension(obs, match):
    with pytest.raises(InputError, match=match):
        observation_tokens(obs, CARTPOLE, Layout(Vocab(100)))


@pytest.mark.parametrize("spec, action, match", [
    (CARTPOLE, torch.tensor([2]), r"action 2 is outside the action space Discrete\(2\)"),
    (CARTPOLE, torch.tensor([-1]), r"outside the action space"),
    (CARTPOLE, torch.tensor([0.5]), "must be integers"),
    (ARM, torch.tensor([[0.0, 1.5]]), r"1.5 \(dimension 1\) is outside the action space of Arm-v0: \[-1.0, 1.0\]"),
    (ARM, torch.tensor([[0.0, 0.0, 0.0]]), "3 dimensions; Arm-v0 has 2"),
    (ARM, torch.tensor([[float("nan"), 0.0]]), "outside the action space"),
])
def test_action_outside_the_space(spec, action, match):
    with pytest.raises(InputError, match=match):
        action_tokens(action, spec, Layout(Vocab(100)))
