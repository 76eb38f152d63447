"""What `genzoo.save` writes, as the readers of a Hugging Face directory rely on it: shards packed greedily in
key order up to `max_shard_bytes` (a shard may be exactly the limit, as transformers' own rule), named
model-0000i-of-0000n from 1, each with {"format": "pt"} metadata, an index naming every key and the total size;
config.json's `dtype`; a LoRA model written merged with its adapter beside it. (Each was a surviving mutant of
`make mutation`: no test wrote a sharded checkpoint or read the saved dtype.)"""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import genzoo
from genzoo.interop import _write_tensors

import transformers  # noqa: F401 the reference library must be there


def _shards(directory):
    index = json.loads((directory / "model.safetensors.index.json").read_text())
    return index, sorted(p.name for p in directory.glob("model-*.safetensors"))


def test_shards_are_packed_greedily_in_key_order_and_may_fill_the_limit(tmp_path):
    # four 64-byte tensors and a 128-byte limit: exactly two per shard, no third shard
    tensors = {k: torch.full((16,), float(i)) for i, k in enumerate("abcd")}
    _write_tensors(tmp_path, tensors, max_shard_bytes=128)
    index, names = _shards(tmp_path)
    assert names == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert index["weight_map"] == {"a": names[0], "b": names[0], "c": names[1], "d": names[1]}
    assert index["metadata"]["total_size"] == 4 * 64
    got = {}
    for name in names:
        with safe_open(str(tmp_path / name), framework="pt") as f:
            assert f.metadata() == {"format": "pt"}, name  # transformers and safetensors' tools read it
            got.update({k: f.get_tensor(k) for k in f.keys()})
    assert all(torch.equal(got[k], v) for k, v in tensors.items())


def test_a_tensor_larger_than_the_limit_gets_a_shard_of_its_own(tmp_path):
    tensors = {"a": torch.zeros(8), "b": torch.zeros(100), "c": torch.zeros(8)}  # 32, 400, 32 bytes
    _write_tensors(tmp_path, tensors, max_shard_bytes=64)
    index, names = _shards(tmp_path)
    assert len(names) == 3 and all(n.endswith("-of-00003.safetensors") for n in names)
    assert [index["weight_map"][k] for k in "abc"] == names  # no empty shard, one tensor each, in order


def test_a_sharded_checkpoint_loads_in_transformers_and_genzoo(tmp_path):
    torch.manual_seed(0)
    model = genzoo.build("llama-tiny").eval()
    genzoo.save(model, tmp_path / "m", max_shard_bytes=40_000)
    index, names = _shards(tmp_path / "m")
    assert len(names) > 2 and not (tmp_path / "m" / "model.safetensors").exists()
    assert set(index["weight_map"].values()) == set(names)
    for name in names:  # every shard within the limit unless it holds one larger tensor
        shard = load_file(tmp_path / "m" / name)
        assert sum(t.nbytes for t in shard.values()) <= 40_000 or len(shard) == 1, name
    ref = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    ids = torch.randint(0, model.config.vocab_size, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(ref(ids).logits, model(ids).logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(genzoo.load(tmp_path / "m")(ids).logits, model(ids).logits, atol=0, rtol=0)


@pytest.mark.parametrize("dtype, name", [(torch.float32, "float32"), (torch.bfloat16, "bfloat16")])
def test_config_names_the_dtype_of_the_saved_weights(tmp_path, dtype, name):
    """transformers reads config.json's `dtype` (dtype="auto" loads in it); it must be the weights' own dtype."""
    genzoo.save(genzoo.build("gpt2-tiny").to(dtype), tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["dtype"] == name
    assert {t.dtype for t in load_file(tmp_path / "m" / "model.safetensors").values()} == {dtype}
    ref = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "m", dtype="auto")
    assert ref.dtype == dtype


def test_a_lora_model_is_saved_merged_with_its_adapter_beside_it(tmp_path):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(genzoo.build("gpt2-tiny"), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # B starts at zero: give the adapter an effect
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.1)
    genzoo.save(model, tmp_path / "m")
    assert (tmp_path / "m" / "adapter" / "adapter_model.safetensors").is_file()
    assert not any("lora" in k for k in load_file(tmp_path / "m" / "model.safetensors"))
    ids = torch.randint(0, 512, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(genzoo.load(tmp_path / "m")(ids).logits, model.eval()(ids).logits,
                                   atol=1e-5, rtol=0)
