"""pytorch_model.bin checkpoints as they come: saved on a GPU, in the zip or the legacy format, holding code
that must never run or values that are not tensors, cast on read, and sharded with an index that lies. (Each
was a surviving mutant of `make mutation` in `interop.files.read_pickle` / `_read_index`.)"""

import json
import shutil

import pytest
import torch
import torch.serialization
from safetensors.torch import load_file

import genzoo
from genzoo import CheckpointError
from genzoo.interop.files import read_pickle


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory):
    """A llama-tiny directory whose weights are a (zip-format) pytorch_model.bin."""
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("bin")
    genzoo.save(genzoo.build("llama-tiny"), d)
    torch.save(load_file(d / "model.safetensors"), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()
    return d


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_a_checkpoint_saved_on_a_gpu_loads_onto_the_cpu(bin_dir, tmp_path, monkeypatch, zip_format):
    """torch.save records each storage's device; a file written from CUDA tensors names cuda:0, which a CPU-only
    machine cannot restore unless the reader maps it to the CPU."""
    d = _copy(bin_dir, tmp_path / "d")
    state = torch.load(bin_dir / "pytorch_model.bin", weights_only=True)
    with monkeypatch.context() as m:  # what torch.save records for a CUDA tensor
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(state, d / "pytorch_model.bin", _use_new_zipfile_serialization=zip_format)
    got = genzoo.load(d)
    assert {p.device.type for p in got.state_dict().values()} == {"cpu"}
    want = genzoo.load(bin_dir).state_dict()
    assert all(torch.equal(v, want[k]) for k, v in got.state_dict().items())


class _Payload:
    """Unpickling this creates a file: proof that the pickle's code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_code_in_a_pickle_checkpoint_is_refused_and_never_run(bin_dir, tmp_path, zip_format):
    d = _copy(bin_dir, tmp_path / "d")
    marker = tmp_path / "ran"
    torch.save({"model.norm.weight": torch.ones(64), "x": _Payload(marker)}, d / "pytorch_model.bin",
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError) as e:
        genzoo.load(d)
    assert "pytorch_model.bin" in str(e.value) and "weights_only=True" in str(e.value)
    assert "io.open" in str(e.value)  # the reason: the global the file wanted to call
    assert not marker.exists(), "the checkpoint's pickled code ran"


@pytest.mark.parametrize("state", [{"w": torch.ones(2), "step": 3}, [torch.ones(2)], {0: torch.ones(2)}],
                         ids=["non-tensor-value", "list", "int-key"])
def test_a_pickle_that_is_not_a_dict_of_named_tensors_is_refused(tmp_path, state):
    f = tmp_path / "pytorch_model.bin"
    torch.save(state, f)
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin: expected a dict of tensors"):
        read_pickle(f)


def test_cast_converts_floating_tensors_only(tmp_path):
    f = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.randn(3, 4), "ids": torch.arange(5), "mask": torch.tensor([True, False])}, f)
    plain = read_pickle(f)
    assert plain["w"].dtype == torch.float32
    cast = read_pickle(f, cast=torch.bfloat16)
    assert cast["w"].dtype == torch.bfloat16 and torch.equal(cast["w"], plain["w"].to(torch.bfloat16))
    assert cast["ids"].dtype == torch.int64 and torch.equal(cast["ids"], torch.arange(5))
    assert cast["mask"].dtype == torch.bool


def test_an_index_key_missing_from_its_shard_is_named(bin_dir, tmp_path):
    d = _copy(bin_dir, tmp_path / "d")
    (d / "pytorch_model.bin").rename(d / "pytorch_model-00001-of-00001.bin")
    weights = torch.load(d / "pytorch_model-00001-of-00001.bin", weights_only=True)
    weight_map = {k: "pytorch_model-00001-of-00001.bin" for k in weights}
    weight_map["model.layers.9.mlp.up_proj.weight"] = "pytorch_model-00001-of-00001.bin"  # a key no shard holds
    (d / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(CheckpointError) as e:
        genzoo.load(d)
    msg = str(e.value)
    assert "pytorch_model.bin.index.json" in msg and "absent from their shards" in msg
    assert "model.layers.9.mlp.up_proj.weight" in msg
