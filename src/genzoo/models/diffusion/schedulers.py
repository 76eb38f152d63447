"""Noise schedulers with no parameters: DDPM (Ho et al., 2020) and DDIM (Song et al., 2021). A scheduler's config
is its constructor's arguments, as in `diffusers`, and its outputs equal `diffusers`' DDPMScheduler and
DDIMScheduler on the same config (add_noise and step; tested to 1e-6).

Notation (Ho et al. eq. 4): alpha_bar_t = prod_{s<=t} (1 - beta_s); the forward process is
x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps. The denoiser predicts eps ("epsilon") or
v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 ("v_prediction", Salimans & Ho, 2022, sec. 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...errors import ConfigError, InputError
from ...registry import Registry

BETA_SCHEDULES: Registry = Registry("beta schedule")
PREDICTION_TYPES = ("epsilon", "v_prediction")


@BETA_SCHEDULES.register("linear")
def linear_betas(n: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """Ho et al. 2020, sec. 4: betas linear from beta_start to beta_end."""
    return torch.linspace(beta_start, beta_end, n, dtype=torch.float32)


@BETA_SCHEDULES.register("cosine")
def cosine_betas(n: int, beta_start: float = 0.0, beta_end: float = 0.0, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal 2021, eq. 17: alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) pi/2), s = 0.008; beta_t =
    min(1 - alpha_bar(t+1)/alpha_bar(t), 0.999). `diffusers` calls it "squaredcos_cap_v2"."""
    def alpha_bar(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return torch.tensor([min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), max_beta) for i in range(n)],
                        dtype=torch.float32)


BETA_SCHEDULES.register("squaredcos_cap_v2", cosine_betas)  # the diffusers name


@dataclass
class SchedulerConfig:
    num_train_timesteps: int = 1000
    beta_start: float = 0.0001
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    prediction_type: str = "epsilon"
    clip_sample: bool = True
    clip_sample_range: float = 1.0
    set_alpha_to_one: bool = True  # DDIM: alpha_bar before the first step is 1 (else alpha_bar_0)
    steps_offset: int = 0

    def __post_init__(self):
        BETA_SCHEDULES.get(self.beta_schedule)
        if self.prediction_type not in PREDICTION_TYPES:
            raise ConfigError(f"prediction_type={self.prediction_type!r} is invalid: one of {PREDICTION_TYPES}")
        if not (isinstance(self.num_train_timesteps, int) and self.num_train_timesteps > 1):
            raise ConfigError(f"num_train_timesteps={self.num_train_timesteps!r} is invalid: an integer > 1")


