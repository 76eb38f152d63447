"""DDPM and DDIM schedulers against diffusers' DDPMScheduler / DDIMScheduler on the same configs: add_noise and
step (x_{t-1} and the x_0 prediction) within atol 1e-6, for linear and cosine betas, epsilon and v prediction,
at every inference timestep; DDIM with eta 0 and 1 (the same noise drawn from the same generator)."""

import pytest
import torch

from genzoo.models.diffusion.schedulers import DDIMScheduler, DDPMScheduler, gaussian_log_prob

import diffusers

CONFIGS = [dict(beta_schedule="linear", prediction_type="epsilon"),
           dict(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction"),
           dict(beta_schedule="linear", prediction_type="v_prediction", clip_sample=False, beta_end=0.012),
           dict(beta_schedule="squaredcos_cap_v2", prediction_type="epsilon", num_train_timesteps=200)]


def close(a, b):
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_add_noise_and_ddpm_step(cfg):
    ours, ref = DDPMScheduler(**cfg), diffusers.DDPMScheduler(**cfg)
    torch.manual_seed(0)
    x0, noise = torch.randn(4, 1, 8, 8).clamp(-1, 1), torch.randn(4, 1, 8, 8)
    t = torch.randint(0, ref.config.num_train_timesteps, (4,))
    close(ours.add_noise(x0, noise, t), ref.add_noise(x0, noise, t))
    for steps in (None, 10):
        if steps:
            ours.set_timesteps(steps)
            ref.set_timesteps(steps)
        assert torch.equal(ours.timesteps, ref.timesteps)
        x = torch.randn(4, 1, 8, 8)
        for step_t in ref.timesteps[:: max(1, len(ref.timesteps) // 12)].tolist() + [0]:
            out = torch.randn(4, 1, 8, 8)
            a = ours.step(out, step_t, x, generator=torch.Generator().manual_seed(step_t))
            b = ref.step(out, step_t, x, generator=torch.Generator().manual_seed(step_t))
            close(a.prev_sample, b.prev_sample)
            close(a.pred_original_sample, b.pred_original_sample)


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_step(cfg, eta):
    ours, ref = DDIMScheduler(**cfg), diffusers.DDIMScheduler(**cfg)
    ours.set_timesteps(20)
    ref.set_timesteps(20)
    assert torch.equal(ours.timesteps, ref.timesteps)
    torch.manual_seed(1)
    x = torch.randn(4, 1, 8, 8)
    for step_t in ref.timesteps.tolist():
        out = torch.randn(4, 1, 8, 8)
        a = ours.step(out, step_t, x, eta=eta, generator=torch.Generator().manual_seed(step_t))
        b = ref.step(out, step_t, x, eta=eta, generator=torch.Generator().manual_seed(step_t))
        close(a.prev_sample, b.prev_sample)
        close(a.pred_original_sample, b.pred_original_sample)
        x = b.prev_sample


def test_ddim_log_prob_is_the_gaussian_formula():
    """The policy's log-probability of a DDIM (eta=1) step equals log N(x_{t-1}; mean, sigma_t^2 I), computed
    here by torch.distributions, and the step's sample is mean + sigma_t z."""
    s = DDIMScheduler(beta_schedule="squaredcos_cap_v2")
    s.set_timesteps(10)
    torch.manual_seed(2)
    x, out = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8)
    for t in s.timesteps[:-1].tolist():  # the last step (t -> alpha_bar = 1) has sigma > 0 only above it
        z = torch.randn(3, 1, 8, 8)
        step = s.step(out, t, x, eta=1.0, variance_noise=z)
        assert step.std > 0
        close(step.prev_sample, step.mean + step.std * z)
        want = torch.distributions.Normal(step.mean.double(), step.std).log_prob(step.prev_sample.double())
        torch.testing.assert_close(gaussian_log_prob(step.prev_sample, step.mean, step.std),
                                   want.flatten(1).sum(1).float(), atol=1e-3, rtol=1e-6)
