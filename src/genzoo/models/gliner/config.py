"""GLiNERConfig: a span-NER head on any encoder of the encoder genre (Zaratiana et al., "GLiNER: Generalist Model
for Named Entity Recognition using Bidirectional Transformer", 2023, arXiv 2311.08526).

The backbone is an `EncoderConfig` (BERT, DeBERTa-v2, ModernBERT presets); the fields beside it are the `gliner`
package's names, so a gliner_config.json reads field by field (`hf.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import PRESETS, Preset, check, check_positive, from_dict
from ..encoder.config import EncoderConfig
from .span import SPAN_REPS


def encoder_config(value) -> EncoderConfig:
    """An EncoderConfig from a config, a dict of its fields, or a dict naming an encoder preset
    (``{"preset": "bert", "d_model": 384, ...}``)."""
    if isinstance(value, EncoderConfig):
        return value
    check(isinstance(value, dict), "encoder", value, "an EncoderConfig or a dict of its fields")
    if "preset" in value:
        rest = {k: v for k, v in value.items() if k != "preset"}
        cfg = PRESETS.get(value["preset"]).make(**rest)
        check(isinstance(cfg, EncoderConfig), "encoder", value["preset"], "an encoder preset (bert, deberta-v2, ...)")
        return cfg
    return from_dict(EncoderConfig, value)


@dataclass
class GLiNERConfig:
    encoder: EncoderConfig | dict = field(default_factory=lambda: {"preset": "bert-tiny"})
    hidden_size: int = 512  # D of the span and type representations (a projection follows the encoder if != d_model)
    max_width: int = 12  # spans of 1..max_width words
    max_len: int = 384  # words per encoder pass; longer texts run as overlapping windows (`inference.py`)
    max_types: int = 25  # entity types per prompt; more run in groups of max_types
    dropout: float = 0.4  # inside the projection MLPs (training)
    num_rnn_layers: int = 1  # BiLSTM layers over the words (0: none)
    span_mode: str = "markerV0"  # SPAN_REPS
    embed_ent_token: bool = True  # a type is the encoder state at its <<ENT>> token (False: the token after it)
    class_token_index: int = -1  # id of ent_token in the tokenizer (-1: not set yet)
    ent_token: str = "<<ENT>>"
    sep_token: str = "<<SEP>>"
    model_name: str = ""  # the backbone the model was built from (a name or a path; never fetched)
    checkpoint_format: str = "gliner"
    genre: str = field(default="gliner", repr=False)

    def __post_init__(self):
        self.encoder = encoder_config(self.encoder)
        check_positive(self, "hidden_size", "max_width", "max_len", "max_types")
        check(isinstance(self.num_rnn_layers, int) and self.num_rnn_layers >= 0, "num_rnn_layers",
              self.num_rnn_layers, "an integer >= 0")
        check(self.num_rnn_layers == 0 or self.hidden_size % 2 == 0, "hidden_size", self.hidden_size,
              "must be even: the BiLSTM has hidden_size // 2 units each way")
        check(isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1, "dropout", self.dropout, "in [0, 1)")
        SPAN_REPS.get(self.span_mode)
        check(not self.encoder.mlm_head, "encoder.mlm_head", True, "the backbone is the base encoder (no MLM head)")
        check(self.class_token_index == -1 or 0 <= self.class_token_index < self.encoder.vocab_size,
              "class_token_index", self.class_token_index, f"-1 or a token id in 0..{self.encoder.vocab_size - 1}")
        check(bool(self.ent_token) and bool(self.sep_token) and self.ent_token != self.sep_token, "ent_token",
              (self.ent_token, self.sep_token), "two different non-empty tokens")


# random-weight shapes for tests and benchmarks; trained models come from `genzoo train gliner-nano` or a directory
PRESETS.register("gliner-tiny", Preset(GLiNERConfig, encoder={"preset": "bert-tiny"}, hidden_size=64, max_width=8,
                                       max_len=64, dropout=0.0))
# all-MiniLM-L6-v2 shapes (BERT, 6 x 384) with the three GLiNER tokens added to its 30,522 word pieces
PRESETS.register("gliner-minilm", Preset(GLiNERConfig, encoder={
    "preset": "bert", "vocab_size": 30525, "d_model": 384, "n_layers": 6, "n_heads": 12, "d_ff": 1536},
    hidden_size=384, model_name="all-minilm-l6-v2"))
# urchade/gliner_small-v2.1 shapes: DeBERTa-v3-small (6 x 768, 128k pieces)
PRESETS.register("gliner-small", Preset(GLiNERConfig, encoder={
    "preset": "deberta-v2", "vocab_size": 128004, "n_layers": 6, "position_biased_input": False},
    hidden_size=768, model_name="microsoft/deberta-v3-small"))