class Scheduler:
    """What DDPM and DDIM share: the beta schedule, the forward process, x_0 and eps from a model output, and
    the inference timesteps ("leading" spacing: 0, r, 2r, ... with r = T // steps, run from the last)."""

    def __init__(self, **config):
        self.config = SchedulerConfig(**config)
        c = self.config
        self.betas = BETA_SCHEDULES.get(c.beta_schedule)(c.num_train_timesteps, c.beta_start, c.beta_end)  # (T,)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)  # (T,) alpha_bar_t
        self.num_inference_steps: int | None = None
        self.timesteps = torch.arange(c.num_train_timesteps - 1, -1, -1)

    def set_timesteps(self, num_inference_steps: int) -> None:
        n = self.config.num_train_timesteps
        if not (isinstance(num_inference_steps, int) and 0 < num_inference_steps <= n):
            raise InputError(f"num_inference_steps={num_inference_steps!r} must be an integer in [1, {n}]")
        self.num_inference_steps = num_inference_steps
        ratio = n // num_inference_steps
        self.timesteps = torch.arange(num_inference_steps - 1, -1, -1) * ratio + self.config.steps_offset

    def previous_timestep(self, t: int) -> int:
        n = self.config.num_train_timesteps
        return t - (n // self.num_inference_steps if self.num_inference_steps else 1)

    final_alpha_to_one = True  # alpha_bar "before" timestep 0 (DDIM lets the config choose alpha_bar_0)

    def alphas(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha_bar_t, alpha_bar of the previous inference timestep)."""
        prev = self.previous_timestep(t)
        a_t = self.alphas_cumprod[t]
        a_prev = self.alphas_cumprod[prev] if prev >= 0 else (
            torch.tensor(1.0) if self.final_alpha_to_one else self.alphas_cumprod[0])
        return a_t, a_prev

    def alpha_bar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """alpha_bar at timesteps t (B,) shaped to broadcast over `like` (B, ...)."""
        a = self.alphas_cumprod.to(like.device)[t.to(like.device)].to(like.dtype)
        return a.view(-1, *([1] * (like.dim() - 1)))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0), Ho et al. eq. 4. x0, noise (B, ...), t (B,) -> x_t (B, ...)."""
        a = self.alpha_bar(t, x0)
        return a**0.5 * x0 + (1 - a) ** 0.5 * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the denoiser is trained to output: eps, or v = sqrt(a) eps - sqrt(1 - a) x_0."""
        if self.config.prediction_type == "epsilon":
            return noise
        a = self.alpha_bar(t, x0)
        return a**0.5 * noise - (1 - a) ** 0.5 * x0

    def split(self, model_output, sample, alpha_prod_t):
        """(x_0 prediction, eps prediction) from the model output at x_t; x_0 clipped if the config says so."""
        beta_prod_t = 1 - alpha_prod_t
        if self.config.prediction_type == "epsilon":
            x0 = (sample - beta_prod_t**0.5 * model_output) / alpha_prod_t**0.5
            eps = model_output
        else:  # v_prediction
            x0 = alpha_prod_t**0.5 * sample - beta_prod_t**0.5 * model_output
            eps = alpha_prod_t**0.5 * model_output + beta_prod_t**0.5 * sample
        if self.config.clip_sample:
            x0 = x0.clamp(-self.config.clip_sample_range, self.config.clip_sample_range)
        return x0, eps


@dataclass
class StepOutput:
    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor
    mean: torch.Tensor | None = None  # DDIM: the Gaussian mean of x_{t-1} given x_t (before noise)
    std: float = 0.0  # ... and its standard deviation


class DDPMScheduler(Scheduler):
    """Ancestral sampling, Ho et al. eq. 6-7: x_{t-1} ~ N(mu~_t(x_t, x_0), beta~_t) with the posterior variance
    beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t ("fixed_small")."""

    def variance(self, t: int) -> torch.Tensor:
        a_t, a_prev = self.alphas(t)
        return torch.clamp((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev), min=1e-20)

    def step(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> StepOutput:
        t = int(timestep)
        a_t, a_prev = self.alphas(t)
        beta_prod_t, beta_prod_prev = 1 - a_t, 1 - a_prev
        alpha_t = a_t / a_prev
        x0, _ = self.split(model_output, sample, a_t)
        mean = (a_prev**0.5 * (1 - alpha_t)) / beta_prod_t * x0 + alpha_t**0.5 * beta_prod_prev / beta_prod_t * sample
        if t > 0:
            noise = torch.randn(model_output.shape, generator=generator, dtype=model_output.dtype,
                                device=model_output.device)
            mean = mean + self.variance(t) ** 0.5 * noise
        return StepOutput(prev_sample=mean, pred_original_sample=x0)


class DDIMScheduler(Scheduler):
    """Song et al. 2021, eq. 12: x_{t-1} = sqrt(a_prev) x0^ + sqrt(1 - a_prev - sigma_t^2) eps^ + sigma_t z with
    sigma_t = eta sqrt((1 - a_prev) / (1 - a_t)) sqrt(1 - a_t / a_prev) (eq. 16); eta=0 is deterministic, eta=1
    has DDPM's variance. With eta > 0 each step is a Gaussian policy N(mean, sigma_t^2 I): `log_prob` scores it."""

    @property
    def final_alpha_to_one(self) -> bool:
        return self.config.set_alpha_to_one

    def std(self, t: int, eta: float) -> torch.Tensor:
        a_t, a_prev = self.alphas(t)
        return eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) ** 0.5

    def step(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor, eta: float = 0.0,
             generator: torch.Generator | None = None, variance_noise: torch.Tensor | None = None) -> StepOutput:
        if self.num_inference_steps is None:
            raise InputError("DDIMScheduler.step: call set_timesteps(num_inference_steps) first")
        t = int(timestep)
        a_t, a_prev = self.alphas(t)
        x0, eps = self.split(model_output, sample, a_t)
        std = self.std(t, eta)
        mean = a_prev**0.5 * x0 + (1 - a_prev - std**2) ** 0.5 * eps
        prev_sample = mean
        if eta > 0:
            if variance_noise is None:
                variance_noise = torch.randn(model_output.shape, generator=generator, dtype=model_output.dtype,
                                             device=model_output.device)
            prev_sample = mean + std * variance_noise
        return StepOutput(prev_sample=prev_sample, pred_original_sample=x0, mean=mean, std=float(std))


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    """log N(x; mean, std^2 I) summed over all but the batch dimension: (B, ...) -> (B,). The policy's
    log-probability of one denoising step (DPOK, Fan et al. 2023, sec. 4.1; DDPO, Black et al. 2023, eq. 4)."""
    d = x[0].numel()
    sq = ((x.double() - mean.double()) ** 2).flatten(1).sum(1)
    return (-sq / (2 * std**2) - d * math.log(std) - d * 0.5 * math.log(2 * math.pi)).to(x.dtype)
