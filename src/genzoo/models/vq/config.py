"""VQConfig: a small convolutional VQ-VAE image tokenizer (van den Oord et al., 2017, arXiv 1711.00937). An image
of image_size^2 pixels becomes a grid of (image_size / 2^downsample)^2 codes from a codebook of codebook_size
vectors; presets `vq-digits` (8x8 greyscale digits -> 4x4 codes of 64), `vq-shapes` (16x16 RGB views of Point-E's
procedural shapes -> 4x4 codes of 256) and `vq-tiny`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import PRESETS, Preset, check, check_positive


@dataclass
class VQConfig:
    image_size: int = 8
    channels: int = 1
    hidden: int = 32  # convolution channels of the encoder and decoder
    downsample: int = 1  # stride-2 convolutions: the code grid is image_size / 2^downsample on a side
    codebook_size: int = 64
    code_dim: int = 32
    beta: float = 0.25  # commitment weight (eq. 3)
    decay: float = 0.99  # EMA codebook updates (appendix A.1); 0: the codebook learns by its gradient (eq. 3)
    eps: float = 1e-5  # Laplace smoothing of the EMA cluster sizes
    restart_threshold: float = 1.0  # a code whose EMA usage falls below this is restarted on an encoder output
    checkpoint_format: str = "genzoo"
    genre: str = field(default="vq-image", repr=False)

    def __post_init__(self):
        check_positive(self, "image_size", "channels", "hidden", "codebook_size", "code_dim")
        check(isinstance(self.downsample, int) and self.downsample >= 0, "downsample", self.downsample,
              "an integer >= 0")
        check(self.image_size % 2 ** self.downsample == 0, "image_size", self.image_size,
              f"must halve downsample={self.downsample} times")
        check(0.0 <= self.decay < 1.0, "decay", self.decay, "in [0, 1) (0: codebook by gradient)")
        check(self.beta >= 0, "beta", self.beta, ">= 0")
        check(self.restart_threshold >= 0, "restart_threshold", self.restart_threshold, ">= 0 (0: no restarts)")

    @property
    def grid(self) -> int:
        """Codes per side of an image."""
        return self.image_size // 2 ** self.downsample

    @property
    def n_tokens(self) -> int:
        """Codes per image."""
        return self.grid**2


PRESETS.register("vq-digits", Preset(VQConfig))
PRESETS.register("vq-shapes", Preset(VQConfig, image_size=16, channels=3, hidden=64, downsample=2, codebook_size=256))
PRESETS.register("vq-tiny", Preset(VQConfig, hidden=16, codebook_size=16, code_dim=8))
