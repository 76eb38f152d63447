"""EncoderConfig: one config for encoder-only models. BERT is a preset; ModernBERT and DeBERTa-v2 are to
follow as presets choosing other parts (see issue 4)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import PRESETS, Preset, check, check_positive
from ...nn import ATTENTION_GATES, FFNS, NORMS, POSITIONS, SOFTMAX, make_softmax
from ...nn.attention import BACKENDS
from ...nn.ffn import ACTIVATIONS

from .pooling import POOLINGS


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
    norm_bias: bool = True
    first_attn_norm: bool = True  # False: the first block's attention input is not normalised (ModernBERT)
    final_norm: bool = False  # a norm after the last block (pre-norm models)
    attn_bias: bool = True
    ffn_bias: bool = True
    head_bias: bool = True  # bias of the MLM head's dense layer
    ffn: str = "mlp"  # FFNS
    activation: str = "gelu"  # ACTIVATIONS
    softmax: str = "standard"  # SOFTMAX
    attn_gate: str = "none"  # ATTENTION_GATES: a per-head sigmoid gate on the attention output (gated attention)
    softmax_args: dict | None = None  # the softmax variant's parameters (nn.softmax.make_softmax), e.g. clipped's gamma
    position: str = "learned"  # POSITIONS
    rope_theta: float = 10000.0  # global layers
    local_rope_theta: float | None = None  # local layers (None: rope_theta)
    local_window: int | None = None  # local layers attend |i - j| <= local_window // 2 (None: all global)
    global_every: int = 1  # layer i is global when i % global_every == 0
    # DeBERTa (position="disentangled"): relative positions in every layer's scores
    position_buckets: int = 256  # log-bucketed relative distances beyond buckets // 2 (<= 0: none)
    max_relative_positions: int = -1  # -1: max_positions
    rel_norm: bool = True  # LayerNorm on the relative embeddings ("norm_rel_ebd")
    pos_att_type: str = "c2p|p2c"
    share_att_key: bool = True  # project positions with the content query/key projections
    position_biased_input: bool = False  # also add learned absolute positions to the embeddings
    pad_token_id: int = 0
    pooler: bool = True  # BERT's dense + tanh on the first token (BertModel checkpoints carry it)
    mlm_head: bool = False  # masked-LM head: dense + act + norm, decoder tied to the embeddings, bias
    pooling: str = "mean"  # `encode`'s pooling (pooling.POOLING): cls, mean, max, weighted-mean, last-token, ...
    # sentence-transformers settings (read from and written to its modules.json / sentence_bert_config.json files)
    normalize: bool = True  # `encode` L2-normalises (the Normalize module)
    max_seq_length: int | None = None  # `encode` truncates texts to this many tokens (None: max_positions)
    lowercase: bool = False  # `encode` lowercases texts first (do_lower_case)
    sentence_modules: bool = False  # `genzoo.save` writes the sentence-transformers modules beside the weights
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
        for name, reg in (("norm", NORMS), ("ffn", FFNS), ("activation", ACTIVATIONS), ("position", POSITIONS),
                          ("softmax", SOFTMAX), ("attn_gate", ATTENTION_GATES)):
            reg.get(getattr(self, name))
        make_softmax(self.softmax, self.softmax_args)  # its parameters: names and values
        check(isinstance(self.pad_token_id, int) and 0 <= self.pad_token_id < self.vocab_size, "pad_token_id",
              self.pad_token_id, f"must be a token id in 0..{self.vocab_size - 1}")
        check(self.norm_position in ("pre", "post"), "norm_position", self.norm_position, "'pre' or 'post'")
        terms = [t for t in self.pos_att_type.split("|") if t]
        check(all(t in ("c2p", "p2c") for t in terms), "pos_att_type", self.pos_att_type, "'c2p', 'p2c' or 'c2p|p2c'")
        check(self.pooling in POOLINGS, "pooling", self.pooling, f"one of {POOLINGS}")
        check(self.max_seq_length is None or (isinstance(self.max_seq_length, int) and
                                             0 < self.max_seq_length <= self.max_positions),
              "max_seq_length", self.max_seq_length, f"None or an integer in 1..max_positions={self.max_positions}")
        check(self.attn_backend in BACKENDS, "attn_backend", self.attn_backend, f"one of {BACKENDS}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def is_global(self, layer: int) -> bool:
        return self.local_window is None or layer % self.global_every == 0


PRESETS.register("bert", Preset(EncoderConfig))  # BERT-base shapes
PRESETS.register("bert-tiny", Preset(EncoderConfig, vocab_size=512, max_positions=128, d_model=64, n_layers=2,
                                     n_heads=4, d_ff=128))
# ModernBERT (Warner et al., 2024): pre-norm, bias-free, GeGLU, RoPE, local (128) / global (every 3rd) attention
_MODERNBERT = dict(type_vocab_size=0, norm_eps=1e-5, norm_position="pre", norm_bias=False, first_attn_norm=False,
                   final_norm=True, attn_bias=False, ffn_bias=False, head_bias=False, ffn="gated",
                   activation="gelu", position="rope", rope_theta=160000.0, local_rope_theta=10000.0,
                   local_window=128, global_every=3, pooler=False, checkpoint_format="modernbert")
# DeBERTa-v3-base shapes (He et al., 2021/2023): disentangled attention, log-bucketed relative positions
_DEBERTA = dict(position="disentangled", type_vocab_size=0, norm_eps=1e-7, pooler=False,
                checkpoint_format="deberta-v2")
PRESETS.register("deberta-v2", Preset(EncoderConfig, **_DEBERTA, vocab_size=128100, max_positions=512))
PRESETS.register("deberta-v2-tiny", Preset(EncoderConfig, **_DEBERTA, vocab_size=512, max_positions=128, d_model=64,
                                           n_layers=2, n_heads=4, d_ff=128, position_buckets=16,
                                           max_relative_positions=64))
PRESETS.register("modernbert", Preset(EncoderConfig, **_MODERNBERT, vocab_size=50368, max_positions=8192,
                                      d_model=768, n_layers=22, n_heads=12, d_ff=1152, pad_token_id=50283))
PRESETS.register("modernbert-tiny", Preset(EncoderConfig, **{**_MODERNBERT, "local_window": 16}, vocab_size=512,
                                           max_positions=128, d_model=64, n_layers=4, n_heads=4, d_ff=96))
