"""A point cloud diffusion: a `PointDenoiser`, the noise schedule it is trained on (the genre's DDPMScheduler,
cosine, Nichol & Dhariwal 2021 eq. 17; Point-E uses 1024 steps), its loss and its samplers.

Loss (Point-E, arXiv 2212.08751 sec. 4.2; Nichol & Dhariwal sec. 3.1): || eps - eps_theta(x_t, t, c) ||^2 (mean over
channels and points) plus, with a learned variance, the variational bound term L_t with the mean's gradient stopped
(`diffusion.variance.vb_term`). Conditioning dropout: in training each row's guided conditions (the image grid, the
text tokens) are zeroed with probability cond_drop_prob, as Point-E does, so the same model gives the unconditional
prediction classifier-free guidance needs: eps = eps(null) + w (eps(c) - eps(null)) (Ho & Salimans 2022, eq. 6).

Input scaling (Chen, "On the Importance of Noise Scheduling for Diffusion Models", 2023, arXiv 2301.10972, sec.
2.2: x_t = sqrt(alpha_bar_t) b x_0 + sqrt(1 - alpha_bar_t) eps, the scale b shifts every step's signal-to-noise
ratio by b^2): the stage diffuses x_0 * scales, one scale per channel (`scales` (C,)). Procedural shapes have
coordinates of std ~0.3 against colours of std ~0.7 (per object constant), so with scale 1 the shape is drowned
by the noise from alpha_bar ~0.9 on while the colour survives to ~0.2: a scale on xyz gives the shape channels
the share of the schedule the colours have. Samplers clip the x_0 prediction to [-scales, scales] (the data's
[-1, 1]) and return clouds divided by the scales again.

Samplers: "karras" (Heun, Point-E's default: 64 steps, sigma_max 120 with s_churn 3 for the base model, 160 and 0 for
the upsampler), "ddim" (the genre's DDIMScheduler) and "ddpm" (ancestral, on a respaced schedule; with a learned
variance its reverse steps use it). Clouds are (B, 6, N) in Point-E's channels (`data.shapes.to_channels`).
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import InputError
from ...modes import evaluating
from ..diffusion.karras import karras_sample
from ..diffusion.schedulers import DDIMScheduler, DDPMScheduler
from ..diffusion.variance import GaussianTables, vb_term
from .transformer import PointDenoiser

SAMPLERS = ("karras", "ddim", "ddpm")


class PointCloudDiffusion(nn.Module):
    def __init__(self, denoiser: PointDenoiser, scheduler: DDPMScheduler, n_points: int, cond_drop_prob: float,
                 guided: tuple[str, ...], scales: tuple[float, ...] | None = None):
        """n_points: the points this stage generates; guided: the conditions dropped in training and contrasted
        with their null (zeros) by guidance (the others, e.g. the upsampler's low-resolution cloud, always stay);
        scales: per channel, the factor clean clouds are multiplied by before noise is added (default all 1)."""
        super().__init__()
        self.denoiser, self.scheduler = denoiser, scheduler
        self.tables = GaussianTables(scheduler.alphas_cumprod)
        self.n_points, self.cond_drop_prob, self.guided = n_points, cond_drop_prob, guided
        self.channels = c = denoiser.cfg.channels
        scales = (1.0,) * c if scales is None else tuple(float(v) for v in scales)
        if len(scales) != c or not all(v > 0 for v in scales):
            raise InputError(f"scales={scales} must be {c} positive numbers, one per channel")
        self.register_buffer("scales", torch.tensor(scales).view(1, c, 1), persistent=False)  # (1, C, 1)

    def clip_x0(self, x0: torch.Tensor) -> torch.Tensor:
        """An x_0 prediction in diffusion space clipped to the data's [-1, 1] (i.e. [-scales, scales])."""
        s = self.scales.to(x0.dtype)
        return torch.maximum(torch.minimum(x0, s), -s)

    def check(self, x: torch.Tensor | None, conditions: dict, batch: int | None = None) -> int:
        """Input shapes, before any compute: x (B, C, n_points); every condition present with its feature width."""
        from ...data.shapes import check_cloud

        if x is not None:
            check_cloud(x, self.n_points, "points")
            batch = x.shape[0]
        for name, part in self.denoiser.conditions.items():
            c = conditions.get(name)
            if c is None:
                raise InputError(f"condition {name!r} is missing (this stage reads {list(self.denoiser.conditions)})")
            axis = part.feature_axis
            if c.dim() != 3 or c.shape[0] != batch or c.shape[axis] != part.features:
                want = f"({batch}, {part.features}, K)" if axis == 1 else f"({batch}, L, {part.features})"
                raise InputError(f"condition {name!r} must be {want}, got {tuple(c.shape)}")
        unknown = sorted(set(conditions) - set(self.denoiser.conditions))
        if unknown:
            raise InputError(f"unknown condition(s) {unknown}; this stage reads {list(self.denoiser.conditions)}")
        return batch

    def drop(self, conditions: dict, keep: torch.Tensor) -> dict:
        """The guided conditions zeroed where keep (B,) is False."""
        return {k: v * keep.view(-1, 1, 1).to(v.dtype) if k in self.guided else v for k, v in conditions.items()}

    def forward(self, x0: torch.Tensor, generator: torch.Generator | None = None, **conditions) -> dict:
        """Training loss of clean clouds x0 (B, C, N): {"loss", "mse", "vb"} (scalars)."""
        b = self.check(x0, conditions)
        device = x0.device
        x0 = x0 * self.scales.to(x0.dtype)  # (B, C, N) in diffusion space
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (b,), generator=generator).to(device)
        noise = torch.randn(x0.shape, generator=generator).to(device)
        if self.training and self.cond_drop_prob > 0:
            conditions = self.drop(conditions, torch.rand(b, generator=generator).to(device) >= self.cond_drop_prob)
        x_t = self.scheduler.add_noise(x0, noise, t)
        out = self.denoiser(x_t, t, **conditions)
        eps = out[:, : self.channels]
        mse = ((eps.float() - noise.float()) ** 2).mean()
        vb = torch.zeros((), device=device)
        if out.shape[1] > self.channels:  # learned variance: L_vlb trains it, the mean's gradient stopped
            vb = vb_term(self.tables, x0.float(), x_t.float(), t, eps.detach().float(), out[:, self.channels:].float())
            vb = vb.mean()
        return {"loss": mse + vb, "mse": mse, "vb": vb}

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, guidance_scale: float = 1.0, **conditions):
        """(eps (B, C, N) with classifier-free guidance, variance values (B, C, N) or None)."""
        if guidance_scale == 1.0 or not any(k in self.guided for k in conditions):
            out = self.denoiser(x_t, t, **conditions)
        else:  # conditional and null predictions in one batch; guidance on eps, the variance from the conditional
            b = x_t.shape[0]
            both = {k: torch.cat([v, v]) for k, v in conditions.items()}
            both = self.drop(both, torch.arange(2 * b, device=x_t.device) < b)
            cond, uncond = self.denoiser(torch.cat([x_t, x_t]), torch.cat([t, t]), **both).chunk(2)
            eps = uncond[:, : self.channels] + guidance_scale * (cond[:, : self.channels] - uncond[:, : self.channels])
            out = torch.cat([eps, cond[:, self.channels:]], dim=1)
        var = out[:, self.channels:] if out.shape[1] > self.channels else None
        return out[:, : self.channels], var

    @torch.no_grad()
    def sample(self, n: int, sampler: str = "karras", steps: int = 64, guidance_scale: float = 3.0,
               generator: torch.Generator | None = None, sigma_max: float = 120.0, s_churn: float = 3.0,
               sigma_min: float = 1e-3, **conditions) -> torch.Tensor:
        """n clouds (n, C, n_points) in [-1, 1] given each condition's input (n rows); sampled in diffusion space
        (the data times `scales`) and scaled back."""
        if sampler not in SAMPLERS:
            raise InputError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if not (isinstance(steps, int) and steps > 0):
            raise InputError(f"steps={steps!r} must be a positive integer")
        self.check(None, conditions, n)
        device = next(self.parameters()).device
        conditions = {k: v.to(device) for k, v in conditions.items()}
        shape = (n, self.channels, self.n_points)
        with evaluating(self):
            if sampler == "karras":
                def x0(x, t):
                    eps = self.predict(x, t, guidance_scale, **conditions)[0]
                    return self.clip_x0(self.tables.x0_from_eps(x, t, eps))

                x = karras_sample(x0, self.scheduler.alphas_cumprod, shape, steps, sigma_min=sigma_min,
                                  sigma_max=sigma_max, s_churn=s_churn, clip=False, generator=generator,
                                  device=device)
            elif sampler == "ddim":
                x = self._ddim(shape, steps, guidance_scale, generator, conditions, device)
            else:
                x = self._ddpm(shape, steps, guidance_scale, generator, conditions, device)
        # the last step lands on the clipped x_0 up to rounding
        return (x / self.scales.to(x.dtype)).clamp(-1, 1)

    def _ddim(self, shape, steps, guidance_scale, generator, conditions, device):
        """Song et al. 2021 eq. 12 with eta = 0 on the genre's DDIM timesteps: x_{t-1} = sqrt(a_prev) x0^ +
        sqrt(1 - a_prev) eps^, x0^ clipped per channel (`clip_x0`)."""
        sched = DDIMScheduler(**{**vars(self.scheduler.config), "set_alpha_to_one": True})
        sched.set_timesteps(steps)
        x = torch.randn(shape, generator=generator).to(device)
        for t in sched.timesteps.tolist():
            eps, _ = self.predict(x, torch.full((shape[0],), t, device=device), guidance_scale, **conditions)
            a_t, a_prev = (a.to(x.dtype) for a in sched.alphas(t))
            x0 = self.clip_x0((x - (1 - a_t) ** 0.5 * eps) / a_t**0.5)
            x = a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps
        return x

    def _ddpm(self, shape, steps, guidance_scale, generator, conditions, device):
        """Ancestral sampling over `steps` evenly spaced timesteps of the training schedule (respaced: the betas
        recomputed from the kept alpha_bars), with the learned variance when the model has one."""
        total = self.scheduler.config.num_train_timesteps
        if steps > total:
            raise InputError(f"steps={steps} exceeds the {total} training timesteps")
        kept = torch.linspace(0, total - 1, steps).round().long().unique()  # increasing timesteps
        tables = GaussianTables(self.scheduler.alphas_cumprod[kept])
        x = torch.randn(shape, generator=generator).to(device)
        for i in reversed(range(len(kept))):
            idx = torch.full((shape[0],), i, device=device)
            eps, v = self.predict(x, torch.full((shape[0],), int(kept[i]), device=device), guidance_scale,
                                  **conditions)
            x0 = self.clip_x0(tables.x0_from_eps(x, idx, eps))
            mean, logvar = tables.posterior(x0, x, idx)
            if v is not None:
                logvar = tables.learned_log_variance(v, idx)
            if i > 0:
                x = mean + torch.exp(0.5 * logvar) * torch.randn(shape, generator=generator).to(device)
            else:
                x = mean
        return x
