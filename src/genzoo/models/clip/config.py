"""CLIPConfig: a text transformer and a vision transformer (ViT) joined by two projections and a learned
temperature (Radford et al., "Learning Transferable Visual Models From Natural Language Supervision",
2021). Presets `clip` (ViT-B/32 shapes) and `clip-tiny`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...config import PRESETS, Preset, check, check_positive
from ...nn import ATTENTION_GATES, make_softmax
from ...nn.ffn import ACTIVATIONS


@dataclass
class CLIPConfig:
    # text tower
    vocab_size: int = 49408
    max_positions: int = 77
    text_d_model: int = 512
    text_layers: int = 12
    text_heads: int = 8
    text_d_ff: int = 2048
    eos_token_id: int = 2  # pooling: 2 is the legacy rule (highest token id); else the first eos token
    pad_token_id: int = 1
    # vision tower
    image_size: int = 224
    patch_size: int = 32
    channels: int = 3
    vision_d_model: int = 768
    vision_layers: int = 12
    vision_heads: int = 12
    vision_d_ff: int = 3072
    # shared
    activation: str = "quick_gelu"
    norm_eps: float = 1e-5
    projection_dim: int = 512
    logit_scale_init: float = math.log(1 / 0.07)  # temperature 0.07 (CLIP, sec. 2.5)
    logit_scale_max: float = 100.0  # exp(logit_scale) is clamped here
    dropout: float = 0.0
    attn_backend: str = "sdpa"
    softmax: str = "standard"  # SOFTMAX: the attention softmax variant of both towers
    softmax_args: dict | None = None  # the softmax variant's parameters (nn.softmax.make_softmax), e.g. clipped's gamma
    attn_gate: str = "none"  # ATTENTION_GATES: a per-head sigmoid gate on both towers' attention outputs
    init_std: float = 0.02
    checkpoint_format: str = "clip"
    genre: str = field(default="clip", repr=False)

    def __post_init__(self):
        check_positive(self, "vocab_size", "max_positions", "text_d_model", "text_layers", "text_heads", "text_d_ff",
                       "image_size", "patch_size", "channels", "vision_d_model", "vision_layers", "vision_heads",
                       "vision_d_ff", "projection_dim")
        for tower in ("text", "vision"):
            d, h = getattr(self, f"{tower}_d_model"), getattr(self, f"{tower}_heads")
            check(d % h == 0, f"{tower}_d_model", d, f"must be divisible by {tower}_heads={h}")
        check(self.image_size % self.patch_size == 0, "image_size", self.image_size,
              f"must be a multiple of patch_size={self.patch_size}")
        ACTIVATIONS.get(self.activation)
        make_softmax(self.softmax, self.softmax_args)  # the variant, its parameters' names and values
        ATTENTION_GATES.get(self.attn_gate)

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


PRESETS.register("clip", Preset(CLIPConfig))
PRESETS.register("clip-tiny", Preset(CLIPConfig, vocab_size=512, max_positions=32, text_d_model=64, text_layers=2,
                                     text_heads=4, text_d_ff=128, image_size=16, patch_size=4, vision_d_model=64,
                                     vision_layers=2, vision_heads=4, vision_d_ff=128, projection_dim=32))
