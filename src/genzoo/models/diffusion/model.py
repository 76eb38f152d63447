"""A class-conditional diffusion model: a denoiser, its noise schedule, the training objective (Ho et al., 2020,
eq. 14, "L_simple": || target - model(x_t, t, c) ||^2 with t uniform), classifier-free guidance (Ho & Salimans,
2022, eq. 6: out = out(null) + w (out(c) - out(null))), and DDPM / DDIM sampling."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...config import GENRES
from ...errors import InputError
from ...modes import evaluating
from .config import DiffusionConfig
from .denoisers import DENOISERS
from .schedulers import DDIMScheduler, DDPMScheduler


@dataclass
class DiffusionOutput:
    loss: torch.Tensor | None = None
    model_output: torch.Tensor | None = None  # (B, C, H, W) the eps (or v) prediction


@GENRES.register("diffusion")
class DiffusionModel(nn.Module):
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig):
        super().__init__()
        self.config = config
        self.denoiser = DENOISERS.get(config.denoiser)(config)
        self.scheduler = DDPMScheduler(**config.scheduler_config())  # the forward process used in training

    @property
    def null_class(self) -> int:
        return self.config.n_classes

    def shardable_blocks(self) -> list[nn.Module]:
        """The modules FSDP shards one by one (`train.distributed.wrap`): the denoiser's blocks."""
        return self.denoiser.shardable_blocks()

    def check_images(self, x: torch.Tensor, labels: torch.Tensor | None) -> None:
        c = self.config
        want = (c.channels, c.image_size, c.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != want:
            raise InputError(f"images must be (B, {', '.join(map(str, want))}), got {tuple(x.shape)}")
        self.check_labels(labels, x.shape[0])

    def check_labels(self, labels: torch.Tensor | None, batch: int) -> None:
        if labels is None:
            return
        if labels.shape != (batch,):
            raise InputError(f"labels must be ({batch},), got {tuple(labels.shape)}")
        if bool(((labels < 0) | (labels > self.null_class)).any()):
            raise InputError(f"labels must be in [0, {self.null_class}] ({self.null_class} = no class); "
                             f"got {labels.min().item()}..{labels.max().item()}")

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                noise: torch.Tensor | None = None, timesteps: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> DiffusionOutput:
        """The denoising loss of images (B, C, H, W) in [-1, 1]: random t and noise (or the ones given); in training
        mode the label is dropped to the null class with probability cond_drop_prob."""
        self.check_images(pixel_values, labels)
        b, device = pixel_values.shape[0], pixel_values.device
        if timesteps is None:
            timesteps = torch.randint(0, self.config.num_train_timesteps, (b,), generator=generator).to(device)
        if noise is None:
            noise = torch.randn(pixel_values.shape, generator=generator).to(device)
        if labels is not None and self.training and self.config.cond_drop_prob > 0:
            drop = torch.rand(b, generator=generator).to(device) < self.config.cond_drop_prob
            labels = labels.masked_fill(drop, self.null_class)
        x_t = self.scheduler.add_noise(pixel_values, noise, timesteps)
        out = self.denoiser(x_t, timesteps, labels)
        loss = F.mse_loss(out.float(), self.scheduler.target(pixel_values, noise, timesteps).float())
        return DiffusionOutput(loss=loss, model_output=out)

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None,
                guidance_scale: float = 1.0) -> torch.Tensor:
        """The denoiser's output at x_t (B, C, H, W), timesteps t (B,), with classifier-free guidance w > 1
        (conditional and null-class predictions in one batch)."""
        if labels is None or guidance_scale == 1.0:
            return self.denoiser(x_t, t, labels)
        both = self.denoiser(torch.cat([x_t, x_t]), torch.cat([t, t]),
                             torch.cat([labels, torch.full_like(labels, self.null_class)]))
        cond, uncond = both.chunk(2)
        return uncond + guidance_scale * (cond - uncond)

    @torch.no_grad()
    def sample(self, labels: torch.Tensor | None = None, n: int | None = None, num_inference_steps: int = 50,
               sampler: str = "ddim", eta: float = 0.0, guidance_scale: float = 1.0,
               generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] for class labels (B,) (or n unconditional ones) by DDIM (eta: 0
        deterministic, 1 DDPM-like) or DDPM ancestral sampling over num_inference_steps steps."""
        if (labels is None) == (n is None):
            raise InputError("sample: give labels (class-conditional) or n (unconditional), not both")
        if sampler not in ("ddim", "ddpm"):
            raise InputError(f"sampler must be 'ddim' or 'ddpm', got {sampler!r}")
        device = device or next(self.parameters()).device
        b = n if labels is None else len(labels)
        self.check_labels(labels, b)
        labels = None if labels is None else labels.to(device)
        c = self.config
        sched = (DDIMScheduler if sampler == "ddim" else DDPMScheduler)(**c.scheduler_config())
        sched.set_timesteps(num_inference_steps)
        x = torch.randn((b, c.channels, c.image_size, c.image_size), generator=generator).to(device)
        with evaluating(self):
            for t in sched.timesteps.tolist():
                out = self.predict(x, torch.full((b,), t, device=device), labels, guidance_scale)
                kw = {"eta": eta} if sampler == "ddim" else {}
                x = sched.step(out, t, x, generator=generator, **kw).prev_sample
        return x.clamp(-1, 1)
