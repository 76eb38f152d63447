"""Configs of the tabular models. `schema` is the fitted `TableSchema` as plain data (fixed by the training table,
as vocab_size is fixed by a tokenizer), so a saved model carries its column types, categories and quantiles.

Presets: `ft-transformer` (Gorishniy et al. 2021, the "default FT-Transformer" of their Table 14 at a smaller
width), `ft-tiny`, `tab-ddpm` (Kotelnikov et al. 2023) and `tab-ddpm-tiny`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import PRESETS, Preset, check, check_positive


@dataclass
class FTTransformerConfig:
    schema: dict = field(default_factory=dict)  # TableSchema.to_dict(), fitted on the training rows
    d_model: int = 64
    n_layers: int = 3
    n_heads: int = 8
    d_ff: int = 0  # the ReGLU hidden size; 0: 4/3 d_model (their default)
    attention_dropout: float = 0.2
    ffn_dropout: float = 0.1
    residual_dropout: float = 0.0
    checkpoint_format: str = "genzoo"
    genre: str = field(default="ft-transformer", repr=False)

    def __post_init__(self):
        check_positive(self, "d_model", "n_layers", "n_heads")
        check(isinstance(self.d_ff, int) and self.d_ff >= 0, "d_ff", self.d_ff, "an integer >= 0 (0: 4/3 d_model)")
        check(self.d_model % self.n_heads == 0, "d_model", self.d_model, f"must be divisible by n_heads={self.n_heads}")
        for f in ("attention_dropout", "ffn_dropout", "residual_dropout"):
            check(0 <= getattr(self, f) < 1, f, getattr(self, f), "in [0, 1)")

    @property
    def hidden(self) -> int:
        return self.d_ff or round(4 * self.d_model / 3)


@dataclass
class TabDDPMConfig:
    schema: dict = field(default_factory=dict)  # TableSchema.to_dict(), fitted on the training rows
    class_counts: list = field(default_factory=list)  # training rows per class (classification): the class prior
    d_hidden: int = 256  # the MLP denoiser's width
    n_layers: int = 3
    dropout: float = 0.0
    num_train_timesteps: int = 100
    beta_schedule: str = "cosine"
    checkpoint_format: str = "genzoo"
    genre: str = field(default="tab-ddpm", repr=False)

    def __post_init__(self):
        check_positive(self, "d_hidden", "n_layers")
        check(0 <= self.dropout < 1, "dropout", self.dropout, "in [0, 1)")
        from ..diffusion.schedulers import SchedulerConfig

        SchedulerConfig(**self.scheduler_config())

    def scheduler_config(self) -> dict:
        """The Gaussian part's DDPM scheduler: the same schedule drives the multinomial part. The predicted x0 is
        clipped to the normal scores' support (|z| <= about 5.2, `schema.normal_score_bound`), not to the pixels'
        [-1, 1]: without it, the amplified early-step estimates pushed a quarter to a third of the sampled values
        of breast_cancer's columns onto the column's minimum or maximum (mean Wasserstein/sd 2.08 vs 0.07 clipped)."""
        from .schema import normal_score_bound

        return dict(num_train_timesteps=self.num_train_timesteps, beta_schedule=self.beta_schedule,
                    clip_sample=True, clip_sample_range=normal_score_bound())


PRESETS.register("ft-transformer", Preset(FTTransformerConfig))
PRESETS.register("ft-tiny", Preset(FTTransformerConfig, d_model=16, n_layers=1, n_heads=2))
PRESETS.register("tab-ddpm", Preset(TabDDPMConfig))
PRESETS.register("tab-ddpm-tiny", Preset(TabDDPMConfig, d_hidden=32, n_layers=2, num_train_timesteps=20))
