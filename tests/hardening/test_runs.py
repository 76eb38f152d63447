"""What a run does with its directory, beyond refusals: a resume records the recipe changes it may make, --force
continues a refused one and says so, weights get the umask's mode like every other file, a fresh start into a run
without checkpoints retrains its tokenizer, and the lock is the kernel's (released at exit, however it exits)."""

import json
import os
import subprocess
import sys

import yaml

import genzoo
from genzoo.rundir import LOCK, MARKER, RunLock, is_run, read_marker

from .harness import run_cli, sets


def train(*args):
    rc, out, err = run_cli(["train", "gpt-nano", *map(str, args)])
    assert rc == 0, err
    return out, err


def records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_resume_records_changes_and_force_continues(tmp_path):
    run = tmp_path / "run"
    train("--out", run, "--steps", "2", *sets(["save_every=2"]))
    assert is_run(run) and read_marker(run)["final"] == 2
    train("--out", run, "--steps", "3", "--resume", *sets(["save_every=2", "lr=1e-3", "eval_every=3"]))
    change = [r for r in records(run) if "recipe_change" in r]
    assert change == [{"step": 2, "recipe_change": {"eval_every": [125, 3], "lr": [0.003, 0.001], "steps": [2, 3]}}]
    assert yaml.safe_load((run / "recipe.yaml").read_text())["lr"] == 1e-3  # recipe.yaml describes the weights
    assert [r["step"] for r in records(run) if "loss" in r] == [1, 2, 3]
    train("--out", run, "--steps", "4", "--resume", "--force", *sets(["save_every=2", "lr=1e-3", "eval_every=3",
                                                                       "seed=5"]))
    forced = [r for r in records(run) if r.get("forced")]
    assert forced and forced[0]["recipe_change"]["seed"] == [1337, 5] and forced[0]["step"] == 3
    assert read_marker(run)["final"] == 4


def test_weights_get_the_umask_mode_like_every_other_file(tmp_path):
    old = os.umask(0o027)
    try:
        genzoo.save(genzoo.build("llama-tiny"), tmp_path / "m")
        genzoo.save(genzoo.build("llama-tiny"), tmp_path / "s", max_shard_bytes=50000)
        genzoo.save(genzoo.build("ddpm-unet2d-tiny"), tmp_path / "d", format="diffusers")
        from genzoo.fuse.shards import _write

        _write(tmp_path / "f" / "shard-00000.safetensors", {"x": genzoo.build("llama-tiny").embed.weight.detach()})
    finally:
        os.umask(old)
    modes = {str(p.relative_to(tmp_path)): p.stat().st_mode & 0o777 for d in ("m", "s", "d", "f")
             for p in (tmp_path / d).rglob("*") if p.is_file()}
    assert "d/unet/diffusion_pytorch_model.safetensors" in modes and "f/shard-00000.safetensors" in modes
    assert len(modes) > 4 and set(modes.values()) == {0o640}, modes


def test_a_fresh_start_into_a_run_without_checkpoints_starts_over(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / MARKER).write_text('{"genzoo_run": 1, "final": null}')
    (run / "tokenizer.json").write_text("{}")  # what a start killed before its first checkpoint left
    (run / "metrics.jsonl").write_text('{"step": 0, "val_loss": 9.0}\n')
    train("--out", run, "--steps", "1", *sets())
    assert json.loads((run / "tokenizer.json").read_text())["model"]["type"] == "BPE"  # retrained
    assert [r["step"] for r in records(run)].count(0) == 1


def test_the_lock_goes_with_its_process_however_it_ends(tmp_path):
    (tmp_path / "run").mkdir()
    code = ("import os, signal, sys; sys.path.insert(0, sys.argv[2]); from genzoo.rundir import RunLock; "
            "RunLock(sys.argv[1]).acquire(); os.kill(os.getpid(), signal.SIGKILL)")
    src = os.path.dirname(os.path.dirname(genzoo.__file__))
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run"), src], capture_output=True)
    assert r.returncode == -9
    holder = json.loads((tmp_path / "run" / LOCK).read_text())["pid"]
    assert isinstance(holder, int) and holder != os.getpid()  # the killed process wrote itself in
    with RunLock(tmp_path / "run"):  # a killed holder's lock is free at once: never stale
        pass
