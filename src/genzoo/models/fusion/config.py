"""Configs of the fusion models (multimodal fusion: several modalities into one model; not model fusion of language
models, which is `genzoo.fuse`, FuseLLM).

- `EarlyFusionConfig`: a decoder (every `DecoderConfig` field) over a joint vocabulary of text and VQ image codes,
  holding its VQ image tokenizer's config (`vq`).
- `LateFusionConfig`: a CLIP image tower (`vision`: CLIPConfig fields) and a decoder LM (`lm`: DecoderConfig fields),
  both frozen, joined by a trained bridge: a projector into the LM's embedding space (LLaVA) or gated
  cross-attention layers (Flamingo); optionally LoRA on the LM.
- `MetaTransformerConfig`: a modality tokenizer, a frozen shared encoder (`encoder`: EncoderConfig fields) and a task
  head.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import PRESETS, Preset, check, check_positive
from ..clip.config import CLIPConfig
from ..decoder.config import DecoderConfig
from ..encoder.config import EncoderConfig
from ..vq.config import VQConfig


@dataclass
class EarlyFusionConfig(DecoderConfig):
    text_vocab_size: int = 256  # text ids [0, text_vocab_size); image code c is id text_vocab_size + c
    boi_token_id: int = 0  # begin-of-image marker (a text id)
    eoi_token_id: int = 1  # end-of-image marker (a text id)
    vq: dict = field(default_factory=dict)  # VQConfig fields of the image tokenizer
    checkpoint_format: str = "genzoo"
    genre: str = field(default="early-fusion", repr=False)

    def __post_init__(self):
        self.vq_config = VQConfig(**self.vq)
        self.vq = dict(self.vq)
        check_positive(self, "text_vocab_size")
        for f in ("boi_token_id", "eoi_token_id"):
            v = getattr(self, f)
            check(isinstance(v, int) and 0 <= v < self.text_vocab_size, f, v,
                  f"a text id in 0..{self.text_vocab_size - 1}")
        check(self.boi_token_id != self.eoi_token_id, "eoi_token_id", self.eoi_token_id, "differs from boi_token_id")
        self.vocab_size = self.text_vocab_size + self.vq_config.codebook_size  # the joint vocabulary
        super().__post_init__()

    @property
    def image_tokens(self) -> int:
        return self.vq_config.n_tokens


PROJECTORS = ("linear", "mlp")
BRIDGES = ("prefix", "xattn")


@dataclass
class LateFusionConfig:
    vision: dict = field(default_factory=dict)  # CLIPConfig fields (only the vision tower is built)
    lm: dict = field(default_factory=dict)  # DecoderConfig fields
    bridge: str = "prefix"  # "prefix": projected image tokens before the text (LLaVA); "xattn": gated cross-attention
    projector: str = "mlp"  # "linear" (LLaVA) or "mlp" (two layers, GELU: LLaVA-1.5)
    xattn_heads: int = 4
    xattn_d_ff: int = 0  # the gated FFN's width (0: 4 x the LM's d_model)
    lora_r: int = 0  # > 0: LoRA adapters (peft) on the LM's lora_targets, trained with the bridge
    lora_alpha: float = 16.0
    lora_targets: str = "q_proj,v_proj"
    checkpoint_format: str = "genzoo"
    genre: str = field(default="late-fusion", repr=False)

    def __post_init__(self):
        self.vision_config = CLIPConfig(**self.vision)
        self.lm_config = DecoderConfig(**self.lm)
        self.vision, self.lm = dict(self.vision), dict(self.lm)
        check(self.bridge in BRIDGES, "bridge", self.bridge, f"one of {BRIDGES}")
        check(self.projector in PROJECTORS, "projector", self.projector, f"one of {PROJECTORS}")
        check_positive(self, "xattn_heads")
        check(self.lm_config.d_model % self.xattn_heads == 0, "xattn_heads", self.xattn_heads,
              f"must divide the LM's d_model={self.lm_config.d_model}")
        check(isinstance(self.xattn_d_ff, int) and self.xattn_d_ff >= 0, "xattn_d_ff", self.xattn_d_ff, ">= 0")
        check(isinstance(self.lora_r, int) and self.lora_r >= 0, "lora_r", self.lora_r, "an integer >= 0")


@dataclass
class MetaTransformerConfig:
    modality: str = "image"  # MODALITY_TOKENIZERS
    n_classes: int = 10
    input_shape: tuple = (1, 8, 8)  # one example's shape, as the modality reads it (see modalities.py)
    patch: int = 2  # image / spectrogram patch side, time-series patch length
    n_groups: int = 16  # point clouds: groups (farthest-point centres)
    group_size: int = 16  # point clouds: neighbours per group (kNN)
    tokenizer_hidden: int = 64  # hidden width of the tokenizers' small networks
    encoder: dict = field(default_factory=dict)  # EncoderConfig fields of the shared encoder
    freeze_encoder: bool = True  # Meta-Transformer: the shared encoder is frozen, tokenizers and head train
    checkpoint_format: str = "genzoo"
    genre: str = field(default="meta-transformer", repr=False)

    def __post_init__(self):
        from .modalities import MODALITY_TOKENIZERS

        MODALITY_TOKENIZERS.get(self.modality)  # ConfigError naming the modalities
        self.input_shape = tuple(self.input_shape)
        self.encoder_config = EncoderConfig(**self.encoder)
        self.encoder = dict(self.encoder)
        check_positive(self, "n_classes", "patch", "n_groups", "group_size", "tokenizer_hidden")
        check(all(isinstance(s, int) and s > 0 for s in self.input_shape), "input_shape", self.input_shape,
              "positive integers")


_DIGIT_LM = dict(norm="rmsnorm", norm_bias=False, ffn="gated", activation="silu", ffn_bias=False, attn_bias=False,
                 attn_out_bias=False, position="rope", tie_embeddings=True, checkpoint_format="genzoo")
PRESETS.register("early-fusion-digits", Preset(EarlyFusionConfig, **_DIGIT_LM, max_positions=64, d_model=128,
                                               n_layers=4, n_heads=4, d_ff=384, vq={}))
PRESETS.register("early-fusion-tiny", Preset(EarlyFusionConfig, **_DIGIT_LM, max_positions=48, d_model=32,
                                             n_layers=2, n_heads=2, d_ff=64, vq={"hidden": 16, "codebook_size": 16,
                                                                                 "code_dim": 8}))
# the digit world's text LM (late fusion's frozen language model) is a decoder preset
PRESETS.register("digit-lm", Preset(DecoderConfig, **_DIGIT_LM, vocab_size=320, max_positions=64, d_model=128,
                                    n_layers=4, n_heads=4, d_ff=384))
_CLIP_DIGITS = dict(image_size=8, channels=1, patch_size=2, vision_d_model=64, vision_layers=2, vision_heads=4,
                    vision_d_ff=128)
PRESETS.register("late-fusion-digits", Preset(LateFusionConfig, vision=_CLIP_DIGITS,
                                              lm=dict(_DIGIT_LM, vocab_size=320, max_positions=64, d_model=128,
                                                      n_layers=4, n_heads=4, d_ff=384)))
PRESETS.register("late-fusion-tiny", Preset(LateFusionConfig, vision=dict(_CLIP_DIGITS, vision_d_model=16,
                                                                         vision_heads=2, vision_d_ff=32,
                                                                         vision_layers=1),
                                            lm=dict(_DIGIT_LM, vocab_size=64, max_positions=48, d_model=32,
                                                    n_layers=2, n_heads=2, d_ff=64), xattn_heads=2))
# the shared encoder's shape is all-MiniLM-L6-v2's (its weights: parts.encoder of the meta-transformer task)
_MINILM = dict(vocab_size=30522, max_positions=512, d_model=384, n_layers=6, n_heads=12, d_ff=1536)
PRESETS.register("meta-transformer-minilm", Preset(MetaTransformerConfig, encoder=_MINILM))
PRESETS.register("meta-transformer-tiny", Preset(MetaTransformerConfig, encoder=dict(
    vocab_size=512, max_positions=64, d_model=32, n_layers=2, n_heads=2, d_ff=64), tokenizer_hidden=16))
