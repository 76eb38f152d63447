"""`genzoo.save` onto an existing directory is atomic: a save that fails midway (the weights half written, one
shard of several written, a tokenizer hook raising) leaves the old directory byte-identical and loadable, with no
temporary directory left beside it; a save that succeeds never writes into the old directory's files (a hard link
to an old file keeps the old bytes)."""

import os
from pathlib import Path

import pytest
import torch

import genzoo
import genzoo.interop as interop


class Boom(RuntimeError):
    pass


def snapshot(d):
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def tiny(seed):
    torch.manual_seed(seed)
    return genzoo.build("llama-tiny", n_layers=1, d_model=32, n_heads=4, n_kv_heads=2, d_ff=64, vocab_size=97).eval()


def assert_weights(model, reference):
    want = reference.state_dict()
    got = model.state_dict()
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k


@pytest.fixture
def saved(tmp_path):
    parent = tmp_path / "parent"
    parent.mkdir()
    old = tiny(0)
    target = parent / "model"
    genzoo.save(old, target)
    return parent, target, old, snapshot(target)


def assert_untouched(parent, target, old, before):
    assert sorted(p.name for p in parent.iterdir()) == ["model"], "a temporary directory was left behind"
    assert target.is_dir()
    assert snapshot(target) == before, "the old directory changed"
    assert_weights(genzoo.load(target), old)


def half_writing_save_file(real, fail_on_call=1):
    """A save_file that writes the first calls, then writes half a file and raises (a full disk, a kill)."""
    calls = []

    def fake(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) < fail_on_call:
            return real(tensors, filename, metadata=metadata)
        real(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as f:
            f.truncate(os.path.getsize(filename) // 2)
        raise Boom("disk full")

    return fake, calls


def test_failed_save_leaves_old_directory_identical(saved, monkeypatch):
    parent, target, old, before = saved
    fake, calls = half_writing_save_file(interop.save_file)
    monkeypatch.setattr(interop, "save_file", fake)
    with pytest.raises(Boom):
        genzoo.save(tiny(1), target)
    assert calls, "the patched save_file was not used: the test does not exercise the failure"
    assert all(Path(c).parent.resolve() != target.resolve() for c in calls), "weights written into the target"
    assert_untouched(parent, target, old, before)


def test_failed_sharded_save_leaves_old_directory_identical(saved, monkeypatch):
    parent, target, old, before = saved
    fake, calls = half_writing_save_file(interop.save_file, fail_on_call=3)
    monkeypatch.setattr(interop, "save_file", fake)
    with pytest.raises(Boom):
        genzoo.save(tiny(1), target, max_shard_bytes=20_000)
    assert len(calls) == 3, calls  # two shards written whole, the third half
    assert_untouched(parent, target, old, before)


def test_failing_extra_files_hook_leaves_old_directory_identical(saved):
    parent, target, old, before = saved

    def hook(tmp):
        (tmp / "tokenizer.json").write_text("{")
        raise Boom("tokenizer failed")

    with pytest.raises(Boom):
        genzoo.save(tiny(1), target, extra_files=hook)
    assert_untouched(parent, target, old, before)


def test_successful_save_replaces_files_never_rewrites_them(saved, tmp_path):
    parent, target, old, before = saved
    keep = tmp_path / "kept"
    keep.mkdir()
    for name in before:  # hard links see any write made into the old files
        os.link(target / name, keep / name)
    new = tiny(1)
    genzoo.save(new, target)
    assert snapshot(keep) == before, "the save wrote into the old directory's files in place"
    assert sorted(p.name for p in parent.iterdir()) == ["model"], "a temporary or old directory was left behind"
    after = snapshot(target)
    assert after["model.safetensors"] != before["model.safetensors"]
    assert_weights(genzoo.load(target), new)


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    fake, _ = half_writing_save_file(interop.save_file)
    monkeypatch.setattr(interop, "save_file", fake)
    with pytest.raises(Boom):
        genzoo.save(tiny(0), tmp_path / "model")
    assert list(tmp_path.iterdir()) == [], "a failed first save left a directory behind"
