"""Mixtral against transformers in both checkpoint layouts: logits and aux loss (atol 1e-5), greedy
tokens identical; saves in the layout transformers writes; one expert equals the dense FFN."""

import pytest
import torch
from safetensors.torch import load_file, save_file

import genzoo
from genzoo.nn.ffn import GatedMLP
from genzoo.nn.moe import SparseMoE, StackedExperts, TopKRouter
from tests.hf_models import VOCAB, save_for_transformers, tiny_mixtral

import transformers


@pytest.fixture(scope="module")
def ref_dirs(tmp_path_factory):
    torch.manual_seed(0)
    ref = tiny_mixtral()
    per_expert = tmp_path_factory.mktemp("per_expert")
    ref.save_pretrained(per_expert)
    assert any("block_sparse_moe.experts.0.w1" in k for k in load_file(per_expert / "model.safetensors"))
    stacked = tmp_path_factory.mktemp("stacked")
    ref.save_pretrained(stacked)
    # the stacked layout: the tensors as transformers holds them in memory
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, stacked / "model.safetensors")
    assert any(k.endswith("mlp.experts.gate_up_proj") for k in load_file(stacked / "model.safetensors"))
    return ref, {"per_expert": per_expert, "stacked": stacked}


@pytest.mark.parametrize("layout", ["per_expert", "stacked"])
def test_logits_aux_loss_and_greedy_match(ref_dirs, layout):
    ref, dirs = ref_dirs
    ours = genzoo.load(dirs[layout])
    ids = torch.randint(0, VOCAB, (3, 30))
    mask = torch.ones_like(ids)
    mask[2, 20:] = 0
    labels = ids.masked_fill(mask == 0, -100)  # no targets on padding
    with torch.no_grad():
        want = ref(ids, attention_mask=mask, labels=labels, output_router_logits=True)
        got = ours(ids, attention_mask=mask, labels=labels)
    real = mask.bool()
    torch.testing.assert_close(got.logits[real], want.logits[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(got.aux_loss, want.aux_loss, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.loss, want.loss, atol=1e-5, rtol=0)
    prompt = torch.randint(2, VOCAB, (1, 10))
    a = ours.generate(prompt, max_new_tokens=32)
    b = ref.generate(prompt, max_new_tokens=32, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert torch.equal(a, b)


def test_save_writes_transformers_layout_and_round_trips(ref_dirs, tmp_path):
    ref, dirs = ref_dirs
    ours = genzoo.load(dirs["stacked"])
    back = save_for_transformers(ours, transformers.AutoModelForCausalLM, tmp_path / "out")
    written = load_file(tmp_path / "out" / "model.safetensors")
    assert set(written) == set(load_file(dirs["per_expert"] / "model.safetensors"))
    ids = torch.randint(0, VOCAB, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, ours(ids).logits, atol=1e-5, rtol=0)
        assert torch.equal(genzoo.load(tmp_path / "out")(ids).logits, ours(ids).logits)


def test_one_expert_equals_the_dense_ffn():
    torch.manual_seed(0)
    dense = GatedMLP.build(16, 32, "silu", bias=False)
    moe = SparseMoE(TopKRouter(16, 1, 1), StackedExperts(1, 16, 32, "silu"))
    with torch.no_grad():
        moe.experts.gate_up.copy_(torch.cat([dense.gate.weight, dense.up.weight]).t()[None])  # (1, D, 2F)
        moe.experts.down.copy_(dense.down.weight.t()[None])  # (1, F, D)
    x = torch.randn(2, 7, 16)
    torch.testing.assert_close(moe(x), dense(x), atol=1e-6, rtol=0)


def test_cached_decoding_equals_recompute_with_experts():
    m = genzoo.build("mixtral-tiny").eval()
    ids = torch.randint(0, 512, (2, 16))
    with torch.no_grad():
        full = m(ids).logits
        cache = m.make_cache(2, 16)
        parts = [m(ids[:, :6], cache=cache).logits] + [m(ids[:, t:t + 1], cache=cache).logits for t in range(6, 16)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=0)
