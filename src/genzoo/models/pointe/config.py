"""PointEConfig: the whole Point-E system (Nichol et al., "Point-E: A System for Generating 3D Point Clouds from
Complex Prompts", 2022, arXiv 2212.08751) in one flat config: a CLIP (text tower over captions, ViT over views), a
text-to-image diffusion model (the genre's DiT or UNet, conditioned on CLIP's text token states), a point cloud
diffusion transformer conditioned on the CLIP grid tokens of a view, an upsampler (K -> ratio * K points) and,
for comparison, a point model conditioned directly on CLIP's text tokens. `clip_config`, `image_config` and
`point_config` build each part's own config from the flat fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import PRESETS, Preset, check, check_positive
from ..clip.config import CLIPConfig
from ..diffusion.config import DiffusionConfig


@dataclass
class PointDenoiserConfig:
    """One point diffusion transformer (Point-E's PointDiffusionTransformer): width, depth, heads; input and output
    channels (output = 2 x channels with a learned variance); the timestep as a token or added to every point."""

    channels: int = 6
    width: int = 64
    layers: int = 4
    heads: int = 4
    time_token: bool = True
    learn_sigma: bool = True
    init_scale: float = 0.25  # Point-E: weights N(0, (init_scale / sqrt(width))^2)

    @property
    def out_channels(self) -> int:
        return self.channels * (2 if self.learn_sigma else 1)


@dataclass
class PointEConfig:
    # CLIP (trained first, then frozen): a causal text tower over captions and a ViT over the views
    vocab_size: int = 512
    max_text_len: int = 16
    eos_token_id: int = 0
    pad_token_id: int = 0
    clip_width: int = 64
    clip_layers: int = 2
    clip_heads: int = 4
    clip_patch: int = 4
    projection_dim: int = 32
    image_size: int = 16  # the synthetic view, RGB
    # text -> image: the diffusion genre's denoiser, reading CLIP's text token states
    image_denoiser: str = "dit"
    image_width: int = 64
    image_layers: int = 4
    image_heads: int = 4
    image_patch: int = 2
    image_base_channels: int = 32  # unet
    image_timesteps: int = 1000
    # image -> points, points -> more points
    points: int = 64  # K, the coarse cloud
    upsample_ratio: int = 4  # the upsampler's cloud has ratio * K points (K given, (ratio - 1) K new)
    point_width: int = 64
    point_layers: int = 3
    point_heads: int = 4
    upsampler_layers: int = 2
    time_token: bool = True
    learn_sigma: bool = True
    point_timesteps: int = 1024
    beta_schedule: str = "cosine"  # image and point schedules (the genre's BETA_SCHEDULES)
    xyz_scale: float = 1.0  # point stages diffuse xyz x this (input scaling, Chen 2023; RGB stays x 1)
    cond_drop_prob: float = 0.1  # every stage's condition is dropped (zeroed) this often, for guidance
    text_points: bool = True  # also the point model conditioned directly on CLIP text tokens (a baseline)
    checkpoint_format: str = "genzoo"
    genre: str = field(default="pointe", repr=False)

    def __post_init__(self):
        check_positive(self, "vocab_size", "max_text_len", "clip_width", "clip_layers", "clip_heads", "clip_patch",
                       "projection_dim", "image_size", "image_width", "image_layers", "image_heads", "image_patch",
                       "image_base_channels", "image_timesteps", "points", "point_width", "point_layers",
                       "point_heads", "upsampler_layers", "point_timesteps")
        check(isinstance(self.upsample_ratio, int) and self.upsample_ratio >= 2, "upsample_ratio",
              self.upsample_ratio, "an integer >= 2 (the upsampler adds (ratio - 1) x points)")
        check(self.point_width % self.point_heads == 0, "point_width", self.point_width,
              f"must be divisible by point_heads={self.point_heads}")
        check(0 <= self.cond_drop_prob < 1, "cond_drop_prob", self.cond_drop_prob, "in [0, 1)")
        check(isinstance(self.xyz_scale, (int, float)) and not isinstance(self.xyz_scale, bool)
              and 0 < self.xyz_scale <= 10, "xyz_scale", self.xyz_scale, "a number in (0, 10]")
        self.clip_config()  # each part validates its own fields
        self.image_config()
        from ..diffusion.schedulers import BETA_SCHEDULES

        BETA_SCHEDULES.get(self.beta_schedule)

    def clip_config(self) -> CLIPConfig:
        return CLIPConfig(vocab_size=self.vocab_size, max_positions=self.max_text_len, text_d_model=self.clip_width,
                          text_layers=self.clip_layers, text_heads=self.clip_heads, text_d_ff=4 * self.clip_width,
                          eos_token_id=self.eos_token_id, pad_token_id=self.pad_token_id, image_size=self.image_size,
                          patch_size=self.clip_patch, channels=3, vision_d_model=self.clip_width,
                          vision_layers=self.clip_layers, vision_heads=self.clip_heads,
                          vision_d_ff=4 * self.clip_width, projection_dim=self.projection_dim)

    def image_config(self) -> DiffusionConfig:
        return DiffusionConfig(denoiser=self.image_denoiser, image_size=self.image_size, channels=3, n_classes=0,
                               cond_drop_prob=self.cond_drop_prob, context_dim=self.clip_width,
                               base_channels=self.image_base_channels, groups=8, d_model=self.image_width,
                               n_layers=self.image_layers, n_heads=self.image_heads, d_ff=4 * self.image_width,
                               patch_size=self.image_patch, num_train_timesteps=self.image_timesteps,
                               beta_schedule=self.beta_schedule)

    def point_config(self, layers: int | None = None) -> PointDenoiserConfig:
        return PointDenoiserConfig(width=self.point_width, layers=layers or self.point_layers,
                                   heads=self.point_heads, time_token=self.time_token, learn_sigma=self.learn_sigma)

    @property
    def point_scales(self) -> tuple[float, ...]:
        """Per channel (xyz, RGB), the factor the point stages multiply clean clouds by before adding noise."""
        return (float(self.xyz_scale),) * 3 + (1.0,) * 3

    @property
    def fine_points(self) -> int:
        return self.points * self.upsample_ratio

    @property
    def grid_tokens(self) -> int:
        """CLIP's ViT grid: the tokens a view conditions the point models with."""
        return (self.image_size // self.clip_patch) ** 2


PRESETS.register("pointe-shapes", Preset(PointEConfig))
PRESETS.register("pointe-tiny", Preset(PointEConfig, vocab_size=300, max_text_len=12, clip_width=32, clip_layers=1,
                                       clip_heads=2, projection_dim=16, image_size=8, image_width=32, image_layers=1,
                                       image_heads=2, image_timesteps=100, points=16, point_width=32, point_layers=2,
                                       point_heads=2, upsampler_layers=1, point_timesteps=100))
