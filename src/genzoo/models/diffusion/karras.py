"""The Karras et al. (2022, "Elucidating the Design Space of Diffusion-Based Generative Models", arXiv 2206.00364)
sampler for a model trained on a discrete DDPM schedule, as Point-E samples (arXiv 2212.08751, sec. 4.2: 64 Heun
steps, guidance on the x_0 prediction).

The variance-exploding view of the DDPM forward process: x = x_t / sqrt(alpha_bar_t) = x_0 + sigma eps with
sigma = sqrt(1 / alpha_bar_t - 1). Karras' noise levels (their eq. 5):
sigma_i = (sigma_max^(1/rho) + i / (n - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, then 0.
The denoiser D(x, sigma) scales x by c_in = 1 / sqrt(sigma^2 + 1) (back to the DDPM's x_t), runs the model at the
discrete timestep whose alpha_bar is nearest below 1 / (sigma^2 + 1) (linear interpolation of t over alpha_bar,
rounded down, as Point-E's GaussianToKarrasDenoiser), and returns its x_0 prediction. The ODE
dx/dsigma = (x - D(x, sigma)) / sigma is stepped by Heun's method (their Algorithm 2; `s_churn` > 0 adds noise
first, their "stochastic sampler"; the last step, to sigma = 0, is an Euler step).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ...errors import InputError


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """(n + 1,) noise levels from sigma_max down to sigma_min, then 0 (Karras et al. eq. 5)."""
    if not (isinstance(n, int) and n > 0):
        raise InputError(f"num_inference_steps={n!r} must be a positive integer")
    if not 0 < sigma_min < sigma_max:
        raise InputError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).float()


def sigma_to_timestep(sigma: float, alphas_cumprod: torch.Tensor) -> int:
    """The discrete timestep of a noise level: t interpolated linearly over alpha_bar at 1 / (sigma^2 + 1), rounded
    down; 0 above alpha_bar_0, T - 1 at or below alpha_bar_{T-1}."""
    a = 1.0 / (sigma**2 + 1.0)
    ac = alphas_cumprod.double()
    if a >= ac[0]:
        return 0
    if a <= ac[-1]:
        return len(ac) - 1
    i = int(torch.searchsorted(-ac, torch.tensor([-a], dtype=torch.float64), right=False)[0])  # ac[i] <= a < ac[i-1]
    frac = (ac[i - 1] - a) / (ac[i - 1] - ac[i])  # alpha_bar decreases with t
    return int(math.floor(i - 1 + float(frac)))


def heun(denoise: Callable[[torch.Tensor, float], torch.Tensor], x: torch.Tensor, sigmas: torch.Tensor,
         s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """Karras et al. Algorithm 2 from x at sigmas[0]: denoise(x, sigma) -> the x_0 prediction."""
    n = len(sigmas) - 1
    for i in range(n):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        gamma = min(s_churn / n, 2**0.5 - 1) if s_tmin <= s <= s_tmax else 0.0
        s_hat = s * (gamma + 1)
        if gamma > 0:  # raise the noise level to s_hat first
            eps = torch.randn(x.shape, generator=generator).to(x.device, x.dtype) * s_noise
            x = x + eps * (s_hat**2 - s**2) ** 0.5
        d = (x - denoise(x, s_hat)) / s_hat  # dx/dsigma at s_hat
        if s_next == 0:  # Euler to the end
            x = x + d * (s_next - s_hat)
        else:  # Heun: average the slopes at both ends
            x2 = x + d * (s_next - s_hat)
            d2 = (x2 - denoise(x2, s_next)) / s_next
            x = x + (d + d2) / 2 * (s_next - s_hat)
    return x


def karras_sample(x0_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], alphas_cumprod: torch.Tensor,
                  shape: tuple, steps: int, *, sigma_min: float = 1e-3, sigma_max: float = 120.0, rho: float = 7.0,
                  s_churn: float = 0.0, clip: bool = True, generator: torch.Generator | None = None,
                  device=None) -> torch.Tensor:
    """A sample of `shape` from a model trained on the DDPM schedule `alphas_cumprod` (T,):
    x0_fn(x_t (B, ...), t (B,)) -> its x_0 prediction at the DDPM's x_t (guidance, if any, inside it).
    Defaults: Point-E's base-model settings (sigma in [1e-3, 120], rho = 7); `steps` Heun steps, 2 model calls each
    (the last one 1)."""
    sigmas = karras_sigmas(steps, sigma_min, sigma_max, rho)
    x = torch.randn(shape, generator=generator).to(device) * sigma_max
    b = shape[0]

    def denoise(x, sigma: float):
        t = torch.full((b,), sigma_to_timestep(sigma, alphas_cumprod), device=x.device)
        x0 = x0_fn(x / (sigma**2 + 1) ** 0.5, t)
        return x0.clamp(-1, 1) if clip else x0

    return heun(denoise, x, sigmas, s_churn=s_churn, generator=generator)
