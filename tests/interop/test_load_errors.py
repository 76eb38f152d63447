"""What `genzoo.load` says when a checkpoint cannot be loaded: the directory it read, what does not fit."""

import pytest
import torch

import genzoo
from genzoo.errors import CheckpointError, ConfigError


def test_a_model_too_large_for_memory_names_the_directory(tmp_path, monkeypatch):
    genzoo.save(genzoo.build("llama-tiny"), tmp_path / "ckpt")
    monkeypatch.setattr("genzoo.interop.schema.available_memory", lambda device: 1000)
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'ckpt'}: the model .* needs .* has .* available"):
        genzoo.load(tmp_path / "ckpt")


def test_a_tensor_of_the_wrong_kind_names_both_dtypes(tmp_path):
    from safetensors.torch import load_file, save_file

    genzoo.save(genzoo.build("llama-tiny"), tmp_path / "ckpt")
    state = load_file(tmp_path / "ckpt" / "model.safetensors")
    name = next(k for k in state if k.endswith("up_proj.weight"))
    state[name] = state[name].to(torch.int32)
    save_file(state, tmp_path / "ckpt" / "model.safetensors", metadata={"format": "pt"})
    want = r"mis-typed \(1\): \[.blocks\.0\.ffn\.up\.weight: checkpoint int32 vs model float32.\]"
    with pytest.raises(CheckpointError, match=want):
        genzoo.load(tmp_path / "ckpt")


@pytest.mark.parametrize("key", ["hidden_size", "num_attention_heads", "vocab_size", "num_hidden_layers"])
@pytest.mark.parametrize("value", [0, -2, 2.5, "8", "too large"])
def test_a_size_or_layer_count_out_of_range_is_refused(key, value):
    from genzoo.interop.schema import MAX_LAYERS, MAX_SIZE, check_hf_config

    top = MAX_LAYERS if key == "num_hidden_layers" else MAX_SIZE
    value = top + 1 if value == "too large" else value
    with pytest.raises(ConfigError, match=rf"^config\.json: config field {key}=.* must be an integer in 1\.\.{top}$"):
        check_hf_config({"model_type": "llama", key: value}, "config.json")
    check_hf_config({"model_type": "llama", key: top}, "config.json")  # the largest allowed value is accepted
