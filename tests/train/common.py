"""Small, fast training settings shared by the training tests (real data: the stdlib corpus)."""

import json
import os
import subprocess
import sys
from pathlib import Path

SMALL = [
    "data.max_bytes=300000", "data.vocab_size=384", "data.block_size=32", "batch_size=8",
    "model.d_model=64", "model.n_layers=2", "model.n_heads=4", "model.d_ff=128",
    "eval_batches=2", "log_every=1", "warmup_steps=5", "lr=3e-3", "progress=false",
]


def sets(extra=()):
    out = []
    for s in [*SMALL, *extra]:
        out += ["--set", s]
    return out


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src") + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("OMP_NUM_THREADS", "1")
    return e


def genzoo(*args, check=True, **kw):
    r = subprocess.run([sys.executable, "-m", "genzoo", *args], capture_output=True, text=True, env=env(), **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"genzoo {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def losses(run: Path) -> dict[int, float]:
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in recs if "loss" in r}
