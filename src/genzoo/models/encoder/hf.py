"""The `transformers` BERT checkpoint formats: BertModel (keys unprefixed, with pooler) and
BertForMaskedLM (`bert.` prefix, `cls.predictions` head, decoder tied to the word embeddings). Older
checkpoints carry a `position_ids` buffer and an untied copy of the decoder; both are read."""

from __future__ import annotations

import re

from ...config import PRESETS
from ...errors import CheckpointError
from ...interop.formats import FORMATS, CheckpointFormat, KeyMap, merge_fused, require, split_fused
from .config import EncoderConfig
from .sentence import SentenceModules

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
    ("mlm.decoder.bias", "cls.predictions.bias"),
])
SKIP = re.compile(r"(embeddings\.position_ids|cls\.predictions\.decoder\.weight|cls\.predictions\.decoder\.bias)$")
HF_ACT = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu", "silu": "silu"}
GZ_ACT = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu"}


@FORMATS.register("bert")
class BertFormat(SentenceModules, CheckpointFormat):
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
        require(c, "softmax", c.softmax == "standard", f, "the standard softmax")
        require(c, "attn_gate", c.attn_gate == "none", f, "no attention gate")
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


# ---------------------------------------------------------------- ModernBERT
MODERNBERT_KEYS = KeyMap([
    ("embed.weight", "embeddings.tok_embeddings.weight"),
    ("embed_norm.{p}", "embeddings.norm.{p}"),
    ("blocks.{i}.attn_norm.{p}", "layers.{i}.attn_norm.{p}"),
    ("blocks.{i}.attn.q_proj.{p}", "layers.{i}.attn.Wq.{p}"),  # q/k/v: the thirds of the fused Wqkv
    ("blocks.{i}.attn.k_proj.{p}", "layers.{i}.attn.Wk.{p}"),
    ("blocks.{i}.attn.v_proj.{p}", "layers.{i}.attn.Wv.{p}"),
    ("blocks.{i}.attn.o_proj.{p}", "layers.{i}.attn.Wo.{p}"),
    ("blocks.{i}.ffn_norm.{p}", "layers.{i}.mlp_norm.{p}"),
    ("blocks.{i}.ffn.gate.{p}", "layers.{i}.mlp.Wgate.{p}"),  # gate/up: the halves of the fused Wi
    ("blocks.{i}.ffn.up.{p}", "layers.{i}.mlp.Wup.{p}"),
    ("blocks.{i}.ffn.down.{p}", "layers.{i}.mlp.Wo.{p}"),
    ("final_norm.{p}", "final_norm.{p}"),
    ("mlm.dense.{p}", "head.dense.{p}"),
    ("mlm.norm.{p}", "head.norm.{p}"),
    ("mlm.decoder.bias", "decoder.bias"),
])
QKV, QKV_PARTS = "attn.Wqkv", ["attn.Wq", "attn.Wk", "attn.Wv"]
WI, WI_PARTS = "mlp.Wi", ["mlp.Wgate", "mlp.Wup"]


def modernbert_rope(hf: dict) -> tuple[float, float]:
    """(global theta, local theta) from `rope_parameters` per layer type, or the older flat fields."""
    params = hf.get("rope_parameters")
    if isinstance(params, dict) and "full_attention" in params:
        return float(params["full_attention"]["rope_theta"]), float(params["sliding_attention"]["rope_theta"])
    return float(hf.get("global_rope_theta", 160000.0)), float(hf.get("local_rope_theta", 10000.0))


