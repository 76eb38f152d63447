"""Checkpoint formats of the decoder genre: GPT2LMHeadModel, LlamaForCausalLM, MistralForCausalLM.

GPT-2 stores its linear layers as Conv1D, (in, out), and fuses q/k/v into one `c_attn`; both are
undone here. Its checkpoints exist with and without the `transformer.` prefix, and older ones carry
the causal-mask buffers `attn.bias` / `attn.masked_bias`; all of these are read. Llama/Mistral configs
are read in both the `rope_parameters` layout (transformers >= 5) and the older `rope_theta` +
`rope_scaling` layout.
"""

from __future__ import annotations

import re

import torch

from ...config import PRESETS
from ...errors import CheckpointError
from ...interop.formats import FORMATS, CheckpointFormat, KeyMap, merge_fused, require, split_fused
from ...nn.ffn import GATED
from .config import DecoderConfig

# checkpoint activation name <-> genzoo activation name
HF_ACT = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu",
          "silu": "silu", "swish": "silu", "quick_gelu": "quick_gelu"}
GZ_ACT = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu", "silu": "silu", "quick_gelu": "quick_gelu"}


def hf_activation(name: str, where: str) -> str:
    if name not in HF_ACT:
        raise CheckpointError(f"{where}: activation {name!r} is not supported; supported: {sorted(HF_ACT)}")
    return HF_ACT[name]


def refuse(hf: dict, key: str, ok, where: str) -> None:
    """A config option genzoo does not implement is refused loudly, never ignored."""
    if key in hf and not ok(hf[key]):
        raise CheckpointError(f"{where}: config option {key}={hf[key]!r} is not supported")


# ---------------------------------------------------------------- GPT-2
GPT2_KEYS = KeyMap([
    ("embed.weight", "wte.weight"),
    ("positions.weight", "wpe.weight"),
    ("blocks.{i}.attn_norm.{p}", "h.{i}.ln_1.{p}"),
    ("blocks.{i}.attn.q_proj.{p}", "h.{i}.attn.q.{p}"),  # q/k/v: the three thirds of c_attn
    ("blocks.{i}.attn.k_proj.{p}", "h.{i}.attn.k.{p}"),
    ("blocks.{i}.attn.v_proj.{p}", "h.{i}.attn.v.{p}"),
    ("blocks.{i}.attn.o_proj.{p}", "h.{i}.attn.c_proj.{p}"),
    ("blocks.{i}.ffn_norm.{p}", "h.{i}.ln_2.{p}"),
    ("blocks.{i}.ffn.up.{p}", "h.{i}.mlp.c_fc.{p}"),
    ("blocks.{i}.ffn.down.{p}", "h.{i}.mlp.c_proj.{p}"),
    ("final_norm.{p}", "ln_f.{p}"),
    ("lm_head.weight", "lm_head.weight"),
])
C_ATTN, QKV_PARTS = "attn.c_attn", ["attn.q", "attn.k", "attn.v"]  # c_attn holds q, k, v stacked
CONV1D = re.compile(r"h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$")
MASK_BUFFERS = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)$")


