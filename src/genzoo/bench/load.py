"""`genzoo bench load`: the memory and time of loading a checkpoint, `genzoo.load` vs `transformers`'
`from_pretrained`, on the same directory (the gpt2 preset saved by `genzoo.save`: 475 MiB of fp32 safetensors).

Each load runs in a fresh process, which imports torch, genzoo and the transformers model class first and then
reads its peak resident memory (`VmHWM` in /proc/self/status) before and after the load: the growth, divided by
the size of the weight files, is the figure (1.0x: the load holds one copy of the weights; above: a second copy,
or random initialisation, on the way). A memory-mapped tensor counts only once its pages are touched, so a loader
that maps the file and touches nothing measures near 0; the first forward pass then reads the weights in. The
seconds are the median of `repeats` fresh processes per side. Linux only (it reads /proc).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from . import BENCHMARKS
from .common import MIN_ROUNDS, footer, header, require_transformers

# run in a fresh interpreter: argv = [kind, directory, dtype name or ""]; prints {"growth": bytes, "seconds": s}
_CHILD = r"""
import json, sys, time
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
kind, path, dtype = sys.argv[1:4]
import torch, genzoo
import torch._dynamo  # imported by torch's meta-device decompositions on the first build; `import genzoo` no longer
                      # imports it, so import it here, outside the measured window (a module, not a copy of weights)
if kind == "genzoo":
    load = (lambda p: genzoo.load(p, dtype=getattr(torch, dtype))) if dtype else genzoo.load
else:
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    load = getattr(transformers, kind).from_pretrained  # the class (and its module) imported before measuring
before = hwm()
t = time.perf_counter()
model = load(path)
seconds = time.perf_counter() - t
print(json.dumps({"growth": hwm() - before, "seconds": seconds}))
"""


def weight_bytes(directory: str | Path) -> int:
    """The size on disk of a directory's weight files."""
    return sum(f.stat().st_size for f in Path(directory).iterdir()
               if f.name.endswith((".safetensors", ".bin")) and f.is_file())


def measure_load(directory: str | Path, kind: str = "genzoo", dtype: str = "", timeout: float = 600) -> dict:
    """Load `directory` in a fresh process with `genzoo.load` (kind="genzoo", with `dtype=torch.<dtype>` when
    given) or `transformers.<kind>.from_pretrained` -> {"growth": peak RSS growth in bytes, "seconds": load
    seconds, "ratio": growth / size of the weight files}."""
    src = str(Path(__file__).resolve().parents[2])  # the genzoo this process runs, in the child too
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    out = subprocess.run([sys.executable, "-c", _CHILD, kind, str(directory), dtype], capture_output=True,
                         text=True, timeout=timeout, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"loading {directory} with {kind} failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["ratio"] = result["growth"] / weight_bytes(directory)
    return result


@BENCHMARKS.register("load")
def run(preset: str = "gpt2", reference: str = "GPT2LMHeadModel", repeats: int = MIN_ROUNDS) -> dict:
    import torch

    import genzoo

    require_transformers()
    torch.manual_seed(0)
    model = genzoo.build(preset)
    n = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as d:
        genzoo.save(model, d)
        del model
        size = weight_bytes(d)
        header(f"load: {preset} ({n / 1e6:.1f}M parameters), {size / 2**20:.0f} MiB of weights on disk, a fresh "
               f"process per load, {repeats} per side, interleaved; seconds: median [fastest-slowest]")
        runs = {"genzoo": [], "transformers": []}
        for _ in range(repeats):  # alternating, so machine noise hits both sides alike
            runs["genzoo"].append(measure_load(d, "genzoo"))
            runs["transformers"].append(measure_load(d, reference))
    results = {}
    names = {"genzoo": "genzoo.load", "transformers": f"transformers {reference}.from_pretrained"}
    for k, rs in runs.items():
        growth = max(r["growth"] for r in rs)
        seconds = statistics.median(r["seconds"] for r in rs)
        lo, hi = min(r["seconds"] for r in rs), max(r["seconds"] for r in rs)
        results[k] = {"growth_bytes": growth, "ratio_to_file": growth / size, "seconds": seconds,
                      "seconds_range": (lo, hi)}
        print(f"  {names[k]:44s} peak RSS growth {growth / 2**20:7.1f} MiB = {growth / size:.2f}x the weights | "
              f"{seconds:.2f} s [{lo:.2f}-{hi:.2f}]")
    g, t = results["genzoo"], results["transformers"]
    results["seconds_ratio"] = g["seconds"] / t["seconds"]
    print(f"  genzoo / transformers: memory growth {g['growth_bytes'] / max(t['growth_bytes'], 1):.2f}x, "
          f"load time {results['seconds_ratio']:.2f}x")
    footer()
    return results
