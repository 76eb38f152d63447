"""Point-E (Nichol et al., 2022, arXiv 2212.08751): text -> one synthetic view -> a coarse point cloud -> a denser
one, as one genzoo model (genre "pointe") that saves and loads as one directory.

    prompt --CLIP text tower (frozen)--> token states (B, L, D)
           --text-to-image diffusion (the genre's DiT/UNet, guided)--> view (B, 3, S, S)          (paper sec. 4.1)
    view   --CLIP ViT (frozen)--> grid tokens (B, P, D)
           --point diffusion transformer (guided)--> coarse cloud (B, 6, K)                       (sec. 4.2)
           --upsampler, conditioned on the grid and the coarse cloud--> (ratio - 1) K more points (sec. 4.3)
    cloud = coarse + new points (B, 6, ratio K)

`text_base` (config `text_points`) is the point model conditioned on CLIP's text tokens directly, the baseline the
paper compares the image route with. Training (task "pointe") fits CLIP first, then the diffusion models on its
frozen features; `generate_point_cloud` runs the chain and times each stage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from ...config import GENRES
from ...errors import InputError
from ..clip.model import CLIP
from ..diffusion.model import DiffusionModel
from ..diffusion.schedulers import DDPMScheduler
from .config import PointEConfig
from .diffusion import PointCloudDiffusion
from .transformer import CloudCondition, PointDenoiser, TokenCondition


@dataclass
class PointCloudOutput:
    prompts: list[str]
    views: torch.Tensor  # (B, 3, S, S) in [-1, 1]: the synthetic view of each prompt
    coarse: torch.Tensor  # (B, 6, K) Point-E channels
    clouds: torch.Tensor  # (B, 6, ratio K): the coarse points and the upsampler's
    seconds: dict = field(default_factory=dict)  # stage -> wall-clock seconds
    unseen: list = field(default_factory=list)  # per prompt, the words no training caption contains


def tokenize_prompts(tokenizer, prompts: list[str], length: int, eos_id: int, pad_id: int) -> torch.Tensor:
    """Prompts -> ids (B, length): the caption, the end-of-text token, padding (a fixed length: the image model
    reads every token state, as Stable Diffusion reads all 77). Empty prompts are refused."""
    for p in prompts:
        if not isinstance(p, str) or not p.strip():
            raise InputError(f"a prompt must be a non-empty string, got {p!r}")
    rows = [ids[:-1] if ids and ids[-1] == eos_id else ids for ids in tokenizer.encode_batch(prompts)]
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        r = r[: length - 1] + [eos_id]
        ids[i, : len(r)] = torch.tensor(r)
    return ids


@GENRES.register("pointe")
class PointE(nn.Module):
    config_class = PointEConfig

    def __init__(self, config: PointEConfig):
        super().__init__()
        self.config = c = config
        self.clip = CLIP(c.clip_config())
        self.image = DiffusionModel(c.image_config())
        k, w = c.points, c.point_width

        def schedule():
            return DDPMScheduler(num_train_timesteps=c.point_timesteps, beta_schedule=c.beta_schedule)

        def stage(conditions, n_points, layers=None, guided=("image",)):
            return PointCloudDiffusion(PointDenoiser(c.point_config(layers), conditions), schedule(), n_points,
                                       c.cond_drop_prob, guided, c.point_scales)

        self.base = stage({"image": TokenCondition(c.clip_width, w)}, k)
        self.upsampler = stage({"image": TokenCondition(c.clip_width, w), "low_res": CloudCondition(6, w)},
                               (c.upsample_ratio - 1) * k, c.upsampler_layers)
        self.text_base = stage({"text": TokenCondition(c.clip_width, w)}, k, guided=("text",)) \
            if c.text_points else None
        self.tokenizer = None  # set by genzoo.load (the run's tokenizer.json) or by the training task

    def shardable_blocks(self) -> list[nn.Module]:
        parts = [self.base, self.upsampler] + ([self.text_base] if self.text_base is not None else [])
        return self.clip.shardable_blocks() + self.image.shardable_blocks() + [
            b for p in parts for b in p.denoiser.blocks]

    # ---- CLIP features (frozen after CLIP's own training stage) ----
    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> ids (B, max_text_len) (`tokenize_prompts`), with the model's tokenizer."""
        if self.tokenizer is None:
            raise InputError("this PointE model has no tokenizer: load a trained run (genzoo.load) or set "
                             "model.tokenizer")
        c = self.config
        return tokenize_prompts(self.tokenizer, prompts, c.max_text_len, c.eos_token_id, c.pad_token_id)

    def text_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        """CLIP text tower's final token states (B, L, D): the text-to-image model's context."""
        self.clip.check_inputs(input_ids=input_ids)
        return self.clip.text(input_ids)[0]

    def image_grid(self, views: torch.Tensor) -> torch.Tensor:
        """CLIP ViT's grid tokens (B, P, D) of views (B, 3, S, S) (the class token left out), Point-E's condition."""
        self.clip.check_inputs(pixel_values=views)
        return self.clip.vision(views)[0][:, 1:]

    # ---- training ----
    def clip_loss(self, input_ids: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        return self.clip(input_ids, views, return_loss=True).loss

    def diffusion_losses(self, input_ids: torch.Tensor, views: torch.Tensor, cloud: torch.Tensor,
                         generator: torch.Generator | None = None) -> dict:
        """Every diffusion stage's loss on a batch of captions (B, L), views (B, 3, S, S) and clouds
        (B, 6, ratio K) whose first K points are the coarse cloud; CLIP's features computed without gradients.
        -> {"loss": the sum, "<stage>": its loss, "<stage>_vb": its variance term}."""
        from ...data.shapes import check_cloud

        c = self.config
        check_cloud(cloud, c.fine_points)
        with torch.no_grad():
            text, grid = self.text_states(input_ids), self.image_grid(views)
        coarse, rest = cloud[:, :, : c.points], cloud[:, :, c.points:]
        out = {"image": self.image(views, context=text, generator=generator).loss}
        parts = {"base": (self.base, coarse, {"image": grid}),
                 "upsampler": (self.upsampler, rest, {"image": grid, "low_res": coarse})}
        if self.text_base is not None:
            parts["text_base"] = (self.text_base, coarse, {"text": text})
        for name, (stage, x0, cond) in parts.items():
            r = stage(x0, generator=generator, **cond)
            out[name], out[f"{name}_vb"] = r["loss"], r["vb"]
        out["loss"] = sum(out[k] for k in ("image", *parts))
        return out

    # ---- generation ----
    @torch.no_grad()
    def text_to_image(self, prompts: list[str], guidance_scale: float = 3.0, steps: int = 25,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        ids = self.tokenize(prompts).to(self.device)
        return self.image.sample(context=self.text_states(ids), num_inference_steps=steps,
                                 guidance_scale=guidance_scale, generator=generator)

    @torch.no_grad()
    def image_to_points(self, views: torch.Tensor, guidance_scale: float = 3.0, steps: int = 32,
                        generator: torch.Generator | None = None, sampler: str = "karras") -> torch.Tensor:
        return self.base.sample(len(views), sampler, steps, guidance_scale, generator, image=self.image_grid(views))

    @torch.no_grad()
    def upsample(self, coarse: torch.Tensor, views: torch.Tensor | None, steps: int = 16,
                 generator: torch.Generator | None = None, sampler: str = "karras") -> torch.Tensor:
        """The coarse cloud (B, 6, K) and (ratio - 1) K new points conditioned on it and the view's grid (zeros: no
        view, as Point-E's upsampler allows) -> (B, 6, ratio K). Unguided, sigma_max 160, no churn (Point-E)."""
        from ...data.shapes import check_cloud

        check_cloud(coarse, self.config.points, "coarse")
        grid = self.image_grid(views) if views is not None else coarse.new_zeros(
            len(coarse), self.config.grid_tokens, self.config.clip_width)
        new = self.upsampler.sample(len(coarse), sampler, steps, 1.0, generator, sigma_max=160.0, s_churn=0.0,
                                    image=grid, low_res=coarse)
        return torch.cat([coarse, new], dim=2)

    @torch.no_grad()
    def text_to_points(self, prompts: list[str], guidance_scale: float = 3.0, steps: int = 32,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """The baseline route: the coarse cloud straight from CLIP's text tokens."""
        if self.text_base is None:
            raise InputError("this PointE model has no text-conditioned point model (config text_points=False)")
        ids = self.tokenize(prompts).to(self.device)
        return self.text_base.sample(len(prompts), "karras", steps, guidance_scale, generator,
                                     text=self.text_states(ids))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def generate_point_cloud(self, prompts: str | list[str], guidance_scale: float = 3.0,
                             image_guidance_scale: float | None = None, image_steps: int = 25, point_steps: int = 32,
                             upsample_steps: int = 16, seed: int = 0, route: str = "image") -> PointCloudOutput:
        """The whole chain for each prompt; route "image" (text -> view -> points, Point-E) or "text" (the baseline:
        text -> points; the view is then the one the image model draws, for the figure). Timed per stage."""
        from ...data.shape_captions import parse

        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise InputError("no prompts given")
        if route not in ("image", "text"):
            raise InputError(f"route must be 'image' or 'text', got {route!r}")
        unseen = [parse(p).unseen for p in prompts]  # raises on an empty prompt, before any compute
        g = torch.Generator().manual_seed(seed)
        seconds = {}
        t0 = time.perf_counter()
        w_img = guidance_scale if image_guidance_scale is None else image_guidance_scale
        views = self.text_to_image(prompts, w_img, image_steps, g)
        seconds["text_to_image"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if route == "image":
            coarse = self.image_to_points(views, guidance_scale, point_steps, g)
        else:
            coarse = self.text_to_points(prompts, guidance_scale, point_steps, g)
        seconds["points"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        clouds = self.upsample(coarse, views if route == "image" else None, upsample_steps, g)
        seconds["upsample"] = time.perf_counter() - t0
        return PointCloudOutput(prompts, views, coarse, clouds, seconds, unseen)
