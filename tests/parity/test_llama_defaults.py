"""A Llama config.json that leaves settings to their defaults (older or hand-written checkpoints): no `rope_theta`,
no `rope_parameters` / `rope_scaling`, and optionally none of the other keys `LlamaConfig` has defaults for.
genzoo.load must read it as transformers does: logits equal (fp32, atol 1e-5)."""

import json

import pytest
import torch
import transformers

import genzoo

from tests.hf_models import VOCAB

ROPE_KEYS = ("rope_theta", "rope_parameters", "rope_scaling")
# keys LlamaConfig fills in when absent, with the value the model below is built with (= the default)
DEFAULTED = {"rms_norm_eps": 1e-6, "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
             "head_dim": None, "num_key_value_heads": None, "tie_word_embeddings": False,
             "max_position_embeddings": 2048}


# what replaces the rope keys: nothing, a rope_parameters without theta (transformers fills in 10000), or the
# older layout's `"rope_scaling": null` (Llama 2 configs) without its rope_theta
ROPE_VARIANTS = {"absent": {}, "params-without-theta": {"rope_parameters": {"rope_type": "default"}},
                 "scaling-null": {"rope_scaling": None}}


def save_without(tmp_path, drop_defaults: bool, rope_variant: str = "absent"):
    torch.manual_seed(0)
    kw = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              bos_token_id=0, eos_token_id=1, tie_word_embeddings=False)
    if not drop_defaults:
        kw.update(num_key_value_heads=2, max_position_embeddings=96, rms_norm_eps=1e-5)
    ref = transformers.LlamaForCausalLM(transformers.LlamaConfig(**kw))
    with torch.no_grad():  # widen the logits (random init is near uniform)
        for p in ref.parameters():
            if p.dim() > 1:
                p.normal_(std=0.2)
    ref.save_pretrained(tmp_path)
    cfg_file = tmp_path / "config.json"
    cfg = json.loads(cfg_file.read_text())
    dropped = [k for k in ROPE_KEYS if k in cfg]
    assert dropped, f"transformers wrote none of {ROPE_KEYS}: {sorted(cfg)}"
    for k in ROPE_KEYS:
        cfg.pop(k, None)
    if drop_defaults:
        for k in DEFAULTED:
            cfg.pop(k, None)
    cfg.update(ROPE_VARIANTS[rope_variant])
    cfg_file.write_text(json.dumps(cfg, indent=2))
    return cfg


@pytest.mark.parametrize("drop_defaults,rope_variant", [(False, "absent"), (True, "absent"),
                                                        (False, "params-without-theta"), (False, "scaling-null")])
def test_llama_without_rope_theta_matches_transformers(tmp_path, drop_defaults, rope_variant):
    cfg = save_without(tmp_path, drop_defaults, rope_variant)
    assert "rope_theta" not in cfg and "rope_theta" not in (cfg.get("rope_parameters") or {})
    ref = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ours = genzoo.load(tmp_path)
    # the default transformers applies: theta 10000 (the RoFormer / Llama 1 value)
    rope = getattr(ref.config, "rope_parameters", None) or {}
    assert float(rope.get("rope_theta", getattr(ref.config, "rope_theta", 0.0))) == 10000.0
    assert ours.config.rope_theta == 10000.0 and not ours.config.rope_scaling
    assert ours.config.max_positions == ref.config.max_position_embeddings
    assert ours.config.norm_eps == ref.config.rms_norm_eps
    assert ours.config.n_kv_heads == ref.config.num_key_value_heads
    ids = torch.randint(0, VOCAB, (2, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = ref(ids).logits
        got = ours(ids).logits
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
