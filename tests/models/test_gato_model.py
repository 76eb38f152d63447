"""The Gato model: embedding dispatch by token kind, the KV-cached action decode against the uncached forward (one
token per action dimension), save/load, and clear errors for bad input."""

import numpy as np
import pytest
import torch

import genzoo
from genzoo import ConfigError, InputError
from genzoo.models.gato.agent import GatoAgent, expected_value_ids
from genzoo.models.gato.sequence import ControlSpec, Tokens, episode_tokens, image_tokens, loss_mask, text_tokens
from genzoo.models.gato.tokens import IMAGE

CARTPOLE = ControlSpec("cartpole", "CartPole-v1", "continuous", (4,), "discrete", n_actions=2)
ARM = ControlSpec("arm", "Arm-v0", "continuous", (3,), "continuous", action_dims=3, action_low=(-2.0,) * 3,
                  action_high=(2.0,) * 3)
GRID = ControlSpec("gridworld", "genzoo/GridWorld-v0", "image", (1, 8, 8), "discrete", n_actions=4)


def tiny(**kw):
    return genzoo.build("gato-tiny", **kw).eval()


def mixed_sequence(layout, batch=2):
    g = torch.Generator().manual_seed(1)
    text = text_tokens(torch.randint(0, 300, (5,), generator=g), layout)
    grid = episode_tokens(torch.randint(0, 256, (2, 1, 8, 8), generator=g), torch.tensor([1, 3]), GRID, layout)
    arm = episode_tokens(torch.randn(2, 3, generator=g, dtype=torch.float64), torch.rand(2, 3, generator=g) * 2 - 1,
                         ARM, layout)
    return Tokens.cat([text, grid, arm]).expand(batch)


def test_embedding_dispatch_by_kind():
    model = tiny()
    seq = mixed_sequence(model.config.layout)
    image = seq.kinds == IMAGE
    h = model.embedding(seq)
    changed = Tokens(**{**seq.__dict__, "patches": seq.patches + 1.0})
    moved = (model.embedding(changed) - h).abs().sum(-1) > 0  # (B, T)
    assert torch.equal(moved, image)  # pixels reach image positions only, through the patch ResNet
    table = model.embedding.tokens.weight
    lookup = ~image & (seq.local < 0)  # text, separator, actions: the table row itself
    torch.testing.assert_close(h[lookup], table[seq.ids[lookup]])
    obs = ~image & (seq.local >= 0)  # continuous observations: + their local observation position
    torch.testing.assert_close(h[obs], table[seq.ids[obs]] + model.embedding.local.weight[seq.local[obs]])


def test_patch_positions_sampled_in_training_mean_at_eval():
    model = tiny()
    seq = image_tokens(torch.zeros(1, 1, 8, 8), model.config.layout, 0.0, 255.0, local=False)
    a, b = model.embedding(seq), model.embedding(seq)
    torch.testing.assert_close(a, b)  # eval: the interval's mean, deterministic
    model.train()
    torch.manual_seed(0)
    draws = torch.stack([model.embedding(seq) for _ in range(8)])
    assert not torch.allclose(draws[0], draws[1:].mean(0))  # training: a position drawn in the interval


def test_forward_loss_and_tied_head():
    model = tiny()
    seq = mixed_sequence(model.config.layout)
    out = model(seq, return_loss=True)
    assert out.logits.shape == (2, len(seq), model.config.vocab_size) and out.loss.ndim == 0
    assert model.lm_head.weight is model.embedding.tokens.weight
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    lean = model(seq, return_loss=True, return_logits=False)  # the head only where the loss needs it
    assert lean.logits is None
    torch.testing.assert_close(lean.loss, out.loss, rtol=0, atol=1e-6)
    with pytest.raises(InputError, match="return_logits=False needs return_loss=True"):
        model(seq, return_logits=False)


