"""Exact resume: a run killed with SIGKILL after its checkpoint and resumed equals the uninterrupted
run (losses and final parameters, atol 1e-6). A kill during a save leaves the previous checkpoint
loadable, and --resume never picks the partial one."""

import signal
import subprocess
import sys
import textwrap
import time

import torch
from safetensors.torch import load_file

import genzoo
from genzoo.train.checkpoint import latest_checkpoint

from .common import env, genzoo as run_genzoo, losses, sets

K = 12
# dropout makes the run depend on the RNG state, so resume must restore it
EXTRA = ["model.dropout=0.1", f"save_every={K}", f"eval_every={K}", "grad_accum=2"]


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    run_genzoo("train", "gpt-nano", "--out", str(full), "--steps", str(2 * K), *sets(EXTRA))

    cmd = [sys.executable, "-m", "genzoo", "train", "gpt-nano", "--out", str(cut), "--steps", str(2 * K), *sets(EXTRA)]
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = cut / "checkpoints" / f"step-{K:08d}"
    deadline = time.time() + 300
    while not (ckpt / "trainer_state.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (cut / "model.safetensors").exists(), "the run finished before it could be killed"

    run_genzoo("train", "gpt-nano", "--out", str(cut), "--steps", str(2 * K), "--resume", *sets(EXTRA))
    a, b = losses(full), losses(cut)
    assert sorted(a) == sorted(b) == list(range(1, 2 * K + 1))
    for step in a:
        assert abs(a[step] - b[step]) <= 1e-6, (step, a[step], b[step])
    wa, wb = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-6, rtol=0)


KILLER = textwrap.dedent("""
    import os, signal, sys
    import genzoo.interop as interop
    write = interop._write_tensors
    def killed_mid_save(directory, tensors, max_shard_bytes):
        write(directory, tensors, max_shard_bytes)
        if "step-{step:08d}" in directory.name:  # weights written, the save not yet complete
            os.kill(os.getpid(), signal.SIGKILL)
    interop._write_tensors = killed_mid_save
    from genzoo.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_kill_during_save_keeps_previous_checkpoint(tmp_path):
    run = tmp_path / "run"
    script = tmp_path / "killer.py"
    script.write_text(KILLER.format(step=2 * K))
    r = subprocess.run([sys.executable, str(script), "train", "gpt-nano", "--out", str(run), "--steps", str(3 * K),
                        *sets(EXTRA)], env=env(), capture_output=True, text=True)
    assert r.returncode == -signal.SIGKILL, r.stderr
    partial = [p.name for p in (run / "checkpoints").iterdir() if ".tmp-" in p.name]
    assert partial, "the kill should have left a partial checkpoint behind"
    latest = latest_checkpoint(run)
    assert latest.name == f"step-{K:08d}"
    model = genzoo.load(run)  # no final model yet: loads the latest complete checkpoint
    assert model.config.n_layers == 2

    r = run_genzoo("train", "gpt-nano", "--out", str(run), "--steps", str(3 * K), "--resume", *sets(EXTRA))
    assert losses(run).keys() == set(range(1, 3 * K + 1))
    assert not [p for p in (run / "checkpoints").iterdir() if ".tmp-" in p.name], "partial checkpoint not cleaned"
    assert latest_checkpoint(run).name == f"step-{3 * K:08d}"


EXPORT_KILLER = textwrap.dedent("""
    import os, signal, sys
    real = os.replace
    def killed_mid_export(src, dst, *args, **kwargs):
        real(src, dst, *args, **kwargs)
        if ".final.tmp-" in str(src) and str(dst).endswith("model.safetensors"):  # the export's weights moved
            os.kill(os.getpid(), signal.SIGKILL)
    os.replace = killed_mid_export
    from genzoo.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_kill_inside_the_final_export_then_resume_equals_uninterrupted(tmp_path):
    """A SIGKILL after the weights of the final export reach the top of the run: genzoo.load(run) says the export
    did not complete and loads the last checkpoint (the same weights); --resume writes the export again, bitwise
    equal to the uninterrupted run's."""
    import pytest

    from genzoo.errors import GenzooWarning

    full, cut = tmp_path / "full", tmp_path / "cut"
    extra = sets(["save_every=4", "eval_every=4"])
    run_genzoo("train", "gpt-nano", "--out", str(full), "--steps", "4", *extra)
    script = tmp_path / "killer.py"
    script.write_text(EXPORT_KILLER)
    r = subprocess.run([sys.executable, str(script), "train", "gpt-nano", "--out", str(cut), "--steps", "4", *extra],
                       env=env(), capture_output=True, text=True)
    assert r.returncode == -signal.SIGKILL, r.stderr
    with pytest.warns(GenzooWarning, match="final export did not complete"):
        model = genzoo.load(cut)
    want = genzoo.load(full).state_dict()
    assert all(torch.equal(v, want[k]) for k, v in model.state_dict().items())
    run_genzoo("train", "gpt-nano", "--out", str(cut), "--steps", "4", "--resume", *extra)
    wa, wb = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert losses(full) == losses(cut)
    assert not [p for p in cut.iterdir() if ".tmp-" in p.name], "the killed export's directory was not cleaned"


def test_resume_without_checkpoint_and_overwrite_are_refused(tmp_path):
    r = run_genzoo("train", "gpt-nano", "--out", str(tmp_path / "r"), "--resume", *sets(), check=False)
    assert r.returncode == 1 and "nothing to resume: not a genzoo run directory" in r.stderr
    assert not (tmp_path / "r").exists()
    run_genzoo("train", "gpt-nano", "--out", str(tmp_path / "r"), "--steps", "2", *sets())
    r = run_genzoo("train", "gpt-nano", "--out", str(tmp_path / "r"), "--steps", "2", *sets(), check=False)
    assert r.returncode == 1 and "already has checkpoints" in r.stderr


def test_trainer_state_loads_with_weights_only(tmp_path):
    run_genzoo("train", "gpt-nano", "--out", str(tmp_path / "r"), "--steps", "3", *sets(["save_every=3"]))
    state = torch.load(latest_checkpoint(tmp_path / "r") / "trainer_state.pt", weights_only=True)
    assert state["step"] == 3 and state["data"]["position"] == 3 * 8
    assert {"optimizer", "scheduler", "rng"} <= state.keys()
    assert isinstance(state["rng"]["torch"], torch.Tensor)
