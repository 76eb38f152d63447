"""The `transformers` CLIPModel checkpoint format. Older checkpoints carry `position_ids` buffers, which
are not weights and are skipped."""

from __future__ import annotations

import math
import re

from ...config import PRESETS
from ...interop.formats import FORMATS, CheckpointFormat, KeyMap, require
from .config import CLIPConfig


def _tower(gz: str, hf: str) -> list[tuple[str, str]]:
    layer = f"{hf}.encoder.layers.{{i}}"
    return [
        (f"{gz}.blocks.{{i}}.attn.q_proj.{{p}}", f"{layer}.self_attn.q_proj.{{p}}"),
        (f"{gz}.blocks.{{i}}.attn.k_proj.{{p}}", f"{layer}.self_attn.k_proj.{{p}}"),
        (f"{gz}.blocks.{{i}}.attn.v_proj.{{p}}", f"{layer}.self_attn.v_proj.{{p}}"),
        (f"{gz}.blocks.{{i}}.attn.o_proj.{{p}}", f"{layer}.self_attn.out_proj.{{p}}"),
        (f"{gz}.blocks.{{i}}.attn_norm.{{p}}", f"{layer}.layer_norm1.{{p}}"),
        (f"{gz}.blocks.{{i}}.ffn_norm.{{p}}", f"{layer}.layer_norm2.{{p}}"),
        (f"{gz}.blocks.{{i}}.ffn.up.{{p}}", f"{layer}.mlp.fc1.{{p}}"),
        (f"{gz}.blocks.{{i}}.ffn.down.{{p}}", f"{layer}.mlp.fc2.{{p}}"),
    ]


CLIP_KEYS = KeyMap([
    ("text.embed.weight", "text_model.embeddings.token_embedding.weight"),
    ("text.positions.weight", "text_model.embeddings.position_embedding.weight"),
    *_tower("text", "text_model"),
    ("text.final_norm.{p}", "text_model.final_layer_norm.{p}"),
    ("vision.embed.class_embedding", "vision_model.embeddings.class_embedding"),
    ("vision.embed.conv.weight", "vision_model.embeddings.patch_embedding.weight"),
    ("vision.positions.weight", "vision_model.embeddings.position_embedding.weight"),
    ("vision.embed_norm.{p}", "vision_model.pre_layrnorm.{p}"),
    *_tower("vision", "vision_model"),
    ("vision.post_norm.{p}", "vision_model.post_layernorm.{p}"),
    ("text_projection.weight", "text_projection.weight"),
    ("visual_projection.weight", "visual_projection.weight"),
    ("logit_scale", "logit_scale"),
])
BUFFERS = re.compile(r"(text|vision)_model\.embeddings\.position_ids$")
HF_ACT = {"quick_gelu": "quick_gelu", "gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}
GZ_ACT = {v: k for k, v in HF_ACT.items() if k != "gelu_pytorch_tanh"}


@FORMATS.register("clip")
class CLIPFormat(CheckpointFormat):
    model_type = "clip"

    def config_from_hf(self, hf: dict) -> CLIPConfig:
        t, v = hf.get("text_config", {}), hf.get("vision_config", {})
        act = t.get("hidden_act", "quick_gelu")
        return PRESETS.get("clip").make(
            vocab_size=t.get("vocab_size", 49408), max_positions=t.get("max_position_embeddings", 77),
            text_d_model=t.get("hidden_size", 512), text_layers=t.get("num_hidden_layers", 12),
            text_heads=t.get("num_attention_heads", 8), text_d_ff=t.get("intermediate_size", 2048),
            eos_token_id=t.get("eos_token_id", 2), pad_token_id=t.get("pad_token_id", 1),
            image_size=v.get("image_size", 224), patch_size=v.get("patch_size", 32),
            channels=v.get("num_channels", 3), vision_d_model=v.get("hidden_size", 768),
            vision_layers=v.get("num_hidden_layers", 12), vision_heads=v.get("num_attention_heads", 12),
            vision_d_ff=v.get("intermediate_size", 3072), activation=HF_ACT.get(act, act),
            norm_eps=t.get("layer_norm_eps", 1e-5), projection_dim=hf.get("projection_dim", 512),
            logit_scale_init=hf.get("logit_scale_init_value", math.log(1 / 0.07)),
        )

    def config_to_hf(self, c: CLIPConfig) -> dict:
        require(c, "activation", c.activation in GZ_ACT, "clip", f"one of {sorted(GZ_ACT)}")
        require(c, "softmax", c.softmax == "standard", "clip", "the standard softmax")
        require(c, "attn_gate", c.attn_gate == "none", "clip", "no attention gate")
        common = {"hidden_act": GZ_ACT[c.activation], "layer_norm_eps": c.norm_eps, "attention_dropout": c.dropout,
                  "projection_dim": c.projection_dim}
        return {
            "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": c.projection_dim,
            "logit_scale_init_value": c.logit_scale_init,
            "text_config": {**common, "vocab_size": c.vocab_size, "max_position_embeddings": c.max_positions,
                            "hidden_size": c.text_d_model, "num_hidden_layers": c.text_layers,
                            "num_attention_heads": c.text_heads, "intermediate_size": c.text_d_ff,
                            "eos_token_id": c.eos_token_id, "pad_token_id": c.pad_token_id, "model_type": "clip_text_model"},
            "vision_config": {**common, "image_size": c.image_size, "patch_size": c.patch_size,
                              "num_channels": c.channels, "hidden_size": c.vision_d_model,
                              "num_hidden_layers": c.vision_layers, "num_attention_heads": c.vision_heads,
                              "intermediate_size": c.vision_d_ff, "model_type": "clip_vision_model"},
        }

    def state_from_hf(self, tensors, config):
        state, unexpected = CLIP_KEYS.rename_in({k: v for k, v in tensors.items() if not BUFFERS.match(k)})
        if "logit_scale" in state and state["logit_scale"].dim() == 0:
            state["logit_scale"] = state["logit_scale"].reshape(1)  # genzoo holds it as (1,) (FSDP2)
        return state, unexpected

    def state_to_hf(self, state, config):
        out = CLIP_KEYS.rename_out(state)
        if "logit_scale" in out:
            out["logit_scale"] = out["logit_scale"].reshape(())  # transformers' 0-dim parameter
        return out
