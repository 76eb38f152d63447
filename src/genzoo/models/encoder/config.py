"""EncoderConfig: one config for encoder-only models. BERT is a preset; ModernBERT and DeBERTa-v2 are to
follow as presets choosing other parts (see issue 4)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import PRESETS, Preset, check, check_positive
from ...nn import FFNS, NORMS, POSITIONS
from ...nn.attention import BACKENDS
from ...nn.ffn import ACTIVATIONS

POOLINGS = ("mean", "cls")


@dataclass
class EncoderConfig:
    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2  # segment (token type) embeddings; 0: none
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int = 3072
    norm: str = "layernorm"  # NORMS
    norm_eps: float = 1e-12
    norm_position: str = "post"  # BERT: post-norm blocks, LayerNorm after the embeddings
    ffn: str = "mlp"  # FFNS
    activation: str = "gelu"  # ACTIVATIONS
    position: str = "learned"  # POSITIONS
    pad_token_id: int = 0
    pooler: bool = True  # BERT's dense + tanh on the first token (BertModel checkpoints carry it)
    mlm_head: bool = False  # masked-LM head: dense + act + norm, decoder tied to the embeddings, bias
    pooling: str = "mean"  # sentence embeddings from `encode`: "mean" over real tokens, or "cls"
    unpad: bool = True  # run ragged batches as their real tokens only (nn.packing)
    dropout: float = 0.0
    attn_backend: str = "sdpa"
    init_std: float = 0.02
    checkpoint_format: str = "bert"
    genre: str = field(default="encoder", repr=False)

    def __post_init__(self):
        check_positive(self, "vocab_size", "max_positions", "d_model", "n_layers", "n_heads", "d_ff")
        check(self.d_model % self.n_heads == 0, "d_model", self.d_model, f"must be divisible by n_heads={self.n_heads}")
        check(isinstance(self.type_vocab_size, int) and self.type_vocab_size >= 0, "type_vocab_size",
              self.type_vocab_size, ">= 0")
        for name, reg in (("norm", NORMS), ("ffn", FFNS), ("activation", ACTIVATIONS), ("position", POSITIONS)):
            reg.get(getattr(self, name))
        check(self.norm_position in ("pre", "post"), "norm_position", self.norm_position, "'pre' or 'post'")
        check(self.pooling in POOLINGS, "pooling", self.pooling, f"one of {POOLINGS}")
        check(self.attn_backend in BACKENDS, "attn_backend", self.attn_backend, f"one of {BACKENDS}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


PRESETS.register("bert", Preset(EncoderConfig))  # BERT-base shapes
PRESETS.register("bert-tiny", Preset(EncoderConfig, vocab_size=512, max_positions=128, d_model=64, n_layers=2,
                                     n_heads=4, d_ff=128))
