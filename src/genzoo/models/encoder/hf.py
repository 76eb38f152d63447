"""The `transformers` BERT checkpoint formats: BertModel (keys unprefixed, with pooler) and
BertForMaskedLM (`bert.` prefix, `cls.predictions` head, decoder tied to the word embeddings). Older
checkpoints carry a `position_ids` buffer and an untied copy of the decoder; both are read."""

from __future__ import annotations

import re

from ...config import PRESETS
from ...errors import CheckpointError
from ...interop.formats import FORMATS, CheckpointFormat, KeyMap, require
from .config import EncoderConfig

BERT_KEYS = KeyMap([
    ("embed.weight", "embeddings.word_embeddings.weight"),
    ("positions.weight", "embeddings.position_embeddings.weight"),
    ("token_types.weight", "embeddings.token_type_embeddings.weight"),
    ("embed_norm.{p}", "embeddings.LayerNorm.{p}"),
    ("blocks.{i}.attn.q_proj.{p}", "encoder.layer.{i}.attention.self.query.{p}"),
    ("blocks.{i}.attn.k_proj.{p}", "encoder.layer.{i}.attention.self.key.{p}"),
    ("blocks.{i}.attn.v_proj.{p}", "encoder.layer.{i}.attention.self.value.{p}"),
    ("blocks.{i}.attn.o_proj.{p}", "encoder.layer.{i}.attention.output.dense.{p}"),
    ("blocks.{i}.attn_norm.{p}", "encoder.layer.{i}.attention.output.LayerNorm.{p}"),
    ("blocks.{i}.ffn.up.{p}", "encoder.layer.{i}.intermediate.dense.{p}"),
    ("blocks.{i}.ffn.down.{p}", "encoder.layer.{i}.output.dense.{p}"),
    ("blocks.{i}.ffn_norm.{p}", "encoder.layer.{i}.output.LayerNorm.{p}"),
    ("pooler.{p}", "pooler.dense.{p}"),
    ("mlm.dense.{p}", "cls.predictions.transform.dense.{p}"),
    ("mlm.norm.{p}", "cls.predictions.transform.LayerNorm.{p}"),
    ("mlm.bias", "cls.predictions.bias"),
])
SKIP = re.compile(r"(embeddings\.position_ids|cls\.predictions\.decoder\.weight|cls\.predictions\.decoder\.bias)$")
HF_ACT = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu", "silu": "silu"}
GZ_ACT = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu"}


@FORMATS.register("bert")
class BertFormat(CheckpointFormat):
    model_type = "bert"

    def config_from_hf(self, hf: dict) -> EncoderConfig:
        archs = hf.get("architectures") or ["BertModel"]
        mlm = any("MaskedLM" in a or "PreTraining" in a for a in archs)
        act = hf.get("hidden_act", "gelu")
        if act not in HF_ACT:
            raise CheckpointError(f"bert config.json: hidden_act {act!r} is not supported; supported: {sorted(HF_ACT)}")
        if hf.get("position_embedding_type", "absolute") != "absolute":
            raise CheckpointError(f"bert config.json: position_embedding_type "
                                  f"{hf['position_embedding_type']!r} is not supported")
        return PRESETS.get("bert").make(
            vocab_size=hf["vocab_size"], max_positions=hf.get("max_position_embeddings", 512),
            type_vocab_size=hf.get("type_vocab_size", 2), d_model=hf["hidden_size"],
            n_layers=hf["num_hidden_layers"], n_heads=hf["num_attention_heads"], d_ff=hf["intermediate_size"],
            activation=HF_ACT[act], norm_eps=hf.get("layer_norm_eps", 1e-12), pad_token_id=hf.get("pad_token_id", 0),
            pooler=not mlm, mlm_head=mlm,
        )

    def config_to_hf(self, c: EncoderConfig) -> dict:
        f = "bert"
        require(c, "norm_position", c.norm_position == "post", f, "post-norm")
        require(c, "position", c.position == "learned", f, "learned absolute positions")
        require(c, "ffn", c.ffn == "mlp", f, "an MLP")
        require(c, "activation", c.activation in GZ_ACT, f, f"one of {sorted(GZ_ACT)}")
        require(c, "norm", c.norm == "layernorm", f, "LayerNorm")
        require(c, "pooler", not (c.pooler and c.mlm_head), f, "a pooler (BertModel) or an MLM head (BertForMaskedLM)")
        return {
            "architectures": ["BertForMaskedLM" if c.mlm_head else "BertModel"], "model_type": "bert",
            "vocab_size": c.vocab_size, "max_position_embeddings": c.max_positions,
            "type_vocab_size": c.type_vocab_size, "hidden_size": c.d_model, "num_hidden_layers": c.n_layers,
            "num_attention_heads": c.n_heads, "intermediate_size": c.d_ff, "hidden_act": GZ_ACT[c.activation],
            "layer_norm_eps": c.norm_eps, "pad_token_id": c.pad_token_id, "position_embedding_type": "absolute",
            "hidden_dropout_prob": c.dropout, "attention_probs_dropout_prob": c.dropout,
            "initializer_range": c.init_std, "tie_word_embeddings": True,
        }

    def state_from_hf(self, tensors, config):
        plain = {k.removeprefix("bert."): v for k, v in tensors.items() if not SKIP.search(k)}
        return BERT_KEYS.rename_in(plain)

    def state_to_hf(self, state, config):
        out = BERT_KEYS.rename_out(state)
        if config.mlm_head:  # BertForMaskedLM nests the encoder under `bert.`
            out = {(k if k.startswith("cls.") else f"bert.{k}"): v for k, v in out.items()}
        return out