@FORMATS.register("gpt2")
class GPT2Format(CheckpointFormat):
    model_type = "gpt2"

    def config_from_hf(self, hf: dict) -> DecoderConfig:
        where = "GPT-2 config.json"
        refuse(hf, "scale_attn_weights", lambda v: v is True, where)
        refuse(hf, "scale_attn_by_inverse_layer_idx", lambda v: v is False, where)
        refuse(hf, "add_cross_attention", lambda v: v is False, where)
        d = hf["n_embd"]
        return PRESETS.get("gpt2").make(
            vocab_size=hf["vocab_size"],
            max_positions=hf["n_positions"],
            d_model=d,
            n_layers=hf["n_layer"],
            n_heads=hf["n_head"],
            d_ff=hf.get("n_inner") or 4 * d,
            activation=hf_activation(hf.get("activation_function", "gelu_new"), where),
            norm_eps=hf.get("layer_norm_epsilon", 1e-5),
            tie_embeddings=hf.get("tie_word_embeddings", True),
            bos_token_id=hf.get("bos_token_id"),
            eos_token_id=hf.get("eos_token_id"),
            pad_token_id=hf.get("pad_token_id"),
        )

    def config_to_hf(self, c: DecoderConfig) -> dict:
        f = "gpt2"
        require(c, "norm", c.norm == "layernorm" and c.norm_bias, f, "LayerNorm with bias")
        require(c, "ffn", c.ffn == "mlp" and c.ffn_bias, f, "an MLP with bias")
        require(c, "activation", c.activation in GZ_ACT, f, f"one of {sorted(GZ_ACT)}")
        require(c, "position", c.position == "learned", f, "learned absolute positions")
        require(c, "n_kv_heads", c.n_kv_heads == c.n_heads, f, "multi-head attention")
        require(c, "head_dim", c.head_dim * c.n_heads == c.d_model, f, "d_model / n_heads")
        require(c, "attn_bias", c.attn_bias and c.attn_out_bias, f, "biased attention projections")
        require(c, "sliding_window", c.sliding_window is None, f, "no sliding window")
        require(c, "softmax", c.softmax == "standard", f, "the standard softmax")
        require(c, "attn_gate", c.attn_gate == "none", f, "no attention gate")
        return {
            "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": c.vocab_size,
            "n_positions": c.max_positions, "n_embd": c.d_model, "n_layer": c.n_layers, "n_head": c.n_heads,
            "n_inner": c.d_ff, "activation_function": GZ_ACT[c.activation], "layer_norm_epsilon": c.norm_eps,
            "tie_word_embeddings": c.tie_embeddings, "bos_token_id": c.bos_token_id,
            "eos_token_id": c.eos_token_id, "pad_token_id": c.pad_token_id,
            "resid_pdrop": c.dropout, "embd_pdrop": c.dropout, "attn_pdrop": c.dropout,
            "initializer_range": c.init_std,
        }

    def state_from_hf(self, tensors, config):
        plain = {}
        for k, v in tensors.items():
            k = k.removeprefix("transformer.")
            if MASK_BUFFERS.match(k):  # causal-mask buffers of older checkpoints, not weights
                continue
            plain[k] = v.t() if CONV1D.match(k) else v  # Conv1D (in, out) -> Linear (out, in)
        if config.tie_embeddings:
            plain.pop("lm_head.weight", None)
        return GPT2_KEYS.rename_in(split_fused(plain, C_ATTN, QKV_PARTS))

    def state_to_hf(self, state, config):
        out = merge_fused(GPT2_KEYS.rename_out(state), C_ATTN, QKV_PARTS)
        out = {k: (v.t().contiguous() if CONV1D.match(k) else v) for k, v in out.items()}
        return {(k if k == "lm_head.weight" else f"transformer.{k}"): v for k, v in out.items()}


# ---------------------------------------------------------------- Llama / Mistral
LLAMA_KEYS = KeyMap([
    ("embed.weight", "model.embed_tokens.weight"),
    ("blocks.{i}.attn_norm.weight", "model.layers.{i}.input_layernorm.weight"),
    ("blocks.{i}.attn.q_proj.{p}", "model.layers.{i}.self_attn.q_proj.{p}"),
    ("blocks.{i}.attn.k_proj.{p}", "model.layers.{i}.self_attn.k_proj.{p}"),
    ("blocks.{i}.attn.v_proj.{p}", "model.layers.{i}.self_attn.v_proj.{p}"),
    ("blocks.{i}.attn.o_proj.{p}", "model.layers.{i}.self_attn.o_proj.{p}"),
    ("blocks.{i}.ffn_norm.weight", "model.layers.{i}.post_attention_layernorm.weight"),
    ("blocks.{i}.ffn.gate.{p}", "model.layers.{i}.mlp.gate_proj.{p}"),
    ("blocks.{i}.ffn.up.{p}", "model.layers.{i}.mlp.up_proj.{p}"),
    ("blocks.{i}.ffn.down.{p}", "model.layers.{i}.mlp.down_proj.{p}"),
    ("final_norm.weight", "model.norm.weight"),
    ("lm_head.weight", "lm_head.weight"),
])


def rope_from_hf(hf: dict, where: str) -> tuple[float, dict | None]:
    """(theta, scaling) from either config layout: `rope_parameters` or `rope_theta` + `rope_scaling`."""
    params = hf.get("rope_parameters")
    if params is None:
        params = dict(hf.get("rope_scaling") or {})
        if "type" in params:
            params["rope_type"] = params.pop("type")
        params["rope_theta"] = hf.get("rope_theta", 10000.0)
    params = dict(params)
    theta = float(params.pop("rope_theta", 10000.0))
    kind = params.get("rope_type", "default")
    if kind not in ("default", "linear", "llama3"):
        raise CheckpointError(f"{where}: rope_type {kind!r} is not supported; supported: default, linear, llama3")
    return theta, (None if kind == "default" else params)