@FORMATS.register("modernbert")
class ModernBertFormat(SentenceModules, CheckpointFormat):
    model_type = "modernbert"

    def config_from_hf(self, hf: dict) -> EncoderConfig:
        archs = hf.get("architectures") or ["ModernBertModel"]
        mlm = any("MaskedLM" in a for a in archs)
        theta, local_theta = modernbert_rope(hf)
        for key in ("hidden_activation", "classifier_activation"):
            if hf.get(key, "gelu") not in HF_ACT:
                raise CheckpointError(f"modernbert config.json: {key} {hf[key]!r} is not supported")
        if hf.get("hidden_activation", "gelu") != hf.get("classifier_activation", "gelu"):
            raise CheckpointError("modernbert config.json: classifier_activation must equal hidden_activation")
        if not hf.get("decoder_bias", True):
            raise CheckpointError("modernbert config.json: decoder_bias=False is not supported")
        n = hf["num_hidden_layers"]
        every = hf.get("global_attn_every_n_layers", 3)
        types = hf.get("layer_types")
        if types is not None and types != ["full_attention" if i % every == 0 else "sliding_attention" for i in range(n)]:
            raise CheckpointError(f"modernbert config.json: layer_types {types} are not every-{every} global")
        return PRESETS.get("modernbert").make(
            vocab_size=hf["vocab_size"], max_positions=hf.get("max_position_embeddings", 8192),
            d_model=hf["hidden_size"], n_layers=n, n_heads=hf["num_attention_heads"], d_ff=hf["intermediate_size"],
            activation=HF_ACT[hf.get("hidden_activation", "gelu")], norm_eps=hf.get("norm_eps", 1e-5),
            norm_bias=hf.get("norm_bias", False), attn_bias=hf.get("attention_bias", False),
            ffn_bias=hf.get("mlp_bias", False), head_bias=hf.get("classifier_bias", False),
            rope_theta=theta, local_rope_theta=local_theta, local_window=hf.get("local_attention", 128),
            global_every=every, pad_token_id=hf.get("pad_token_id", 50283), mlm_head=mlm,
        )

    def config_to_hf(self, c: EncoderConfig) -> dict:
        f = "modernbert"
        require(c, "norm_position", c.norm_position == "pre" and not c.first_attn_norm and c.final_norm, f,
                "pre-norm with no first attention norm and a final norm")
        require(c, "position", c.position == "rope", f, "rotary positions")
        require(c, "softmax", c.softmax == "standard", f, "the standard softmax")
        require(c, "attn_gate", c.attn_gate == "none", f, "no attention gate")
        require(c, "ffn", c.ffn in ("gated", "geglu"), f, "a gated MLP")
        require(c, "type_vocab_size", c.type_vocab_size == 0, f, "no token types")
        require(c, "pooler", not c.pooler, f, "no pooler")
        require(c, "activation", c.activation in GZ_ACT, f, f"one of {sorted(GZ_ACT)}")
        require(c, "local_window", c.local_window is not None, f, "local attention")
        act = GZ_ACT[c.activation]
        every = c.global_every
        return {
            "architectures": ["ModernBertForMaskedLM" if c.mlm_head else "ModernBertModel"], "model_type": f,
            "vocab_size": c.vocab_size, "max_position_embeddings": c.max_positions, "hidden_size": c.d_model,
            "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads, "intermediate_size": c.d_ff,
            "hidden_activation": act, "classifier_activation": act, "norm_eps": c.norm_eps, "norm_bias": c.norm_bias,
            "attention_bias": c.attn_bias, "mlp_bias": c.ffn_bias, "classifier_bias": c.head_bias,
            "decoder_bias": True, "local_attention": c.local_window, "global_attn_every_n_layers": every,
            "layer_types": ["full_attention" if i % every == 0 else "sliding_attention" for i in range(c.n_layers)],
            "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": c.rope_theta},
                                "sliding_attention": {"rope_type": "default",
                                                      "rope_theta": c.local_rope_theta or c.rope_theta}},
            "global_rope_theta": c.rope_theta, "local_rope_theta": c.local_rope_theta or c.rope_theta,
            "pad_token_id": c.pad_token_id, "tie_word_embeddings": True, "initializer_range": c.init_std,
        }

    def state_from_hf(self, tensors, config):
        plain = {k.removeprefix("model."): v for k, v in tensors.items() if k != "decoder.weight"}
        plain = split_fused(split_fused(plain, QKV, QKV_PARTS), WI, WI_PARTS)
        return MODERNBERT_KEYS.rename_in(plain)

    def state_to_hf(self, state, config):
        out = merge_fused(merge_fused(MODERNBERT_KEYS.rename_out(state), QKV, QKV_PARTS), WI, WI_PARTS)
        if config.mlm_head:
            out = {(k if k.startswith(("head.", "decoder.")) else f"model.{k}"): v for k, v in out.items()}
        return out


# ---------------------------------------------------------------- DeBERTa-v2 / v3
DEBERTA_KEYS = KeyMap([
    ("embed.weight", "embeddings.word_embeddings.weight"),
    ("abs_positions.weight", "embeddings.position_embeddings.weight"),
    ("token_types.weight", "embeddings.token_type_embeddings.weight"),
    ("embed_norm.{p}", "embeddings.LayerNorm.{p}"),
    ("positions.weight", "encoder.rel_embeddings.weight"),
    ("positions.norm.{p}", "encoder.LayerNorm.{p}"),
    ("blocks.{i}.attn.q_proj.{p}", "encoder.layer.{i}.attention.self.query_proj.{p}"),
    ("blocks.{i}.attn.k_proj.{p}", "encoder.layer.{i}.attention.self.key_proj.{p}"),
    ("blocks.{i}.attn.v_proj.{p}", "encoder.layer.{i}.attention.self.value_proj.{p}"),
    ("blocks.{i}.attn.relative.pos_key_proj.{p}", "encoder.layer.{i}.attention.self.pos_key_proj.{p}"),
    ("blocks.{i}.attn.relative.pos_query_proj.{p}", "encoder.layer.{i}.attention.self.pos_query_proj.{p}"),
    ("blocks.{i}.attn.o_proj.{p}", "encoder.layer.{i}.attention.output.dense.{p}"),
    ("blocks.{i}.attn_norm.{p}", "encoder.layer.{i}.attention.output.LayerNorm.{p}"),
    ("blocks.{i}.ffn.up.{p}", "encoder.layer.{i}.intermediate.dense.{p}"),
    ("blocks.{i}.ffn.down.{p}", "encoder.layer.{i}.output.dense.{p}"),
    ("blocks.{i}.ffn_norm.{p}", "encoder.layer.{i}.output.LayerNorm.{p}"),
    ("mlm.dense.{p}", "cls.predictions.transform.dense.{p}"),
    ("mlm.norm.{p}", "cls.predictions.transform.LayerNorm.{p}"),
    ("mlm.decoder.bias", "cls.predictions.bias"),
])
# the newer (non-legacy) MLM head names, read as the same parts
DEBERTA_LM_HEAD = {"lm_predictions.lm_head.dense.": "cls.predictions.transform.dense.",
                   "lm_predictions.lm_head.LayerNorm.": "cls.predictions.transform.LayerNorm.",
                   "lm_predictions.lm_head.bias": "cls.predictions.bias"}


