"""Exact resume with dropout off: a run stopped at step N and resumed to 2N equals the uninterrupted 2N-step run
bitwise (every loss, every final parameter). With no dropout nothing random happens after initialisation, so
a mismatch can only come from state that resume fails to restore (optimizer moments, scheduler step, data
position, weights), not from the RNG (test_resume.py covers that, with dropout on).

The learning-rate schedule depends on the run's total steps (cosine decay to `steps`), so a run of N steps and one
of 2N would differ from step 1; a warmup longer than the run makes the multiplier depend on the step alone."""

import yaml
import torch
from safetensors.torch import load_file

from genzoo.train.checkpoint import latest_checkpoint

from .common import genzoo as run_genzoo, losses, sets

N = 4
EXTRA = ["model.dropout=0.0", "warmup_steps=100", f"save_every={N}", f"eval_every={N}", "grad_accum=2"]


def test_stop_at_n_then_resume_to_2n_is_bitwise_uninterrupted(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    run_genzoo("train", "gpt-nano", "--out", str(full), "--steps", str(2 * N), *sets(EXTRA))
    run_genzoo("train", "gpt-nano", "--out", str(cut), "--steps", str(N), *sets(EXTRA))
    recipe = yaml.safe_load((cut / "recipe.yaml").read_text())
    assert recipe["model"]["dropout"] == 0.0 and recipe["warmup_steps"] == 100
    assert latest_checkpoint(cut).name == f"step-{N:08d}"
    stopped = load_file(cut / "model.safetensors")

    run_genzoo("train", "gpt-nano", "--out", str(cut), "--steps", str(2 * N), "--resume", *sets(EXTRA))
    assert latest_checkpoint(cut).name == f"step-{2 * N:08d}"
    a, b = losses(full), losses(cut)
    assert sorted(a) == sorted(b) == list(range(1, 2 * N + 1))
    assert a == b, {s: (a[s], b[s]) for s in a if a[s] != b[s]}  # bitwise: the same floats in metrics.jsonl

    wa, wb = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert wa.keys() == wb.keys()
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, f"parameters differ after resume: {differ}"
    assert any(not torch.equal(stopped[k], wb[k]) for k in wb), "the resumed run did not train"
