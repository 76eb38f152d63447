"""The diffusion genre: denoisers, guidance, sampling, the ddpm-digits recipe, save/load, bad input; DPOK's
policy log-probabilities and one iteration of each fine-tuning method."""

import json

import pytest
import torch

import genzoo
from genzoo.models.diffusion.rl import RLConfig, dpok, reward_weighted_finetune, rollout
from genzoo.models.diffusion.rl.dpok import policy_scheduler, step_log_prob
from genzoo.train import load_recipe, train


@pytest.fixture(params=["ddpm-tiny", "dit-tiny"])
def model(request):
    torch.manual_seed(0)
    m = genzoo.build(request.param).eval()
    for p in m.parameters():  # the zero-initialised output layers would make every prediction 0
        p.data.add_(0.05 * torch.randn_like(p))
    return m


def test_denoisers_shapes_and_guidance(model):
    x, t, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 10, 50, 99]), torch.tensor([0, 3, 7, 9])
    with torch.no_grad():
        cond, null = model.predict(x, t, y), model.predict(x, t, torch.full_like(y, 10))
        assert cond.shape == x.shape and not torch.allclose(cond, null)
        # classifier-free guidance: null + w (cond - null), conditional and null in one batch
        torch.testing.assert_close(model.predict(x, t, y, guidance_scale=3.0), null + 3.0 * (cond - null),
                                   atol=1e-5, rtol=0)
    out = model.sample(y, num_inference_steps=4, generator=torch.Generator().manual_seed(0))
    again = model.sample(y, num_inference_steps=4, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(out, again) and out.abs().max() <= 1


def test_save_load_is_bit_exact(model, tmp_path):
    genzoo.save(model, tmp_path / "m")
    back = genzoo.load(tmp_path / "m")
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([5, 60]), torch.tensor([1, 2])
    with torch.no_grad():
        assert torch.equal(back.predict(x, t, y), model.predict(x, t, y))


def test_bad_input_is_refused(model):
    with pytest.raises(genzoo.InputError, match="labels must be in"):
        model(torch.randn(2, 1, 8, 8), torch.tensor([3, 11]))
    with pytest.raises(genzoo.InputError, match="images must be"):
        model(torch.randn(2, 3, 8, 8))
    with pytest.raises(genzoo.ConfigError, match="denoiser"):
        genzoo.build("ddpm-tiny", denoiser="vae")
    with pytest.raises(genzoo.ConfigError, match="prediction_type"):
        genzoo.build("ddpm-tiny", prediction_type="x0")


def test_ddpm_digits_recipe_learns(tmp_path, monkeypatch):
    """20 steps of the recipe lower the validation loss (fixed noise and timesteps) and write the sample grid; the
    loss plot is labelled with the task's loss (denoising MSE, not a cross-entropy)."""
    from genzoo.train import metrics

    labels = []
    plot = metrics.plot_losses
    monkeypatch.setattr("genzoo.train.trainer.plot_losses", lambda *a: labels.append(a[3]) or plot(*a))
    recipe = load_recipe("ddpm-digits", ["progress=false", "eval_every=20", "save_every=20", "warmup_steps=5",
                                         "model.base_channels=16", "model.groups=4"])
    r = train(recipe, tmp_path / "run", steps=20)
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    val = [x["val_loss"] for x in recs if "val_loss" in x]
    assert val[-1] < 0.6 * val[0], val
    assert 0 <= r["sample_acc"] <= 1 and r["frechet"] > 0
    assert (tmp_path / "run" / "samples.png").stat().st_size > 1000
    assert genzoo.load(tmp_path / "run").config.denoiser == "unet"
    assert labels and set(labels) == {"denoising loss (MSE of the predicted target)"}


def test_rollout_log_probs_are_the_policy_at_the_rollout_weights(model):
    """The log-probability stored during a rollout equals the one recomputed for training at the same weights
    (importance ratio 1), and the deterministic last step is left out (sigma = 0)."""
    labels = torch.tensor([0, 4, 9])
    ro = rollout(model, labels, steps=5, generator=torch.Generator().manual_seed(0))
    sched = policy_scheduler(model, 5)
    assert ro.stds[-1] == 0 and all(s > 0 for s in ro.stds[:-1])
    with torch.no_grad():
        for i, t in enumerate(ro.timesteps[:-1]):
            logp, _ = step_log_prob(model, sched, ro.states[i], t, ro.actions[i], labels, ro.stds[i])
            torch.testing.assert_close(logp, ro.log_probs[i], atol=1e-3, rtol=1e-5)


@pytest.mark.parametrize("method,kw", [(dpok, dict(beta=0.01)), (dpok, dict(beta=0.0, normalise="prompt")),
                                       (reward_weighted_finetune, {})])
def test_fine_tuning_changes_the_model(method, kw):
    torch.manual_seed(0)
    m = genzoo.build("ddpm-tiny").eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    reward = lambda images, labels: (images.mean(dim=(1, 2, 3)) + 1) / 2  # noqa: E731 brighter is better
    hist = method(m, reward, RLConfig(iterations=2, batch=8, steps=3, minibatch=8, lr=1e-3, **kw))
    assert [h["reward_queries"] for h in hist] == [8, 16]
    assert any(not torch.equal(v, m.state_dict()[k]) for k, v in before.items())
    with pytest.raises(genzoo.ConfigError, match="normalise"):
        RLConfig(normalise="per-galaxy")  # "batch" is a registered name since issue 22


def test_dpok_is_reproducible_whatever_the_global_rng_state():
    """Everything random in a run (labels, noise, minibatches, the value net's init) comes from cfg.seed."""
    reward = lambda images, labels: (images.mean(dim=(1, 2, 3)) + 1) / 2  # noqa: E731
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(0)
        m = genzoo.build("ddpm-tiny").eval()
        torch.manual_seed(global_seed)
        hist = dpok(m, reward, RLConfig(iterations=2, batch=8, steps=3, minibatch=8, lr=1e-3, beta=0.01))
        runs.append((hist, m.state_dict()))
    assert runs[0][0] == runs[1][0]
    for k, v in runs[0][1].items():
        assert torch.equal(v, runs[1][1][k]), k
