"""Text conditioning of the diffusion genre (Point-E's text-to-image stage): the DiT (in-context tokens) and UNet
(cross-attention) read a text encoder's token states, a zero context is the null prompt of classifier-free guidance,
sampling by DDIM and the Karras/Heun sampler; the Heun sampler with the exact denoiser of Gaussian data reproduces
the data's spread."""

import pytest
import torch

import genzoo
from genzoo.models.diffusion.karras import karras_sample, karras_sigmas, sigma_to_timestep
from genzoo.models.diffusion.schedulers import DDPMScheduler


@pytest.fixture(params=["dit-text-tiny", "ddpm-text-tiny"])
def model(request):
    torch.manual_seed(0)
    m = genzoo.build(request.param).eval()
    for p in m.parameters():  # the zero-initialised output layers would make every prediction 0
        p.data.add_(0.05 * torch.randn_like(p))
    return m


def test_text_context_conditions_and_guides(model):
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0, 40, 99])
    ctx = torch.randn(3, 5, 32)
    with torch.no_grad():
        cond, null = model.predict(x, t, None, context=ctx), model.predict(x, t, None, context=torch.zeros_like(ctx))
        assert cond.shape == x.shape and not torch.allclose(cond, null)
        assert not torch.allclose(model.predict(x, t, None, context=ctx.flip(0)), cond)
        torch.testing.assert_close(model.predict(x, t, None, guidance_scale=3.0, context=ctx), null + 3 * (cond - null),
                                   atol=1e-5, rtol=0)
        loss = model(torch.rand(3, 1, 8, 8) * 2 - 1, context=ctx, generator=torch.Generator().manual_seed(0)).loss
    assert torch.isfinite(loss)
    for sampler in ("ddim", "karras"):
        out = model.sample(context=ctx, num_inference_steps=2, sampler=sampler, guidance_scale=2.0,
                           generator=torch.Generator().manual_seed(0))
        assert out.shape == x.shape and torch.isfinite(out).all()


def test_bad_context_is_refused(model):
    with pytest.raises(genzoo.InputError, match=r"context must be \(2, L, 32\)"):
        model(torch.zeros(2, 1, 8, 8), context=torch.zeros(2, 5, 16))
    with pytest.raises(genzoo.InputError, match="one"):
        model.sample(context=torch.zeros(2, 5, 32), n=2)
    with pytest.raises(genzoo.InputError, match="context"):
        genzoo.build("ddpm-tiny").eval()(torch.zeros(2, 1, 8, 8), context=torch.zeros(2, 5, 32))
    with pytest.raises(genzoo.ConfigError, match="n_classes=0"):
        genzoo.build("dit-text-tiny", n_classes=10)


def test_heun_sampler_reproduces_gaussian_data():
    """x_0 ~ N(0, s^2): the exact x_0 prediction at x_t is sqrt(ab) s^2 / (ab s^2 + 1 - ab) x_t, so the Karras/Heun
    sampler's outputs must have std s (up to the timestep discretisation and the sample size)."""
    sched = DDPMScheduler(num_train_timesteps=1024, beta_schedule="cosine")
    ac, s = sched.alphas_cumprod, 0.3

    def x0(x, t):
        ab = ac[t].view(-1, 1)
        return ab.sqrt() * s**2 / (ab * s**2 + 1 - ab) * x

    out = karras_sample(x0, ac, (4000, 1), 32, sigma_max=120.0, clip=False, generator=torch.Generator().manual_seed(0))
    assert abs(out.std().item() - s) < 0.03 and abs(out.mean().item()) < 0.03
    sig = karras_sigmas(8, 1e-3, 120.0)
    assert sig[0] == pytest.approx(120.0) and sig[-1] == 0 and (sig[:-1].diff() < 0).all()
    assert sigma_to_timestep(1e-4, ac) == 0 and sigma_to_timestep(1e6, ac) == 1023
