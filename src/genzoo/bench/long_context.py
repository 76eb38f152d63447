"""`genzoo bench long-context`: the peak memory and time of one ModernBERT forward pass at long context (batch 1,
T = 4096 and 8192 by default), genzoo vs `transformers`' ModernBertModel (SDPA) on the same weights.

genzoo runs ModernBERT's local layers (window 128) as banded attention (`nn.banded`: T * window scores) and its
global layers through SDPA without a mask; `transformers` builds dense T x T masks (global and sliding) and runs
every layer over all T keys. Each forward runs in a fresh process, which loads the model and then reads its peak
resident memory (`VmHWM` in /proc/self/status) before and after the forward: the growth is the forward's
activation peak, the total is what the machine must hold. Inference (torch.inference_mode). Linux only.

`n_layers` shortens the stack for a quick measurement: an inference forward frees each layer's activations before
the next, so the activation peak of a few layers (at least one global and one local) is that of the full stack,
while the time scales with the layers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import BENCHMARKS
from .common import footer, header, require_transformers

# argv = [kind, directory, T, batch]; prints {"load_rss": bytes, "growth": bytes, "peak": bytes, "seconds": s}
_CHILD = r"""
import json, sys, time
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
kind, path, t, b = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import torch, genzoo
if kind == "genzoo":
    model = genzoo.load(path).eval()
    run = lambda ids: model(ids).last_hidden_state
else:
    import transformers
    transformers.logging.set_verbosity_error()
    model = transformers.AutoModel.from_pretrained(path).eval()
    run = lambda ids: model(input_ids=ids).last_hidden_state
ids = torch.randint(5, 50000, (b, t), generator=torch.Generator().manual_seed(0))
with torch.inference_mode():
    run(ids[:, :256])  # one short forward first: kernels and allocator warmed, not counted
    before = hwm()
    start = time.perf_counter()
    out = run(ids)
    seconds = time.perf_counter() - start
print(json.dumps({"load_rss": before, "growth": hwm() - before, "peak": hwm(), "seconds": seconds,
                  "finite": bool(torch.isfinite(out).all())}))
"""


def measure_forward(directory: str | Path, kind: str, t: int, batch: int = 1, timeout: float = 3600) -> dict:
    """One forward of length t in a fresh process with genzoo ("genzoo") or transformers ("transformers")."""
    src = str(Path(__file__).resolve().parents[2])  # the genzoo this process runs, in the child too
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    out = subprocess.run([sys.executable, "-c", _CHILD, kind, str(directory), str(t), str(batch)],
                         capture_output=True, text=True, timeout=timeout, env=env)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


@BENCHMARKS.register("long-context")
def run(preset: str = "modernbert", lengths: tuple[int, ...] = (4096, 8192), batch: int = 1,
        n_layers: int | None = None, sides: tuple[str, ...] = ("genzoo", "transformers")) -> dict:
    import torch

    import genzoo

    require_transformers()
    torch.manual_seed(0)
    overrides = {} if n_layers is None else {"n_layers": n_layers}
    model = genzoo.build(preset, **overrides)
    cfg = model.config
    n = sum(p.numel() for p in model.parameters())
    header(f"long-context: {preset} ({n / 1e6:.1f}M parameters, {cfg.n_layers} layers, local window "
           f"{cfg.local_window}), batch {batch}, one inference forward per fresh process; peak RSS (GiB) and seconds")
    results = {}
    with tempfile.TemporaryDirectory() as d:
        genzoo.save(model, d)
        del model
        for t in lengths:
            row = {}
            for side in sides:
                r = measure_forward(d, side, t, batch)
                row[side] = r
                if "error" in r:
                    print(f"  T={t:5d} {side:12s} failed: {r['error']}")
                    continue
                print(f"  T={t:5d} {side:12s} peak RSS {r['peak'] / 2**30:6.2f} GiB (forward adds "
                      f"{r['growth'] / 2**30:6.2f} GiB) | {r['seconds']:7.1f} s | finite: {r['finite']}")
            if all("growth" in row.get(s, {}) for s in ("genzoo", "transformers")):
                g, h = row["genzoo"], row["transformers"]
                row["growth_ratio"] = g["growth"] / max(h["growth"], 1)
                row["seconds_ratio"] = h["seconds"] / g["seconds"]
                print(f"    genzoo / transformers: forward memory {row['growth_ratio']:.2f}x, speed "
                      f"{row['seconds_ratio']:.2f}x (one forward each: a single timing, not a median)")
            results[t] = row
    footer()
    return results
