"""A class- or text-conditional diffusion model: a denoiser, its noise schedule, the training objective (Ho et al.,
2020, eq. 14, "L_simple": || target - model(x_t, t, c) ||^2 with t uniform), classifier-free guidance (Ho & Salimans,
2022, eq. 6: out = out(null) + w (out(c) - out(null))), and DDPM / DDIM / Karras-Heun sampling.

The condition c is a class label (B,) (index n_classes is the null class), or, with `context_dim`, a text encoder's
token states `context` (B, L, context_dim) whose null is all zeros (prompt dropout zeroes a row, as Point-E drops its
CLIP condition, arXiv 2212.08751 sec. 4.2)."""

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

SAMPLERS = ("ddim", "ddpm", "karras")


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

    def check_context(self, context: torch.Tensor | None, batch: int) -> None:
        d = self.config.context_dim
        if context is None:
            return
        if not d:
            raise InputError("context (text token states) given to a model without text conditioning (context_dim=0)")
        if context.dim() != 3 or context.shape[0] != batch or context.shape[2] != d:
            raise InputError(f"context must be ({batch}, L, {d}) text token states, got {tuple(context.shape)}")

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        """The denoiser's raw output; a text-conditioned model without a context reads the null (zero) context."""
        if not self.config.context_dim:
            return self.denoiser(x_t, t, labels)
        if context is None:
            context = x_t.new_zeros(x_t.shape[0], 1, self.config.context_dim)
        return self.denoiser(x_t, t, labels, context=context)

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
                generator: torch.Generator | None = None, context: torch.Tensor | None = None) -> DiffusionOutput:
        """The denoising loss of images (B, C, H, W) in [-1, 1]: random t and noise (or the ones given); in training
        mode the label (or the text context) is dropped to the null condition with probability cond_drop_prob."""
        self.check_images(pixel_values, labels)
        b, device = pixel_values.shape[0], pixel_values.device
        self.check_context(context, b)
        if timesteps is None:
            timesteps = torch.randint(0, self.config.num_train_timesteps, (b,), generator=generator).to(device)
        if noise is None:
            noise = torch.randn(pixel_values.shape, generator=generator).to(device)
        if labels is not None and self.training and self.config.cond_drop_prob > 0:
            drop = torch.rand(b, generator=generator).to(device) < self.config.cond_drop_prob
            labels = labels.masked_fill(drop, self.null_class)
        if context is not None and self.training and self.config.cond_drop_prob > 0:
            keep = torch.rand(b, generator=generator).to(device) >= self.config.cond_drop_prob
            context = context * keep[:, None, None].to(context.dtype)
        x_t = self.scheduler.add_noise(pixel_values, noise, timesteps)
        out = self.denoise(x_t, timesteps, labels, context)
        loss = F.mse_loss(out.float(), self.scheduler.target(pixel_values, noise, timesteps).float())
        return DiffusionOutput(loss=loss, model_output=out)

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None,
                guidance_scale: float = 1.0, context: torch.Tensor | None = None) -> torch.Tensor:
        """The denoiser's output at x_t (B, C, H, W), timesteps t (B,), with classifier-free guidance w != 1
        (conditional and null-condition predictions in one batch)."""
        if (labels is None and context is None) or guidance_scale == 1.0:
            return self.denoise(x_t, t, labels, context)
        null_labels = None if labels is None else torch.full_like(labels, self.null_class)
        both = self.denoise(torch.cat([x_t, x_t]), torch.cat([t, t]),
                            None if labels is None else torch.cat([labels, null_labels]),
                            None if context is None else torch.cat([context, torch.zeros_like(context)]))
        cond, uncond = both.chunk(2)
        return uncond + guidance_scale * (cond - uncond)

    @torch.no_grad()
    def sample(self, labels: torch.Tensor | None = None, n: int | None = None, num_inference_steps: int = 50,
               sampler: str = "ddim", eta: float = 0.0, guidance_scale: float = 1.0,
               generator: torch.Generator | None = None, device=None, context: torch.Tensor | None = None,
               karras: dict | None = None) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] for class labels (B,), text token states `context` (B, L, Dc), or n
        unconditional ones, by DDIM (eta: 0 deterministic, 1 DDPM-like), DDPM ancestral sampling, or the Karras
        et al. (2022) Heun sampler ("karras"; `karras`: sigma_min, sigma_max, rho, s_churn) over
        num_inference_steps steps."""
        if sum(v is not None for v in (labels, n, context)) != 1:
            raise InputError("sample: give labels (class-conditional), context (text) or n (unconditional): one")
        if sampler not in SAMPLERS:
            raise InputError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        device = device or next(self.parameters()).device
        b = n if n is not None else len(labels if labels is not None else context)
        self.check_labels(labels, b)
        self.check_context(context, b)
        labels = None if labels is None else labels.to(device)
        context = None if context is None else context.to(device)
        c = self.config
        shape = (b, c.channels, c.image_size, c.image_size)
        if sampler == "karras":
            from .karras import karras_sample

            def x0(x, t):  # the x_0 prediction (eps or v) at the DDPM's x_t
                out = self.predict(x, t, labels, guidance_scale, context)
                return self.scheduler.split(out, x, self.scheduler.alpha_bar(t, x))[0]

            with evaluating(self):
                return karras_sample(x0, self.scheduler.alphas_cumprod, shape, num_inference_steps,
                                     generator=generator, clip=c.clip_sample, device=device, **(karras or {}))
        sched = (DDIMScheduler if sampler == "ddim" else DDPMScheduler)(**c.scheduler_config())
        sched.set_timesteps(num_inference_steps)
        x = torch.randn(shape, generator=generator).to(device)
        with evaluating(self):
            for t in sched.timesteps.tolist():
                out = self.predict(x, torch.full((b,), t, device=device), labels, guidance_scale, context)
                kw = {"eta": eta} if sampler == "ddim" else {}
                x = sched.step(out, t, x, generator=generator, **kw).prev_sample
        return x.clamp(-1, 1)
