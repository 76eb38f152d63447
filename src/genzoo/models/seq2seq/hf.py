"""The `transformers` T5 formats: T5ForConditionalGeneration and T5EncoderModel (feed_forward_proj "relu" for
the original T5, "gated-gelu" for v1.1). The embedding aliases `encoder/decoder.embed_tokens` are skipped."""

from __future__ import annotations

import re

from ...config import PRESETS
from ...errors import CheckpointError
from ...interop.formats import FORMATS, CheckpointFormat, KeyMap, require
from .config import Seq2SeqConfig


def _attn(gz: str, hf: str) -> list[tuple[str, str]]:
    return [(f"{gz}.{a}_proj.weight", f"{hf}.{a}.weight") for a in "qkvo"]


def _ffn(gz: str, hf: str, gated: bool) -> list[tuple[str, str]]:
    """T5's MLP is wi/wo; v1.1's gated MLP is wi_0 (gate) / wi_1 (up) / wo."""
    inputs = [(f"{gz}.gate.weight", f"{hf}.wi_0.weight"), (f"{gz}.up.weight", f"{hf}.wi_1.weight")] if gated \
        else [(f"{gz}.up.weight", f"{hf}.wi.weight")]
    return [*inputs, (f"{gz}.down.weight", f"{hf}.wo.weight")]


def key_map(gated: bool) -> KeyMap:
    enc, dec = "encoder.block.{i}.layer", "decoder.block.{i}.layer"

    def ffn_rules(gz, hf):
        return _ffn(gz, hf, gated)

    return KeyMap([
        ("shared.weight", "shared.weight"),
        ("encoder.positions.weight", "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"),
        *_attn("encoder.blocks.{i}.attn", f"{enc}.0.SelfAttention"),
        ("encoder.blocks.{i}.attn_norm.weight", f"{enc}.0.layer_norm.weight"),
        *ffn_rules("encoder.blocks.{i}.ffn", f"{enc}.1.DenseReluDense"),
        ("encoder.blocks.{i}.ffn_norm.weight", f"{enc}.1.layer_norm.weight"),
        ("encoder.final_norm.weight", "encoder.final_layer_norm.weight"),
        ("decoder.positions.weight", "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"),
        *_attn("decoder.blocks.{i}.attn", f"{dec}.0.SelfAttention"),
        ("decoder.blocks.{i}.attn_norm.weight", f"{dec}.0.layer_norm.weight"),
        *_attn("decoder.blocks.{i}.cross_attn", f"{dec}.1.EncDecAttention"),
        ("decoder.blocks.{i}.cross_norm.weight", f"{dec}.1.layer_norm.weight"),
        *ffn_rules("decoder.blocks.{i}.ffn", f"{dec}.2.DenseReluDense"),
        ("decoder.blocks.{i}.ffn_norm.weight", f"{dec}.2.layer_norm.weight"),
        ("decoder.final_norm.weight", "decoder.final_layer_norm.weight"),
        ("lm_head.weight", "lm_head.weight"),
    ])


ALIASES = re.compile(r"(encoder|decoder)\.embed_tokens\.weight$")
HF_ACT = {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu_tanh", "silu": "silu"}
GZ_ACT = {v: k for k, v in HF_ACT.items()}


@FORMATS.register("t5")
class T5Format(CheckpointFormat):
    model_type = "t5"

    def config_from_hf(self, hf: dict) -> Seq2SeqConfig:
        proj = hf.get("feed_forward_proj", "relu")
        gated = proj.startswith("gated-")
        act = proj.split("-")[-1]
        act = "gelu_new" if proj == "gated-gelu" else act  # transformers' reading of "gated-gelu"
        if act not in HF_ACT:
            raise CheckpointError(f"t5 config.json: feed_forward_proj {proj!r} is not supported")
        archs = hf.get("architectures") or ["T5ForConditionalGeneration"]
        return PRESETS.get("t5").make(
            vocab_size=hf["vocab_size"], d_model=hf["d_model"], n_layers=hf["num_layers"],
            n_decoder_layers=hf.get("num_decoder_layers") or hf["num_layers"], n_heads=hf["num_heads"],
            head_dim=hf["d_kv"], d_ff=hf["d_ff"], ffn="gated" if gated else "mlp", activation=HF_ACT[act],
            norm_eps=hf.get("layer_norm_epsilon", 1e-6), relative_buckets=hf.get("relative_attention_num_buckets", 32),
            relative_max_distance=hf.get("relative_attention_max_distance", 128),
            # transformers >= 5 ties the head always and keeps the scaling as its own flag; older configs
            # (v1.1: tie_word_embeddings false, a separate lm_head) tie and scale together
            tie_embeddings=hf.get("tie_word_embeddings", True),
            scale_decoder_outputs=hf.get("scale_decoder_outputs", hf.get("tie_word_embeddings", True)),
            pad_token_id=hf.get("pad_token_id", 0),
            eos_token_id=hf.get("eos_token_id", 1), decoder_start_token_id=hf.get("decoder_start_token_id", 0),
            encoder_only=any("EncoderModel" in a for a in archs),
        )

    def config_to_hf(self, c: Seq2SeqConfig) -> dict:
        require(c, "activation", c.activation in GZ_ACT, "t5", f"one of {sorted(GZ_ACT)}")
        require(c, "softmax", c.softmax == "standard", "t5", "the standard softmax")
        require(c, "attn_gate", c.attn_gate == "none", "t5", "no attention gate")
        act = GZ_ACT[c.activation]
        proj = ("gated-gelu" if act == "gelu_new" else f"gated-{act}") if c.ffn == "gated" else act
        return {
            "architectures": ["T5EncoderModel" if c.encoder_only else "T5ForConditionalGeneration"],
            "model_type": "t5", "vocab_size": c.vocab_size, "d_model": c.d_model, "d_kv": c.head_dim,
            "d_ff": c.d_ff, "num_layers": c.n_layers, "num_decoder_layers": c.n_decoder_layers, "num_heads": c.n_heads,
            "relative_attention_num_buckets": c.relative_buckets,
            "relative_attention_max_distance": c.relative_max_distance, "dropout_rate": c.dropout,
            "layer_norm_epsilon": c.norm_eps, "feed_forward_proj": proj, "tie_word_embeddings": c.tie_embeddings,
            "scale_decoder_outputs": c.scales_output,
            "pad_token_id": c.pad_token_id, "eos_token_id": c.eos_token_id,
            "decoder_start_token_id": c.decoder_start_token_id, "is_encoder_decoder": not c.encoder_only,
            "initializer_factor": 1.0,
        }

    def state_from_hf(self, tensors, config):
        keep = {k: v for k, v in tensors.items() if not ALIASES.search(k)}
        if config.tie_embeddings:
            keep.pop("lm_head.weight", None)
        return key_map(config.ffn == "gated").rename_in(keep)

    def state_to_hf(self, state, config):
        return key_map(config.ffn == "gated").rename_out(state)
