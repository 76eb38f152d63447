"""DiffusionConfig: a class- or text-conditional image denoiser (a UNet or a DiT-style transformer) and the noise
schedule it is trained with. Presets `ddpm-digits` (UNet, 8x8 greyscale, 10 classes), `dit-digits`, tiny variants,
and text-conditioned tiny variants (`dit-text-tiny`, `ddpm-text-tiny`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import PRESETS, Preset, check, check_positive
from ...nn import ATTENTION_GATES, make_softmax
from .schedulers import SchedulerConfig


@dataclass
class DiffusionConfig:
    denoiser: str = "unet"  # DENOISERS: "unet" or "dit"
    image_size: int = 8
    channels: int = 1
    n_classes: int = 10  # class conditioning; 0 = unconditional. Index n_classes is the null class (guidance)
    cond_drop_prob: float = 0.1  # training: the label is replaced by the null class with this probability
    # text conditioning: the width of a (frozen) text encoder's token states (B, L, context_dim) the denoiser reads
    # (DiT: in-context tokens; UNet: cross-attention); 0 = none. A dropped prompt is all zeros (the null condition).
    context_dim: int = 0
    # UNet
    base_channels: int = 32
    channel_mults: tuple = (1, 2)
    n_res_blocks: int = 1
    groups: int = 8
    # UNet2D (diffusers' UNet2DModel layout)
    attention_levels: tuple = ()  # levels (0 = highest resolution) whose blocks attend (AttnDownBlock2D)
    attention_head_dim: int = 8
    norm_eps: float = 1e-5
    flip_sin_to_cos: bool = True  # timestep embedding: cosines first
    freq_shift: float = 0.0
    # DiT
    d_model: int = 64
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 256
    patch_size: int = 2
    # shared
    dropout: float = 0.0
    # every attention of the denoiser (UNet self- and cross-attention, DiT blocks)
    softmax: str = "standard"  # SOFTMAX: the attention softmax variant
    softmax_args: dict | None = None  # the softmax variant's parameters (nn.softmax.make_softmax), e.g. clipped's gamma
    attn_gate: str = "none"  # ATTENTION_GATES: a per-head sigmoid gate on the attention output (gated attention)
    # noise schedule (the scheduler's config; see schedulers.SchedulerConfig)
    num_train_timesteps: int = 1000
    beta_schedule: str = "cosine"
    beta_start: float = 0.0001
    beta_end: float = 0.02
    prediction_type: str = "epsilon"
    clip_sample: bool = True
    checkpoint_format: str = "genzoo"
    genre: str = field(default="diffusion", repr=False)

    def __post_init__(self):
        from .denoisers import DENOISERS

        self.channel_mults = tuple(self.channel_mults)
        self.attention_levels = tuple(self.attention_levels)
        DENOISERS.get(self.denoiser)
        make_softmax(self.softmax, self.softmax_args)  # the variant, its parameters' names and values
        ATTENTION_GATES.get(self.attn_gate)
        check_positive(self, "image_size", "channels", "base_channels", "n_res_blocks", "groups", "d_model",
                       "n_layers", "n_heads", "d_ff", "patch_size")
        check(isinstance(self.n_classes, int) and self.n_classes >= 0, "n_classes", self.n_classes, "an integer >= 0")
        check(0 <= self.cond_drop_prob < 1, "cond_drop_prob", self.cond_drop_prob, "in [0, 1)")
        check(isinstance(self.context_dim, int) and self.context_dim >= 0, "context_dim", self.context_dim,
              "an integer >= 0")
        check(not (self.context_dim and self.n_classes), "context_dim", self.context_dim,
              f"text conditioning replaces class labels: set n_classes=0 (got {self.n_classes})")
        check(not self.context_dim or self.denoiser in ("unet", "dit"), "context_dim", self.context_dim,
              f"text conditioning is implemented by the 'unet' and 'dit' denoisers, not {self.denoiser!r}")
        check(all(isinstance(m, int) and m > 0 for m in self.channel_mults), "channel_mults", self.channel_mults,
              "positive integers")
        check(self.image_size % 2 ** (len(self.channel_mults) - 1) == 0, "image_size", self.image_size,
              f"must halve {len(self.channel_mults) - 1} times (channel_mults={self.channel_mults})")
        check(all(self.base_channels * m % self.groups == 0 for m in self.channel_mults), "groups", self.groups,
              "must divide base_channels * every channel_mult")
        check(all(isinstance(i, int) and 0 <= i < len(self.channel_mults) for i in self.attention_levels),
              "attention_levels", self.attention_levels, f"level indices in 0..{len(self.channel_mults) - 1}")
        check(all(self.base_channels * m % self.attention_head_dim == 0 for m in self.channel_mults),
              "attention_head_dim", self.attention_head_dim, "must divide base_channels * every channel_mult")
        check(self.d_model % self.n_heads == 0, "d_model", self.d_model, f"must be divisible by n_heads={self.n_heads}")
        check(self.image_size % self.patch_size == 0, "image_size", self.image_size,
              f"must be a multiple of patch_size={self.patch_size}")
        SchedulerConfig(**self.scheduler_config())  # validates the schedule fields

    def scheduler_config(self) -> dict:
        """The constructor arguments of this model's DDPM / DDIM scheduler."""
        return dict(num_train_timesteps=self.num_train_timesteps, beta_schedule=self.beta_schedule,
                    beta_start=self.beta_start, beta_end=self.beta_end, prediction_type=self.prediction_type,
                    clip_sample=self.clip_sample)


PRESETS.register("ddpm-digits", Preset(DiffusionConfig))
PRESETS.register("ddpm-tiny", Preset(DiffusionConfig, base_channels=16, groups=4, num_train_timesteps=100))
PRESETS.register("dit-digits", Preset(DiffusionConfig, denoiser="dit"))
PRESETS.register("dit-tiny", Preset(DiffusionConfig, denoiser="dit", d_model=32, n_layers=2, d_ff=64,
                                    num_train_timesteps=100))
# text-conditioned (a text encoder's token states of width 32, e.g. clip-tiny's text tower has 64: override)
PRESETS.register("dit-text-tiny", Preset(DiffusionConfig, denoiser="dit", d_model=32, n_layers=2, d_ff=64,
                                         num_train_timesteps=100, n_classes=0, context_dim=32))
PRESETS.register("ddpm-text-tiny", Preset(DiffusionConfig, base_channels=16, groups=4, num_train_timesteps=100,
                                          n_classes=0, context_dim=32))
# diffusers' UNet2DModel layout (`genzoo.save(model, dir, format="diffusers")` writes a DDPMPipeline directory)
_UNET2D = dict(denoiser="unet2d", beta_schedule="linear", cond_drop_prob=0.0)
PRESETS.register("ddpm-unet2d", Preset(DiffusionConfig, **_UNET2D, n_classes=0, image_size=32, channels=3,
                                       base_channels=224, channel_mults=(1, 2, 3, 4), n_res_blocks=2, groups=32,
                                       attention_levels=(1, 2, 3)))  # UNet2DModel's defaults
PRESETS.register("ddpm-unet2d-digits", Preset(DiffusionConfig, **{**_UNET2D, "cond_drop_prob": 0.1,
                                                                   "beta_schedule": "squaredcos_cap_v2"},
                                              base_channels=32, channel_mults=(1, 2), groups=8, attention_levels=(1,)))
PRESETS.register("ddpm-unet2d-tiny", Preset(DiffusionConfig, **_UNET2D, n_classes=0, base_channels=16,
                                            channel_mults=(1, 2), groups=4, attention_levels=(1,),
                                            num_train_timesteps=100))
