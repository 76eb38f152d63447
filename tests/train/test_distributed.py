"""Data-parallel equivalence: two processes under torchrun (gloo, CPU) with per-rank batch b give the
same losses as one process with batch 2b (atol 1e-5); FSDP2 sharding gives them too. Only rank 0
writes files."""

import subprocess
import sys

import pytest

from .common import env, genzoo as run_genzoo, losses, sets

STEPS = 8


def torchrun(*args):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "genzoo", *args]
    r = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"torchrun failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.parametrize("fsdp", [False, True], ids=["ddp", "fsdp2"])
def test_two_ranks_equal_one_process_with_double_batch(tmp_path, fsdp):
    common = ["--steps", str(STEPS), *sets([f"save_every={STEPS}", f"eval_every={STEPS}"])]
    run_genzoo("train", "gpt-nano", "--out", str(tmp_path / "one"), *common, "--set", "batch_size=8")
    torchrun("train", "gpt-nano", "--out", str(tmp_path / "two"), *common, "--set", "batch_size=4",
             "--set", f"fsdp={str(fsdp).lower()}")
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(a) == sorted(b) == list(range(1, STEPS + 1))
    for step in a:
        assert abs(a[step] - b[step]) <= 1e-5, (step, a[step], b[step])
    # rank 0 alone wrote: one metrics line per step, one checkpoint
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == STEPS + 2  # + val at 0 and end
    assert (tmp_path / "two" / "model.safetensors").exists()


def test_clip_loss_gathers_across_ranks(tmp_path):
    """The contrastive loss on 2 ranks x 16 equals one process with 32: features are gathered across ranks."""
    common = ["--steps", "4", "--set", "log_every=1", "--set", "progress=false", "--set", "eval_every=4",
              "--set", "save_every=4", "--set", "warmup_steps=2"]
    run_genzoo("train", "clip-digits", "--out", str(tmp_path / "one"), *common, "--set", "batch_size=32")
    torchrun("train", "clip-digits", "--out", str(tmp_path / "two"), *common, "--set", "batch_size=16")
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for step in a:
        assert abs(a[step] - b[step]) <= 1e-5, (step, a[step], b[step])
