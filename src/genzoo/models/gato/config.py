"""GatoConfig: the multi-domain decoder (Reed et al., 2022, arXiv 2205.06175). The transformer is the decoder
genre's (its fields are a `DecoderConfig`'s, checked by it); the rest is Gato's own: the joint vocabulary
(text, value bins, separator), the image-patch ResNet embedding and the patch / local observation positions."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import PRESETS, Preset, check, check_positive
from ..decoder.config import DecoderConfig
from .sequence import Layout
from .tokens import BINS, POSITION_BINS, Vocab
from .targets import make_continuous_target
from .values import CONTINUOUS_EMBEDDINGS


# "normal": like every other table; "sinusoidal": sin/cos of each bin's centre at geometric frequencies, so that
# neighbouring bins start alike (the paper leaves the initialisation open; see embedding.sinusoidal_table)
VALUE_INITS = ("sinusoidal", "normal")
# how the masked next-token losses of a batch are averaged (model.masked_loss): "token", the paper's eq. 2, every
# target token alike; "window", each window's mean then the mean over windows
LOSS_REDUCTIONS = ("token", "window")


@dataclass
class GatoConfig:
    text_vocab_size: int = 32000  # the paper's SentencePiece vocabulary; a run sets its BPE's size
    value_bins: int = BINS  # discrete values, then as many continuous-value bins, after the text ids
    # images: C x image patches of P x P pixels, each embedded by one ResNet block of `patch_channels`
    channels: int = 1
    patch_size: int = 4
    patch_channels: int = 32
    patch_groups: int = 8  # GroupNorm groups in the patch ResNet block
    position_bins: int = POSITION_BINS  # quantised patch row / column intervals (appendix C.3)
    max_local_positions: int = 64  # tokens per observation (local observation positions)
    value_init: str = "sinusoidal"  # VALUE_INITS: how the continuous-value rows and the patch positions start
    continuous_embedding: str = "lookup"  # values.CONTINUOUS_EMBEDDINGS: "lookup" (the paper) or "lookup+fourier"
    continuous_target: str = "onehot"  # targets.CONTINUOUS_TARGETS: "onehot" (the paper) or "gauss" (HL-Gauss)
    continuous_target_args: dict | None = None  # its parameters ("gauss": {"sigma": bins})
    loss_reduction: str = "token"  # LOSS_REDUCTIONS: "token" (the paper) or "window" (a task's share of the
    # gradient is then its share of the windows, however few of its tokens are targets)
    # the transformer (decoder genre)
    max_positions: int = 1024  # the context: the paper's 1024 tokens
    d_model: int = 2048
    n_layers: int = 24
    n_heads: int = 16
    n_kv_heads: int | None = None
    d_ff: int = 8192
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    ffn: str = "mlp"
    activation: str = "gelu"
    position: str = "learned"
    rope_theta: float = 10000.0
    softmax: str = "standard"
    softmax_args: dict | None = None  # the softmax variant's parameters (nn.softmax.make_softmax)
    attn_gate: str = "none"  # ATTENTION_GATES: a per-head sigmoid gate on the attention output
    dropout: float = 0.0
    attn_backend: str = "sdpa"
    init_std: float = 0.02
    tie_embeddings: bool = True
    eos_token_id: int | None = None  # the text tokenizer's end-of-text id
    checkpoint_format: str = "genzoo"
    genre: str = field(default="gato", repr=False)

    def __post_init__(self):
        check_positive(self, "text_vocab_size", "value_bins", "channels", "patch_size", "patch_channels",
                       "patch_groups", "position_bins", "max_local_positions")
        check(self.patch_channels % self.patch_groups == 0, "patch_groups", self.patch_groups,
              f"must divide patch_channels={self.patch_channels}")
        check(self.eos_token_id is None or 0 <= self.eos_token_id < self.text_vocab_size, "eos_token_id",
              self.eos_token_id, f"None or a text id in [0, {self.text_vocab_size})")
        CONTINUOUS_EMBEDDINGS.get(self.continuous_embedding)  # an unknown name: ConfigError listing the known
        make_continuous_target(self.continuous_target, self.vocab, self.continuous_target_args)  # checks its args
        check(self.loss_reduction in LOSS_REDUCTIONS, "loss_reduction", self.loss_reduction,
              f"one of {LOSS_REDUCTIONS}")
        check(self.value_init in VALUE_INITS, "value_init", self.value_init, f"one of {VALUE_INITS}")
        check(self.checkpoint_format == "genzoo", "checkpoint_format", self.checkpoint_format,
              "'genzoo' (Gato has no external checkpoint format)")
        self.decoder()  # the transformer's fields, checked by the decoder genre

    @property
    def vocab(self) -> Vocab:
        return Vocab(self.text_vocab_size, self.value_bins)

    @property
    def vocab_size(self) -> int:
        return self.vocab.size

    @property
    def layout(self) -> Layout:
        return Layout(self.vocab, self.patch_size, self.channels, self.position_bins)

    @property
    def patch_dim(self) -> int:
        return self.layout.patch_dim

    def decoder(self) -> DecoderConfig:
        """The decoder genre's config for the transformer: blocks, positions and norms are built from it."""
        return DecoderConfig(
            vocab_size=self.vocab_size, max_positions=self.max_positions, d_model=self.d_model,
            n_layers=self.n_layers, n_heads=self.n_heads, n_kv_heads=self.n_kv_heads, d_ff=self.d_ff, norm=self.norm,
            norm_eps=self.norm_eps, ffn=self.ffn, activation=self.activation, position=self.position,
            rope_theta=self.rope_theta, softmax=self.softmax, softmax_args=self.softmax_args,
            attn_gate=self.attn_gate, dropout=self.dropout, attn_backend=self.attn_backend,
            init_std=self.init_std, tie_embeddings=self.tie_embeddings,
        )


def _preset(name: str, **fields) -> None:
    PRESETS.register(name, Preset(GatoConfig, **fields)).make()  # built once: presets are valid


# The paper's 1.18B model (Table 1: 24 layers, 2048 wide, 16 heads, 8192 feed-forward), and small variants.
_preset("gato")
# gato-nano: 8 x 8 images cut into 2 x 2 patches of 4 x 4; 16 position bins make a patch's interval 8 bins wide,
# about the paper's 128 / 12 for 192-pixel images of 16-pixel patches
_preset("gato-nano", text_vocab_size=1024, max_positions=128, d_model=128, n_layers=4, n_heads=4, d_ff=512,
        position="rope", patch_channels=16, patch_groups=4, position_bins=16)
_preset("gato-tiny", text_vocab_size=300, max_positions=64, d_model=32, n_layers=2, n_heads=2, d_ff=64,
        patch_channels=8, patch_groups=2, position_bins=16, max_local_positions=16)
