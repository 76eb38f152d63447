"""Diffusion models: parameter-free DDPM / DDIM schedulers, UNet and DiT denoisers, classifier-free guidance, and
RL fine-tuning of the denoising chain (`rl`: DPOK, reward-weighted fine-tuning)."""

from . import diffusers_format  # noqa: F401  (registers the "diffusers" checkpoint format)
from .config import DiffusionConfig
from .model import DiffusionModel, DiffusionOutput
from .schedulers import DDIMScheduler, DDPMScheduler, gaussian_log_prob

__all__ = ["DDIMScheduler", "DDPMScheduler", "DiffusionConfig", "DiffusionModel", "DiffusionOutput",
           "gaussian_log_prob"]