class LlamaFormat(CheckpointFormat):
    model_type = "llama"
    architecture = "LlamaForCausalLM"
    preset = "llama"
    has_window = False
    has_experts = False

    def extra_config_from_hf(self, hf: dict) -> dict:
        return {}

    def config_from_hf(self, hf: dict) -> DecoderConfig:
        where = f"{self.model_type} config.json"
        theta, scaling = rope_from_hf(hf, where)
        refuse(hf, "pretraining_tp", lambda v: v in (None, 1), where)
        act = hf_activation(hf.get("hidden_act", "silu"), where)
        d, h = hf["hidden_size"], hf["num_attention_heads"]
        window = hf.get("sliding_window") if self.has_window else None
        if not self.has_window:
            refuse(hf, "sliding_window", lambda v: v is None, where)
        bias = hf.get("attention_bias", False)
        return PRESETS.get(self.preset).make(
            vocab_size=hf["vocab_size"], max_positions=hf.get("max_position_embeddings", 2048), d_model=d,
            n_layers=hf["num_hidden_layers"], n_heads=h, n_kv_heads=hf.get("num_key_value_heads") or h,
            head_dim=hf.get("head_dim") or d // h, d_ff=hf["intermediate_size"],
            ffn="gated", activation=act, ffn_bias=hf.get("mlp_bias", False),
            attn_bias=bias, attn_out_bias=bias, norm_eps=hf.get("rms_norm_eps", 1e-6),
            rope_theta=theta, rope_scaling=scaling, sliding_window=window,
            tie_embeddings=hf.get("tie_word_embeddings", False), bos_token_id=hf.get("bos_token_id"),
            eos_token_id=hf.get("eos_token_id"), pad_token_id=hf.get("pad_token_id"),
            **self.extra_config_from_hf(hf),
        )

    def config_to_hf(self, c: DecoderConfig) -> dict:
        f = self.model_type
        require(c, "n_experts", bool(c.n_experts) == self.has_experts, f,
                "a mixture of experts" if self.has_experts else "no experts; use 'mixtral'")
        require(c, "norm", c.norm == "rmsnorm", f, "RMSNorm")
        require(c, "ffn", c.ffn in GATED, f, "a gated MLP")
        require(c, "activation", c.activation in GZ_ACT, f, f"one of {sorted(GZ_ACT)}")
        require(c, "position", c.position == "rope", f, "rotary positions")
        require(c, "attn_out_bias", c.attn_out_bias == c.attn_bias, f, "the same bias on all projections")
        require(c, "softmax", c.softmax == "standard", f, "the standard softmax")
        require(c, "attn_gate", c.attn_gate == "none", f, "no attention gate")
        if not self.has_window:
            require(c, "sliding_window", c.sliding_window is None, f, "no sliding window; use 'mistral'")
        rope = {"rope_type": "default", "rope_theta": c.rope_theta, **(c.rope_scaling or {})}
        out = {
            "architectures": [self.architecture], "model_type": self.model_type, "vocab_size": c.vocab_size,
            "max_position_embeddings": c.max_positions, "hidden_size": c.d_model, "num_hidden_layers": c.n_layers,
            "num_attention_heads": c.n_heads, "num_key_value_heads": c.n_kv_heads, "head_dim": c.head_dim,
            "intermediate_size": c.d_ff, "hidden_act": GZ_ACT[c.activation], "rms_norm_eps": c.norm_eps,
            "rope_parameters": rope, "rope_theta": c.rope_theta, "tie_word_embeddings": c.tie_embeddings,
            "attention_bias": c.attn_bias, "attention_dropout": c.dropout, "initializer_range": c.init_std,
            "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id, "pad_token_id": c.pad_token_id,
        }
        if c.ffn_bias:
            out["mlp_bias"] = True
        if self.has_window:
            out["sliding_window"] = c.sliding_window
        return out

    def state_from_hf(self, tensors, config):
        tensors = dict(tensors)
        if config.tie_embeddings:
            tensors.pop("lm_head.weight", None)
        return LLAMA_KEYS.rename_in(tensors)

    def state_to_hf(self, state, config):
        return LLAMA_KEYS.rename_out(state)


FORMATS.register("llama", LlamaFormat)


@FORMATS.register("mistral")
class MistralFormat(LlamaFormat):
    model_type = "mistral"
    architecture = "MistralForCausalLM"
    preset = "mistral"
    has_window = True


