"""Seq2SeqConfig: encoder-decoder models (Raffel et al., "T5", 2020). `t5` (ReLU MLP, tied embeddings) and
`t5-v1.1` (gated GELU, untied head) are presets."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import PRESETS, Preset, check, check_positive
from ...nn import ATTENTION_GATES, FFNS, make_softmax
from ...nn.ffn import ACTIVATIONS


@dataclass
class Seq2SeqConfig:
    vocab_size: int = 32128
    d_model: int = 512
    n_layers: int = 6  # encoder
    n_decoder_layers: int = 6
    n_heads: int = 8
    head_dim: int = 64  # T5's d_kv: need not be d_model / n_heads
    d_ff: int = 2048
    ffn: str = "mlp"  # FFNS: "mlp" (T5) or "gated" (T5 v1.1)
    activation: str = "relu"
    norm_eps: float = 1e-6
    relative_buckets: int = 32
    relative_max_distance: int = 128
    max_positions: int = 512  # a guard on input length (relative positions have no hard limit)
    tie_embeddings: bool = True  # the head is the shared embedding
    scale_decoder_outputs: bool | None = None  # multiply the decoder output by d_model^-0.5 (None: = tie_embeddings)
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0
    encoder_only: bool = False  # T5EncoderModel
    dropout: float = 0.0
    attn_backend: str = "sdpa"
    softmax: str = "standard"  # SOFTMAX: the attention softmax variant
    softmax_args: dict | None = None  # the softmax variant's parameters (nn.softmax.make_softmax), e.g. clipped's gamma
    attn_gate: str = "none"  # ATTENTION_GATES: a per-head sigmoid gate on the attention output (gated attention)
    init_std: float = 0.02
    checkpoint_format: str = "t5"
    genre: str = field(default="seq2seq", repr=False)

    @property
    def scales_output(self) -> bool:
        return self.tie_embeddings if self.scale_decoder_outputs is None else self.scale_decoder_outputs

    def __post_init__(self):
        check_positive(self, "vocab_size", "d_model", "n_layers", "n_decoder_layers", "n_heads", "head_dim", "d_ff",
                       "relative_buckets", "relative_max_distance", "max_positions")
        FFNS.get(self.ffn)
        ACTIVATIONS.get(self.activation)
        make_softmax(self.softmax, self.softmax_args)  # the variant, its parameters' names and values
        ATTENTION_GATES.get(self.attn_gate)
        check(self.attn_gate != "head" or self.d_model % self.n_heads == 0, "attn_gate", self.attn_gate,
              f"'head' splits d_model={self.d_model} into n_heads={self.n_heads} slices (use 'linear')")
        for f in ("pad_token_id", "eos_token_id", "decoder_start_token_id"):
            v = getattr(self, f)
            check(isinstance(v, int) and 0 <= v < self.vocab_size, f, v, f"a token id in 0..{self.vocab_size - 1}")


_T5 = dict(ffn="mlp", activation="relu", tie_embeddings=True)
_T5V11 = dict(ffn="gated", activation="gelu_tanh", tie_embeddings=False)
PRESETS.register("t5", Preset(Seq2SeqConfig, **_T5))  # t5-small shapes
PRESETS.register("t5-v1.1", Preset(Seq2SeqConfig, **_T5V11, d_ff=1024, n_layers=8, n_decoder_layers=8, n_heads=6,
                                   d_model=512))  # t5-v1_1-small shapes
_TINY = dict(vocab_size=512, d_model=64, n_layers=2, n_decoder_layers=2, n_heads=4, head_dim=16, d_ff=128,
             relative_buckets=8, relative_max_distance=20, max_positions=128)
PRESETS.register("t5-tiny", Preset(Seq2SeqConfig, **_T5, **_TINY))
PRESETS.register("t5-v1.1-tiny", Preset(Seq2SeqConfig, **_T5V11, **_TINY))
