"""GAN training under the shared loop: a run killed with SIGKILL after a checkpoint and resumed equals the
uninterrupted run (both optimisers, both schedulers, G, D, the EMA of G, batch-norm statistics, spectral-norm
vectors, RNG, data position), and what the loop refuses for a task with its own optimisers."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from genzoo.train.checkpoint import latest_checkpoint

from .common import env, genzoo as run_genzoo

K = 6
# every stabiliser on, and batch norm in D, so each kind of state must come back
SETS = ["model.preset=gan-tiny", "model.spectral_norm=true", "model.r1_gamma=0.5", "model.ema_decay=0.9",
        "model.lr_d_ratio=2.0", "model.d_steps=2", "batch_size=16", "log_every=1", "progress=false",
        f"save_every={K}", f"eval_every={K}", "warmup_steps=3", "min_lr_ratio=0.1"]


def args(extra=()):
    out = []
    for s in [*SETS, *extra]:
        out += ["--set", s]
    return out


def records(run):
    return {r["step"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r}


@pytest.mark.slow
def test_gan_sigkill_then_resume_equals_uninterrupted(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    run_genzoo("train", "gan-digits", "--out", str(full), "--steps", str(2 * K), *args())
    proc = subprocess.Popen([sys.executable, "-m", "genzoo", "train", "gan-digits", "--out", str(cut), "--steps",
                             str(2 * K), *args()], env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = cut / "checkpoints" / f"step-{K:08d}"
    deadline = time.time() + 300
    while not (ckpt / "trainer_state.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (cut / "model.safetensors").exists(), "the run finished before it could be killed"
    state = torch.load(ckpt / "trainer_state.pt", weights_only=True)
    assert set(state["optimizer"]) == set(state["scheduler"]) == {"generator", "discriminator"}
    lrs = [g["lr"] for name in ("generator", "discriminator") for g in state["optimizer"][name]["param_groups"]]
    assert lrs[1] == pytest.approx(2 * lrs[0])  # TTUR

    run_genzoo("train", "gan-digits", "--out", str(cut), "--steps", str(2 * K), "--resume", *args())
    a, b = records(full), records(cut)
    assert sorted(a) == sorted(b) == list(range(1, 2 * K + 1))
    for step in a:
        for key in ("loss", "loss_g", "penalty", "d_real", "lr"):
            assert abs(a[step][key] - b[step][key]) <= 1e-6, (step, key, a[step][key], b[step][key])
    wa, wb = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert any("generator_ema" in k for k in wa) and any("_u" in k for k in wa) and any("running_mean" in k for k in wa)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-6, rtol=0)


@pytest.mark.parametrize("extra,message", [
    (["grad_accum=2"], "grad_accum=2"),
    (["nan_policy=skip"], "nan_policy='error'"),
    (["model.loss=minimax"], "unknown GAN loss 'minimax'"),
])
def test_gan_task_refusals(tmp_path, extra, message):
    from genzoo import ConfigError
    from genzoo.train import load_recipe, train

    with pytest.raises(ConfigError, match=message):
        train(load_recipe("gan-digits", [*SETS, *extra]), tmp_path, steps=1)
    assert latest_checkpoint(tmp_path) is None
