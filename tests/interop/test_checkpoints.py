"""Checkpoint safety and layouts: strict loading, refused remote code, pickle read with weights_only,
corrupt safetensors files, and the layouts each family has in the wild."""

import json
import pickle
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import genzoo
from genzoo import CheckpointError

from tests.hf_models import VOCAB, tiny_hf

import transformers  # noqa: F401 the reference library must be there


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("llama")
    tiny_hf("llama").save_pretrained(d)
    return d


def copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_truncated_safetensors_is_refused(llama_dir, tmp_path):
    d = copy(llama_dir, tmp_path / "c")
    f = d / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated"):
        genzoo.load(d)


def test_header_length_beyond_end_of_file_is_refused(llama_dir, tmp_path):
    d = copy(llama_dir, tmp_path / "c")
    f = d / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[:8] = (len(data) * 2).to_bytes(8, "little")
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="header length .* runs past the end of the file"):
        genzoo.load(d)


def test_missing_unexpected_and_misshaped_tensors_are_listed(llama_dir, tmp_path):
    d = copy(llama_dir, tmp_path / "c")
    t = load_file(d / "model.safetensors")
    del t["model.layers.1.mlp.up_proj.weight"]
    t["model.layers.0.extra.weight"] = torch.zeros(2)
    t["model.norm.weight"] = torch.ones(7)
    save_file(t, d / "model.safetensors")
    with pytest.raises(CheckpointError) as e:
        genzoo.load(d)
    msg = str(e.value)
    assert "missing (1)" in msg and "blocks.1.ffn.up.weight" in msg
    assert "unexpected (1)" in msg and "model.layers.0.extra.weight" in msg
    assert "mis-shaped (1)" in msg and "norm.weight: checkpoint (7,) vs model (32,)" in msg


def test_remote_code_config_is_refused(llama_dir, tmp_path):
    d = copy(llama_dir, tmp_path / "c")
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="auto_map"):
        genzoo.load(d)


def test_unknown_model_type_is_refused(llama_dir, tmp_path):
    d = copy(llama_dir, tmp_path / "c")
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_type"] = "nonexistent"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="model_type 'nonexistent' is not supported"):
        genzoo.load(d)


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such directory"):
        genzoo.load(tmp_path / "nope")


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_checkpoint_read_with_weights_only(llama_dir, tmp_path):
    d = copy(llama_dir, tmp_path / "c")
    t = load_file(d / "model.safetensors")
    (d / "model.safetensors").unlink()
    torch.save(t, d / "pytorch_model.bin")
    ref = genzoo.load(llama_dir)
    got = genzoo.load(d)
    for k, v in ref.state_dict().items():
        assert torch.equal(v, got.state_dict()[k])
    # a pickle that would run code is refused, not executed
    with open(d / "pytorch_model.bin", "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        genzoo.load(d)


def test_gpt2_original_layout_without_prefix_and_with_mask_buffers(tmp_path):
    """openai-community/gpt2 has unprefixed keys and `attn.bias` / `attn.masked_bias` buffers."""
    ref = tiny_hf("gpt2")
    ref.save_pretrained(tmp_path / "new")
    t = load_file(tmp_path / "new" / "model.safetensors")
    old = {k.removeprefix("transformer."): v for k, v in t.items()}
    for i in range(2):
        old[f"h.{i}.attn.bias"] = torch.tril(torch.ones(96, 96)).view(1, 1, 96, 96)
        old[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    d = copy(tmp_path / "new", tmp_path / "old")
    save_file(old, d / "model.safetensors")
    ids = torch.randint(0, VOCAB, (2, 10))
    with torch.no_grad():
        torch.testing.assert_close(genzoo.load(d)(ids).logits, ref(ids).logits, atol=1e-5, rtol=0)


def test_llama_tied_embeddings_and_legacy_rope_config(tmp_path):
    ref = tiny_hf("llama", tie_word_embeddings=True)
    ref.save_pretrained(tmp_path / "tied")
    assert "lm_head.weight" not in load_file(tmp_path / "tied" / "model.safetensors")
    ours = genzoo.load(tmp_path / "tied")
    assert ours.lm_head.weight is ours.embed.weight
    ids = torch.randint(0, VOCAB, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, ref(ids).logits, atol=1e-5, rtol=0)
    # transformers < 5 wrote rope_theta at the top level instead of rope_parameters
    cfg = json.loads((tmp_path / "tied" / "config.json").read_text())
    theta = cfg.pop("rope_parameters")["rope_theta"]
    cfg["rope_theta"] = theta
    (tmp_path / "tied" / "config.json").write_text(json.dumps(cfg))
    legacy = genzoo.load(tmp_path / "tied")
    assert legacy.config.rope_theta == 50000.0
    with torch.no_grad():
        torch.testing.assert_close(legacy(ids).logits, ref(ids).logits, atol=1e-5, rtol=0)


def test_llama3_rope_scaling_matches_transformers(tmp_path):
    scaling = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
    import transformers as tf

    cfg = tf.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=96, rope_parameters=scaling)
    ref = tf.LlamaForCausalLM(cfg).eval()
    ref.save_pretrained(tmp_path / "l3")
    ours = genzoo.load(tmp_path / "l3")
    assert ours.config.rope_scaling["rope_type"] == "llama3"
    ids = torch.randint(0, VOCAB, (1, 80))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, ref(ids).logits, atol=1e-5, rtol=0)


def test_save_is_atomic_and_replaces(tmp_path):
    m = genzoo.build("gpt2-tiny")
    genzoo.save(m, tmp_path / "ck")
    genzoo.save(m, tmp_path / "ck")  # replacing an existing directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temp or old directories left


def test_config_the_format_cannot_express_is_an_error(tmp_path):
    m = genzoo.build("llama-tiny", softmax="softmax1")
    with pytest.raises(genzoo.ConfigError, match="softmax='softmax1' cannot be written as a 'llama' checkpoint"):
        genzoo.save(m, tmp_path / "x")
    genzoo.save(m, tmp_path / "x", format="genzoo")  # genzoo's own format keeps every field
    back = genzoo.load(tmp_path / "x")
    assert back.config == m.config
    ids = torch.randint(0, 512, (1, 9))
    with torch.no_grad():
        assert torch.equal(back(ids).logits, m.eval()(ids).logits)


def test_legacy_pickle_checkpoint_is_read_without_mmap(llama_dir, tmp_path):
    """pytorch_model.bin is memory-mapped when it is a zip-format file; the legacy (pre-zip) format cannot be
    mapped and is read whole, still with weights_only=True."""
    d = copy(llama_dir, tmp_path / "c")
    t = load_file(d / "model.safetensors")
    (d / "model.safetensors").unlink()
    torch.save(t, d / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    ref = genzoo.load(llama_dir).state_dict()
    got = genzoo.load(d).state_dict()
    assert all(torch.equal(got[k], v) for k, v in ref.items())


def test_saved_safetensors_say_format_pt(tmp_path):
    """The metadata transformers and safetensors' own tools read ({"format": "pt"}); a mutation-testing survivor
    (no test read the header's metadata)."""
    from safetensors import safe_open

    import genzoo

    genzoo.save(genzoo.build("gpt2-tiny"), tmp_path / "m")
    with safe_open(str(tmp_path / "m" / "model.safetensors"), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
