"""Training many small runs for an experiment through the shared loop, side by side in worker processes of one
thread each (small models: two one-thread processes on two cores beat one two-thread process), or in this process
(workers=0, the test suite). A run whose final model exists is not trained again."""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch


def _one_thread():
    torch.set_num_threads(1)


def train_run(job: tuple[str, list[str], str, int | None]) -> tuple[list[dict], float]:
    """(recipe name, --set overrides, run directory, steps) -> (its metrics.jsonl records, CPU seconds spent)."""
    from ..train import load_recipe, train

    recipe_name, sets, out, steps = job
    out = Path(out)
    cpu = time.process_time()
    if not (out / "model.safetensors").exists():
        train(load_recipe(recipe_name, ["progress=false", *sets]), out, steps=steps)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return records, time.process_time() - cpu


def train_many(jobs: dict, workers: int) -> tuple[dict, dict]:
    """jobs {key: (recipe, sets, out, steps)}, longest first -> ({key: records}, {key: CPU seconds})."""
    if workers > 0:
        with ProcessPoolExecutor(max_workers=workers, initializer=_one_thread) as pool:
            futures = {k: pool.submit(train_run, (r, list(s), str(o), st)) for k, (r, s, o, st) in jobs.items()}
            done = {k: f.result() for k, f in futures.items()}
    else:
        done = {k: train_run((r, list(s), str(o), st)) for k, (r, s, o, st) in jobs.items()}
    return {k: v[0] for k, v in done.items()}, {k: round(v[1], 1) for k, v in done.items()}
