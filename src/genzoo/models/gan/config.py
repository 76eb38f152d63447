"""GANConfig: a class-conditional DCGAN generator and discriminator for small images, with the objective and the
stabilisers it is trained with (the `gan` task reads them, as `DiffusionConfig` holds its noise schedule).

Presets: `dcgan-digits` (8x8 greyscale, 10 classes, the DCGAN recipe: batch norm in G and in D after its first
layer, the non-saturating loss), `gan-digits` (DCGAN with an EMA of G, the best configuration of `genzoo experiment
gan-vs-diffusion`) and `gan-tiny` (for tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...config import PRESETS, Preset, check, check_positive


@dataclass
class GANConfig:
    image_size: int = 8
    channels: int = 1
    n_classes: int = 10  # class conditioning (G: embedding concatenated to z; D: projection); 0 = unconditional
    z_dim: int = 64  # latent size
    class_dim: int = 32  # G's class embedding, concatenated to z
    base_size: int = 2  # G starts at base_size x base_size and doubles up to image_size (D halves down to it)
    g_channels: int = 32  # G's widest map has g_channels * 2^(n_up - 1) channels, halving at each doubling
    d_channels: int = 32  # D's first conv has d_channels, doubling at each halving
    d_norm: str = "batch"  # D_NORMS, in every D layer but the first (DCGAN sec. 3): "batch", "layer", "none"
    spectral_norm: bool = False  # D's weights divided by their largest singular value (Miyato et al. 2018)
    # the objective and stabilisers (read by the `gan` task)
    loss: str = "non-saturating"  # GAN_LOSSES: "non-saturating", "hinge", "wgan-gp"
    gp_weight: float = 10.0  # wgan-gp: lambda of the gradient penalty
    r1_gamma: float = 0.0  # R1 penalty gamma/2 E ||grad_x D(x)||^2 on real images (0: off)
    ema_decay: float = 0.0  # EMA of G's weights, used for sampling (0: off)
    lr_d_ratio: float = 1.0  # TTUR: D's learning rate = the recipe's lr * lr_d_ratio (G's is the lr)
    d_steps: int = 1  # D updates per G update (WGAN-GP: 5)
    checkpoint_format: str = "genzoo"
    genre: str = field(default="gan", repr=False)

    def __post_init__(self):
        from .losses import GAN_LOSSES
        from .model import D_NORMS

        check_positive(self, "image_size", "channels", "z_dim", "class_dim", "base_size", "g_channels", "d_channels",
                       "d_steps")
        check(isinstance(self.n_classes, int) and self.n_classes >= 0, "n_classes", self.n_classes, "an integer >= 0")
        ratio = self.image_size / self.base_size
        check(ratio >= 2 and ratio == 2 ** round(math.log2(ratio)), "image_size", self.image_size,
              f"base_size={self.base_size} times a power of two >= 2")
        D_NORMS.get(self.d_norm)
        GAN_LOSSES.get(self.loss)
        for f in ("gp_weight", "r1_gamma"):
            check(getattr(self, f) >= 0, f, getattr(self, f), ">= 0")
        check(0 <= self.ema_decay < 1, "ema_decay", self.ema_decay, "in [0, 1) (0: no EMA)")
        check(self.lr_d_ratio > 0, "lr_d_ratio", self.lr_d_ratio, "> 0")

    @property
    def n_up(self) -> int:
        """Doublings from base_size to image_size."""
        return round(math.log2(self.image_size // self.base_size))


PRESETS.register("dcgan-digits", Preset(GANConfig))
PRESETS.register("gan-digits", Preset(GANConfig, ema_decay=0.99))
PRESETS.register("gan-tiny", Preset(GANConfig, z_dim=8, class_dim=4, g_channels=8, d_channels=8))