def test_save_load_round_trip(tmp_path):
    model = tiny()
    genzoo.save(model, tmp_path / "m")
    loaded = genzoo.load(tmp_path / "m")
    seq = mixed_sequence(model.config.layout)
    torch.testing.assert_close(loaded(seq).logits, model(seq).logits, rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("spec", [CARTPOLE, ARM, GRID], ids=["discrete", "continuous-3d", "image"])
def test_cached_action_decode_equals_uncached_forward(spec):
    """Each action token's logits, decoded through the KV cache (and through context rebuilds once the window is
    full), equal the uncached forward over the same context; a 3-dim action takes 3 decoding steps, each
    conditioned on the dimensions before it."""
    torch.manual_seed(0)
    model = tiny()
    layout = model.config.layout
    obs_shape = (5, *spec.obs_shape)
    prompt_obs = torch.randint(0, 256, obs_shape) if spec.observation == "image" else torch.randn(obs_shape)
    prompt_act = torch.randint(0, spec.n_actions, (5,)) if spec.action == "discrete" else torch.rand(5, 3) * 4 - 2
    prompt = episode_tokens(prompt_obs, prompt_act, spec, layout).window(0, 2 * spec.step_tokens(4))
    agent = GatoAgent(model, spec, prompt, record=True)
    agent.reset(3)
    rng = np.random.default_rng(0)
    a_tok = spec.action_tokens
    rebuilds = 0
    for _ in range(14):  # 64 positions: the context is rebuilt several times
        obs = rng.integers(0, 256, (3, *spec.obs_shape)) if spec.observation == "image" else \
            rng.normal(size=(3, *spec.obs_shape))
        before = agent.cache
        actions = agent.act(obs)
        rebuilds += agent.cache is not before
        recorded = agent.logits[-a_tok:]
        assert len(agent.logits) % a_tok == 0
        ctx = agent.context
        full = model(ctx).logits  # uncached, the same tokens
        n = len(ctx)
        for j in range(a_tok):
            torch.testing.assert_close(recorded[j], full[:, n - a_tok - 1 + j], rtol=0, atol=1e-5)
        lo, hi = agent.allowed  # greedy among the action's ids: [offset, offset + n) of its kind
        v = layout.vocab
        assert (lo, hi) == ((v.discrete_offset, v.discrete_offset + spec.n_actions) if spec.action == "discrete"
                            else (v.continuous_offset, v.separator))
        if spec.action == "discrete":  # the most likely token; a continuous dimension: its expected value's token
            chosen = [r[:, lo:hi].argmax(-1) + lo for r in recorded]
        else:
            chosen = [expected_value_ids(r[:, lo:hi], agent.values[j], v) for j, r in enumerate(recorded)]
        assert torch.equal(ctx.ids[:, n - a_tok:], torch.stack(chosen, 1))
        if spec.action == "discrete":
            assert actions.shape == (3,) and bool(((actions >= 0) & (actions < spec.n_actions)).all())
        else:
            assert actions.shape == (3, 3) and bool((actions.abs() <= 2).all())
    assert rebuilds >= 3  # the first context, then rebuilds with the prompt and recent timesteps


def test_continuous_action_is_the_expected_value_or_the_mode():
    """Greedy decoding of a continuous action: the expected value over the bins' action values (clipped to the
    space), fed back as its own token; "mode" is the most likely bin. A spike at the torque limit (mass 0.4 on one
    bin) against 0.6 spread over 60 bins near 0.5: the mode is the limit, the mean is 0.4 x 2 + 0.6 x 0.5 = 1.1."""
    model = tiny()
    v = model.config.layout.vocab
    lo = v.continuous_offset
    spec = ControlSpec("pend", "Pendulum-v1", "continuous", (3,), "continuous", action_dims=1, action_low=(-2.0,),
                       action_high=(2.0,))
    limit = int(v.continuous(2.0)) - lo
    spread = torch.arange(int(v.continuous(0.45)) - lo - 30, int(v.continuous(0.45)) - lo + 30)
    probs = torch.zeros(1, v.bins)
    probs[0, limit], probs[0, spread] = 0.4, 0.6 / len(spread)
    logits = torch.full((1, v.size), -1e4)
    logits[:, lo:lo + v.bins] = probs.clamp(min=1e-30).log()
    values = v.continuous_values(torch.arange(lo, lo + v.bins)).clamp(-2.0, 2.0)
    mean = float(probs[0] @ values.float())
    assert 1.0 < mean < 1.2
    agent = GatoAgent(model, spec)
    tok = agent._choose(logits, 0)
    assert int(tok) == int(v.continuous(mean))
    from genzoo.models.gato.sequence import decode_actions
    assert abs(float(decode_actions(tok[:, None], spec, v)) - mean) < 0.03  # the bin of the mean, within a bin
    assert int(GatoAgent(model, spec, continuous="mode")._choose(logits, 0)) == limit + lo
    assert int(GatoAgent(model, CARTPOLE)._choose(torch.randn(1, v.size), 0)) in (v.discrete_offset,
                                                                                   v.discrete_offset + 1)
    with pytest.raises(ConfigError, match="continuous='median'.*mean, mode"):
        GatoAgent(model, spec, continuous="median")


def test_agent_bad_input():
    model = tiny()
    agent = GatoAgent(model, CARTPOLE)
    agent.reset(2)
    with pytest.raises(InputError, match=r"observation has shape \(3,\); the task spec \(CartPole-v1\) expects"):
        agent.act(np.zeros((2, 3)))
    with pytest.raises(InputError, match="3 observations for 2 environments"):
        agent.act(np.zeros((3, 4)))
    long_prompt = episode_tokens(torch.zeros(12, 4), torch.zeros(12, dtype=torch.long), CARTPOLE, model.config.layout)
    with pytest.raises(InputError, match="leaves no room"):
        GatoAgent(model, CARTPOLE, long_prompt)


def test_model_bad_input():
    model = tiny()
    seq = mixed_sequence(model.config.layout)
    with pytest.raises(InputError, match="max_positions=64"):
        model(Tokens.cat([seq] * 3))
    bad = Tokens(**{**seq.__dict__, "patches": seq.patches[..., :8]})
    with pytest.raises(InputError, match=r"tokens.patches has shape .*patch_dim"):
        model(bad)
    bad = Tokens(**{**seq.__dict__, "ids": seq.ids.masked_fill(seq.kinds == 0, 5000)})
    with pytest.raises(InputError, match="out of range"):
        model(bad)
    with pytest.raises(ConfigError, match="patch_groups"):
        genzoo.build("gato-tiny", patch_groups=3)
    with pytest.raises(InputError, match="prefix 60 \\+ max_new_tokens 8 exceeds"):
        model.generate_text(Tokens.cat([seq, seq]).window(0, 60), 8)


def test_continuous_embedding_lookup_plus_fourier():
    """`lookup+fourier`: a continuous value's embedding is its bin's row + W phi(y) (values.py). W starts at 0 and
    draws no random number, so the model starts exactly as `lookup` does (every shared weight equal, equal logits);
    W phi(y) reaches continuous-value tokens only, is W applied to [sin(w y), cos(w y)] of the bin centre, and the
    loss's gradient reaches W (also at W = 0)."""
    from genzoo.models.gato.tokens import CONTINUOUS, bin_centres

    torch.manual_seed(0)
    plain = tiny()
    torch.manual_seed(0)
    fourier = tiny(continuous_embedding="lookup+fourier")
    vals = fourier.embedding.values
    assert set(fourier.state_dict()) - set(plain.state_dict()) == {"embedding.values.proj.weight"}
    assert all(torch.equal(v, fourier.state_dict()[k]) for k, v in plain.state_dict().items())
    assert not vals.proj.weight.any()  # W = 0
    seq = mixed_sequence(plain.config.layout)
    torch.testing.assert_close(fourier(seq).logits, plain(seq).logits, rtol=0, atol=0)  # W = 0: the lookup
    fourier.train()
    fourier(seq, return_loss=True).loss.backward()
    assert vals.proj.weight.grad is not None and vals.proj.weight.grad.abs().sum() > 0
    fourier.eval()

    with torch.no_grad():
        vals.proj.weight.normal_(std=0.02)
    v = plain.config.layout.vocab
    continuous = (seq.ids >= v.continuous_offset) & (seq.ids < v.separator) & (seq.kinds == CONTINUOUS)
    assert int(continuous.sum()) >= 10  # the arm's observations and actions
    diff = fourier.embedding(seq) - plain.embedding(seq)  # (B, T, D)
    assert torch.equal(diff.abs().sum(-1) > 0, continuous)  # only continuous values get the Fourier term
    y = bin_centres(seq.ids[continuous] - v.continuous_offset, v.bins).float()  # (N,)
    angles = y[:, None] * vals.w  # (N, K)
    phi = torch.cat([angles.sin(), angles.cos()], -1)  # (N, 2K)
    torch.testing.assert_close(diff[continuous], phi @ vals.proj.weight.T, rtol=0, atol=1e-6)
    assert vals.w.min() < 2 and vals.w.max() > 100  # from one smooth ramp over [-1, 1] to ~30-bin detail


def test_continuous_embedding_unknown_name():
    with pytest.raises(ConfigError, match="unknown continuous embedding 'fourier'.*known: lookup, lookup\\+fourier"):
        genzoo.build("gato-tiny", continuous_embedding="fourier")


def test_continuous_embedding_save_load(tmp_path):
    """The option and W travel with the checkpoint (W's frequencies are fixed, not stored)."""
    model = tiny(continuous_embedding="lookup+fourier")
    with torch.no_grad():
        model.embedding.values.proj.weight.normal_(std=0.02)  # as if trained
    genzoo.save(model, tmp_path / "m")
    loaded = genzoo.load(tmp_path / "m")
    assert loaded.config.continuous_embedding == "lookup+fourier"
    seq = mixed_sequence(model.config.layout)
    torch.testing.assert_close(loaded(seq).logits, model(seq).logits, rtol=0, atol=0)


def test_continuous_target_gauss_is_hl_gauss():
    """`gauss` (targets.py): at a continuous-value target the loss is -sum_i p_i log q_i with p_i the mass of
    N(centre of the label's bin, sigma^2) in bin i (in bins, renormalised to the range), q the softmax over the joint
    vocabulary; every other target keeps the one-hot cross-entropy; the model's two loss paths agree."""
    from genzoo.models.gato.model import masked_loss
    from genzoo.models.gato.targets import GaussianBins

    torch.manual_seed(0)
    model = tiny(continuous_target="gauss", continuous_target_args={"sigma": 3.0})
    v = model.config.layout.vocab
    target = model.target
    assert isinstance(target, GaussianBins) and target.sigma == 3.0
    # the target distribution, against the formula bin by bin
    p = target.distribution(torch.tensor([0, 500, v.bins - 1]))  # (3, bins)
    torch.testing.assert_close(p.sum(-1), torch.ones(3))
    normal = torch.distributions.Normal(500.5, 3.0)
    edges = torch.arange(v.bins + 1, dtype=torch.float64)
    expected = normal.cdf(edges[1:]) - normal.cdf(edges[:-1])
    torch.testing.assert_close(p[1].double(), expected / expected.sum(), rtol=0, atol=1e-6)
    assert p[1].argmax() == 500 and torch.isclose(p[1, 499], p[1, 501]) and p[1, 510] < 1e-3
    assert p[0, 0] == p[0].max() and p[2, -1] == p[2].max()  # cut at the range's ends and renormalised
    # the loss: soft targets at continuous labels, one-hot elsewhere
    logits = torch.randn(4, v.size)
    labels = torch.tensor([5, v.discrete_offset + 1, v.continuous_offset + 500, v.continuous_offset])
    loss = target(logits, labels)
    onehot = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(loss[:2], onehot[:2], rtol=0, atol=0)
    logq = logits.log_softmax(-1)[:, v.continuous_offset:v.separator]
    torch.testing.assert_close(loss[2], -(p[1] * logq[2]).sum())
    torch.testing.assert_close(loss[3], -(p[0] * logq[3]).sum())
    # a narrow Gaussian is the one-hot target
    sharp = GaussianBins(v, sigma=0.01)
    torch.testing.assert_close(sharp(logits, labels), onehot, rtol=0, atol=1e-5)
    # the model's loss paths: logits + masked_loss, and the head at targets only
    seq = mixed_sequence(model.config.layout)
    out = model(seq, return_loss=True)
    torch.testing.assert_close(out.loss, masked_loss(out.logits, seq, target=target))
    lean = model(seq, return_loss=True, return_logits=False)
    torch.testing.assert_close(lean.loss, out.loss, rtol=0, atol=1e-6)
    plain = masked_loss(out.logits, seq)  # the paper's one-hot target
    assert not torch.isclose(plain, out.loss)  # the arm's actions are continuous targets
    text_only = Tokens.cat([seq.window(0, 5)])  # text alone: the same loss either way
    torch.testing.assert_close(masked_loss(model(text_only).logits, text_only, target=target),
                               masked_loss(model(text_only).logits, text_only))


def test_continuous_target_bad_names_and_args(tmp_path):
    with pytest.raises(ConfigError, match="unknown continuous target 'gaus'.*known: gauss, onehot"):
        genzoo.build("gato-tiny", continuous_target="gaus")
    with pytest.raises(ConfigError, match="continuous_target_args.sigma=0 is invalid.*> 0"):
        genzoo.build("gato-tiny", continuous_target="gauss", continuous_target_args={"sigma": 0})
    with pytest.raises(ConfigError, match="continuous target 'onehot' takes no parameters"):
        genzoo.build("gato-tiny", continuous_target_args={"sigma": 2})
    with pytest.raises(ConfigError, match="continuous target 'gauss' takes only sigma"):
        genzoo.build("gato-tiny", continuous_target="gauss", continuous_target_args={"width": 2})
    model = tiny(continuous_target="gauss", continuous_target_args={"sigma": 16})
    genzoo.save(model, tmp_path / "m")
    loaded = genzoo.load(tmp_path / "m")
    assert (loaded.config.continuous_target, loaded.config.continuous_target_args) == ("gauss", {"sigma": 16})
    assert loaded.target.sigma == 16.0


def test_loss_reduction_window_is_the_mean_of_window_means(tmp_path):
    """`loss_reduction`: "token" (the paper) averages every target of the batch alike; "window" averages each
    window's targets, then the windows (those without a target left out), so a text window full of targets and a
    control window with a few weigh the same. Both model paths (all logits; the head at targets only) agree, a
    validation can ask for the token mean whatever the config says, and the field round-trips a save."""
    from genzoo.models.gato.model import loss_weights, masked_loss

    torch.manual_seed(0)
    model = tiny(loss_reduction="window")
    layout = model.config.layout
    text = text_tokens(torch.randint(0, 300, (12,)), layout)  # 11 targets
    arm = episode_tokens(torch.randn(3, 3, dtype=torch.float64), torch.rand(3, 3) * 2 - 1, ARM, layout)
    patches = episode_tokens(torch.randint(0, 256, (3, 1, 8, 8)), torch.tensor([2, 0, 1]), GRID, layout).window(0, 4)
    batch = Tokens.stack([text, arm.window(0, len(text)), Tokens.cat([patches] * 3)])  # text, control, patches only
    mask = loss_mask(batch)  # (3, T - 1)
    counts = mask.sum(1).tolist()
    assert counts[0] == len(text) - 1 and 0 < counts[1] < counts[0] and counts[2] == 0
    logits = torch.randn(3, len(text), model.config.vocab_size)
    ce = masked_loss(logits, batch, "none")  # (3, T - 1)
    window = (ce[0].sum() / counts[0] + ce[1].sum() / counts[1]) / 2
    torch.testing.assert_close(masked_loss(logits, batch, "window"), window)
    torch.testing.assert_close(masked_loss(logits, batch, "token"), ce.sum() / (counts[0] + counts[1]))
    w = loss_weights(mask, "window")
    torch.testing.assert_close(w.sum(), torch.tensor(1.0))
    assert float(w[0, mask[0]][0]) == pytest.approx(1 / (2 * counts[0])) and float(w[2].sum()) == 0.0
    # the model: its config's reduction on both paths, the token mean when asked
    out = model(batch, return_loss=True)
    torch.testing.assert_close(out.loss, masked_loss(out.logits, batch, "window"))
    lean = model(batch, return_loss=True, return_logits=False)
    torch.testing.assert_close(lean.loss, out.loss, rtol=0, atol=1e-6)
    token = model(batch, return_loss=True, return_logits=False, loss_reduction="token")
    torch.testing.assert_close(token.loss, masked_loss(out.logits, batch, "token"), rtol=0, atol=1e-6)
    assert not torch.isclose(token.loss, out.loss)
    genzoo.save(model, tmp_path / "m")
    assert genzoo.load(tmp_path / "m").config.loss_reduction == "window"
    with pytest.raises(ConfigError, match="loss_reduction='sequence' is invalid.*'token', 'window'"):
        genzoo.build("gato-tiny", loss_reduction="sequence")
    with pytest.raises(InputError, match="loss reduction 'sum' is unknown"):
        loss_weights(mask, "sum")