# ---------------------------------------------------------------- Mixtral
# Two layouts in the wild: per-expert matrices (what transformers writes, and the original release)
# and stacked tensors (what transformers computes with, and what some converted checkpoints hold).
MIXTRAL_KEYS = KeyMap([("blocks.{i}.ffn.router.weight", "model.layers.{i}.block_sparse_moe.gate.weight")])
PER_EXPERT = re.compile(r"model\.layers\.(\d+)\.block_sparse_moe\.experts\.(\d+)\.(w1|w2|w3)\.weight$")
STACKED = re.compile(r"model\.layers\.(\d+)\.mlp\.(experts\.gate_up_proj|experts\.down_proj|gate\.weight)$")


@FORMATS.register("mixtral")
class MixtralFormat(LlamaFormat):
    model_type = "mixtral"
    architecture = "MixtralForCausalLM"
    preset = "mixtral"
    has_window = True
    has_experts = True

    def extra_config_from_hf(self, hf: dict) -> dict:
        return {"n_experts": hf["num_local_experts"], "experts_top_k": hf.get("num_experts_per_tok", 2),
                "router_aux_loss_coef": hf.get("router_aux_loss_coef", 0.001),
                "router_jitter": hf.get("router_jitter_noise", 0.0)}

    def config_to_hf(self, c: DecoderConfig) -> dict:
        out = super().config_to_hf(c)
        out.update(num_local_experts=c.n_experts, num_experts_per_tok=c.experts_top_k,
                   router_aux_loss_coef=c.router_aux_loss_coef, router_jitter_noise=c.router_jitter,
                   output_router_logits=False)
        return out

    def state_from_hf(self, tensors, config):
        rest, per_expert, state = {}, {}, {}
        for k, v in tensors.items():
            m, s = PER_EXPERT.match(k), STACKED.match(k)
            if m:
                per_expert[(int(m.group(1)), int(m.group(2)), m.group(3))] = v
            elif s:
                layer, what = int(s.group(1)), s.group(2)
                name = {"experts.gate_up_proj": "experts.gate_up", "experts.down_proj": "experts.down",
                        "gate.weight": "router.weight"}[what]
                # transformers' (E, out, in) -> genzoo's (E, in, out)
                state[f"blocks.{layer}.ffn.{name}"] = v if what == "gate.weight" else v.transpose(1, 2).contiguous()
            elif k.endswith("block_sparse_moe.gate.weight"):
                state[MIXTRAL_KEYS.to_genzoo(k)] = v
            else:
                rest[k] = v
        for layer in sorted({i for i, _, _ in per_expert}):
            n = config.n_experts
            try:
                w1 = [per_expert[(layer, e, "w1")] for e in range(n)]
                w2 = [per_expert[(layer, e, "w2")] for e in range(n)]
                w3 = [per_expert[(layer, e, "w3")] for e in range(n)]
            except KeyError as err:
                raise CheckpointError(f"layer {layer}: expert tensor missing: {err}") from None
            # w1, w3 (F, D) and w2 (D, F) are (out, in): genzoo stacks them as (E, in, out)
            state[f"blocks.{layer}.ffn.experts.gate_up"] = torch.stack([torch.cat([a, c]).t() for a, c in zip(w1, w3)])
            state[f"blocks.{layer}.ffn.experts.down"] = torch.stack([w.t() for w in w2])
        extra = sorted(f"model.layers.{i}.block_sparse_moe.experts.{e}" for i, e, _ in per_expert if e >= config.n_experts)
        base, unexpected = super().state_from_hf(rest, config)
        return {**base, **state}, unexpected + extra

    def state_to_hf(self, state, config):
        moe = {k: v for k, v in state.items() if ".ffn.router." in k or ".ffn.experts." in k}
        out = super().state_to_hf({k: v for k, v in state.items() if k not in moe}, config)
        for k, v in moe.items():
            layer = int(k.split(".")[1])
            p = f"model.layers.{layer}.block_sparse_moe"
            if k.endswith("router.weight"):
                out[f"{p}.gate.weight"] = v
            elif k.endswith("experts.gate_up"):  # (E, D, 2F) -> per expert w1, w3 (F, D)
                for e in range(v.shape[0]):
                    w1, w3 = v[e].t().contiguous().chunk(2, dim=0)
                    out[f"{p}.experts.{e}.w1.weight"], out[f"{p}.experts.{e}.w3.weight"] = w1, w3
            elif k.endswith("experts.down"):  # (E, F, D) -> per expert w2 (D, F)
                for e in range(v.shape[0]):
                    out[f"{p}.experts.{e}.w2.weight"] = v[e].t().contiguous()
        return out