@FORMATS.register("deberta-v2")
class DebertaV2Format(SentenceModules, CheckpointFormat):
    model_type = "deberta-v2"

    def config_from_hf(self, hf: dict) -> EncoderConfig:
        where = "deberta-v2 config.json"
        archs = hf.get("architectures") or ["DebertaV2Model"]
        mlm = any("MaskedLM" in a for a in archs)
        if not hf.get("relative_attention", False):
            raise CheckpointError(f"{where}: relative_attention=False is not supported")
        if (hf.get("conv_kernel_size") or 0) > 0:
            raise CheckpointError(f"{where}: the convolution layer (conv_kernel_size > 0) is not supported")
        if hf.get("embedding_size", hf["hidden_size"]) != hf["hidden_size"]:
            raise CheckpointError(f"{where}: embedding_size != hidden_size is not supported")
        act = hf.get("hidden_act", "gelu")
        if act not in HF_ACT:
            raise CheckpointError(f"{where}: hidden_act {act!r} is not supported")
        att = hf.get("pos_att_type") or []
        att = att.split("|") if isinstance(att, str) else list(att)
        norm_rel = [x.strip() for x in (hf.get("norm_rel_ebd") or "none").lower().split("|")]
        return PRESETS.get("deberta-v2").make(
            vocab_size=hf["vocab_size"], max_positions=hf.get("max_position_embeddings", 512),
            type_vocab_size=hf.get("type_vocab_size", 0), d_model=hf["hidden_size"],
            n_layers=hf["num_hidden_layers"], n_heads=hf["num_attention_heads"], d_ff=hf["intermediate_size"],
            activation=HF_ACT[act], norm_eps=hf.get("layer_norm_eps", 1e-7), pad_token_id=hf.get("pad_token_id", 0),
            position_buckets=hf.get("position_buckets") or -1,
            max_relative_positions=hf.get("max_relative_positions") or -1, rel_norm="layer_norm" in norm_rel,
            pos_att_type="|".join(att), share_att_key=bool(hf.get("share_att_key", False)),
            position_biased_input=hf.get("position_biased_input", True), pooler=False, mlm_head=mlm,
        )

    def config_to_hf(self, c: EncoderConfig) -> dict:
        f = "deberta-v2"
        require(c, "position", c.position == "disentangled", f, "disentangled attention")
        require(c, "softmax", c.softmax == "standard", f, "the standard softmax")
        require(c, "attn_gate", c.attn_gate == "none", f, "no attention gate")
        require(c, "norm_position", c.norm_position == "post", f, "post-norm")
        require(c, "ffn", c.ffn == "mlp", f, "an MLP")
        require(c, "pooler", not c.pooler, f, "no pooler")
        require(c, "activation", c.activation in GZ_ACT, f, f"one of {sorted(GZ_ACT)}")
        return {
            "architectures": ["DebertaV2ForMaskedLM" if c.mlm_head else "DebertaV2Model"], "model_type": f,
            "vocab_size": c.vocab_size, "max_position_embeddings": c.max_positions,
            "type_vocab_size": c.type_vocab_size, "hidden_size": c.d_model, "num_hidden_layers": c.n_layers,
            "num_attention_heads": c.n_heads, "intermediate_size": c.d_ff, "hidden_act": GZ_ACT[c.activation],
            "layer_norm_eps": c.norm_eps, "pad_token_id": c.pad_token_id, "relative_attention": True,
            "position_buckets": c.position_buckets, "max_relative_positions": c.max_relative_positions,
            "norm_rel_ebd": "layer_norm" if c.rel_norm else "none", "pos_att_type": c.pos_att_type.split("|"),
            "share_att_key": c.share_att_key, "position_biased_input": c.position_biased_input,
            "hidden_dropout_prob": c.dropout, "attention_probs_dropout_prob": c.dropout, "legacy": True,
            "initializer_range": c.init_std, "tie_word_embeddings": True,
        }

    def state_from_hf(self, tensors, config):
        plain = {}
        for k, v in tensors.items():
            k = k.removeprefix("deberta.")
            for new, old in DEBERTA_LM_HEAD.items():
                k = k.replace(new, old) if k.startswith(new) else k
            if SKIP.search(k) or k.startswith("mask_predictions."):
                continue
            plain[k] = v
        return DEBERTA_KEYS.rename_in(plain)

    def state_to_hf(self, state, config):
        out = DEBERTA_KEYS.rename_out(state)
        if config.mlm_head:
            out = {(k if k.startswith("cls.") else f"deberta.{k}"): v for k, v in out.items()}
        return out
