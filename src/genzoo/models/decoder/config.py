"""DecoderConfig: one config for every decoder-only language model. GPT-2, Llama and Mistral are presets
that choose parts by name (norm, ffn, position, softmax); nothing branches on a model's name."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import PRESETS, Preset, check, check_positive
from ...nn import ATTENTION_GATES, FFNS, NORMS, POSITIONS, SOFTMAX, make_softmax
from ...nn.attention import BACKENDS
from ...nn.moe import LOSS_SCOPES
from ...nn.ffn import ACTIVATIONS, GATED, GATED_ACTIVATIONS


@dataclass
class DecoderConfig:
    vocab_size: int = 50257
    max_positions: int = 1024
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    n_kv_heads: int | None = None  # None: = n_heads (multi-head); 1: multi-query; else grouped-query
    head_dim: int | None = None  # None: d_model // n_heads
    d_ff: int = 3072
    norm: str = "layernorm"  # NORMS
    norm_eps: float = 1e-5
    norm_bias: bool = True
    ffn: str = "mlp"  # FFNS
    activation: str = "gelu_tanh"  # ACTIVATIONS
    ffn_bias: bool = True
    attn_bias: bool = True  # q/k/v projections
    attn_out_bias: bool = True  # output projection
    position: str = "learned"  # POSITIONS
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None
    sliding_window: int | None = None
    softmax: str = "standard"  # SOFTMAX
    attn_gate: str = "none"  # ATTENTION_GATES: a per-head sigmoid gate on the attention output (gated attention)
    softmax_args: dict | None = None  # the softmax variant's parameters (nn.softmax.make_softmax), e.g. clipped's gamma
    n_experts: int = 0  # > 0: every FFN is a sparse mixture of this many gated experts (nn.moe)
    experts_top_k: int = 2  # experts per token
    router_aux_loss_coef: float = 0.001  # load-balancing loss weight in `loss` (0: off)
    router_aux_loss_scope: str = "all-layers"  # nn.moe.LOSS_SCOPES: pooled over layers (transformers) or per layer
    router_z_loss_coef: float = 0.0  # router z-loss weight in `loss` (0: off)
    router_jitter: float = 0.0  # multiplicative input noise for the router while training
    tie_embeddings: bool = True
    dropout: float = 0.0
    attn_backend: str = "sdpa"
    init_std: float = 0.02
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    checkpoint_format: str = "genzoo"  # interop.FORMATS: how save() writes it
    genre: str = field(default="decoder", repr=False)

    def __post_init__(self):
        check_positive(self, "vocab_size", "max_positions", "d_model", "n_layers", "n_heads", "d_ff")
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        check_positive(self, "n_kv_heads")
        if self.head_dim is None:
            check(
                self.d_model % self.n_heads == 0,
                "d_model",
                self.d_model,
                f"must be divisible by n_heads={self.n_heads} (or set head_dim)",
            )
            self.head_dim = self.d_model // self.n_heads
        check_positive(self, "head_dim")
        check(
            self.n_heads % self.n_kv_heads == 0,
            "n_kv_heads",
            self.n_kv_heads,
            f"must divide n_heads={self.n_heads}",
        )
        for name, reg in (
            ("norm", NORMS),
            ("ffn", FFNS),
            ("activation", ACTIVATIONS),
            ("position", POSITIONS),
            ("softmax", SOFTMAX),
            ("attn_gate", ATTENTION_GATES),
        ):
            reg.get(getattr(self, name))  # raises ConfigError naming the known choices
        make_softmax(self.softmax, self.softmax_args)  # its parameters: names and values
        check(self.attn_backend in BACKENDS, "attn_backend", self.attn_backend, f"one of {BACKENDS}")
        check(
            self.sliding_window is None or (isinstance(self.sliding_window, int) and self.sliding_window > 0),
            "sliding_window",
            self.sliding_window,
            "None or a positive integer",
        )
        for ffn, act in GATED_ACTIVATIONS.items():
            check(self.ffn != ffn or self.activation == act, "activation", self.activation,
                  f"ffn={ffn!r} implies activation={act!r} (use ffn='gated' for another activation)")
        check(isinstance(self.n_experts, int) and self.n_experts >= 0, "n_experts", self.n_experts, ">= 0")
        if self.n_experts:
            check(isinstance(self.experts_top_k, int) and 0 < self.experts_top_k <= self.n_experts,
                  "experts_top_k", self.experts_top_k, f"in 1..n_experts={self.n_experts}")
            check(self.ffn in GATED, "ffn", self.ffn, "experts are gated FFNs")
            check(self.router_aux_loss_scope in LOSS_SCOPES, "router_aux_loss_scope", self.router_aux_loss_scope,
                  f"one of {LOSS_SCOPES}")
        check(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "must be in [0, 1)")
        pad = self.pad_token_id  # the id padded positions hold: an embedding row (bos / eos may name no row)
        check(pad is None or (isinstance(pad, int) and not isinstance(pad, bool) and 0 <= pad < self.vocab_size),
              "pad_token_id", pad, f"None or a token id in 0..{self.vocab_size - 1}")
        check(self.position != "rope" or self.head_dim % 2 == 0, "head_dim", self.head_dim, "must be even for rope")


def _preset(name: str, **fields) -> None:
    PRESETS.register(name, Preset(DecoderConfig, **fields)).make()  # built once: presets are valid


_GPT2 = dict(norm="layernorm", ffn="mlp", activation="gelu_tanh", position="learned", tie_embeddings=True,
             checkpoint_format="gpt2", bos_token_id=50256, eos_token_id=50256)
_LLAMA = dict(norm="rmsnorm", norm_eps=1e-5, norm_bias=False, ffn="gated", activation="silu", ffn_bias=False,
              attn_bias=False, attn_out_bias=False, position="rope", tie_embeddings=False, checkpoint_format="llama")
_MISTRAL = dict(_LLAMA, checkpoint_format="mistral", sliding_window=4096)
_MIXTRAL = dict(_LLAMA, checkpoint_format="mixtral", rope_theta=1e6, n_experts=8, experts_top_k=2,
                router_aux_loss_coef=0.02)

# Real sizes (GPT-2 small 124M, Llama-3.2-1B, Mistral-7B-v0.1 shapes) and tiny variants for tests.
_preset("gpt2", **_GPT2)
_preset("gpt2-tiny", **_GPT2, vocab_size=512, max_positions=128, d_model=64, n_layers=2, n_heads=4, d_ff=256)
_preset("llama", **dict(_LLAMA, rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 32.0,
        "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        tie_embeddings=True), vocab_size=128256, max_positions=131072, d_model=2048, n_layers=16, n_heads=32,
        n_kv_heads=8, d_ff=8192, bos_token_id=128000, eos_token_id=128001)
_preset("llama-tiny", **_LLAMA, vocab_size=512, max_positions=128, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2,
        d_ff=128, rope_theta=500000.0)
# The benchmark model: Llama-style, about 25M parameters.
_preset("llama-25m", **_LLAMA, vocab_size=8192, max_positions=1024, d_model=512, n_layers=6, n_heads=8,
        n_kv_heads=4, d_ff=1536)
_preset("mistral", **_MISTRAL, vocab_size=32000, max_positions=32768, d_model=4096, n_layers=32, n_heads=32,
        n_kv_heads=8, d_ff=14336, bos_token_id=1, eos_token_id=2)
_preset("mistral-tiny", **dict(_MISTRAL, sliding_window=16), vocab_size=512, max_positions=128, d_model=64,
        n_layers=2, n_heads=4, n_kv_heads=2, d_ff=128)
# Mixtral-8x7B shapes, and a tiny variant
_preset("mixtral", **_MIXTRAL, vocab_size=32000, max_positions=32768, d_model=4096, n_layers=32, n_heads=32,
        n_kv_heads=8, d_ff=14336, bos_token_id=1, eos_token_id=2)
_preset("mixtral-tiny", **_MIXTRAL, vocab_size=512, max_positions=128, d_model=64, n_layers=2, n_heads=4,
        n_kv_heads=2, d_ff=96)
