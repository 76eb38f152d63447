"""`genzoo bench gemv`: the single-row product of decoding at batch 1, on weights that are not in cache.

For each weight shape of llama-25m (the `bench decode` model) it cycles through enough distinct weights to
exceed the last-level cache, as a decoding step does (each weight is read once per token), and prints the rate
at which each kernel streams the weight (GB/s): `genzoo.nn.linear.gemv`, `F.linear` (what `transformers` calls),
oneDNN's linear primitive, and a plain sum over the weight (a bound on streaming it). The ratio is gemv / F.linear.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from . import BENCHMARKS

# llama-25m's projections: q/o, k/v, gate/up, down, LM head, as (out, in)
SHAPES = ((512, 512), (256, 512), (1536, 512), (512, 1536), (8192, 512))


def _rate(fn, weights, repeats: int) -> float:
    """Median GB/s of fn(w) over passes through all the weights."""
    times = []
    for i in range(repeats + 1):  # the first pass warms up
        t = time.perf_counter()
        for w in weights:
            fn(w)
        if i:
            times.append(time.perf_counter() - t)
    return sum(w.numel() * w.element_size() for w in weights) / statistics.median(times) / 1e9


@BENCHMARKS.register("gemv")
def run(stream_mb: int = 256, repeats: int = 5) -> dict:
    from ..nn.linear import _OP, gemv

    print(f"gemv: one row x W^T on weights cycled through {stream_mb} MB (beyond the cache), fp32, "
          f"{torch.get_num_threads()} threads; GB/s of weight streamed")
    results = {}
    with torch.inference_mode():
        for out, d in SHAPES:
            n = max(2, stream_mb * 2**20 // (out * d * 4))
            weights = [torch.randn(out, d) for _ in range(n)]
            x = torch.randn(1, d)
            kernels = {"gemv": lambda w: gemv(x, w), "F.linear": lambda w: F.linear(x, w)}
            if _OP is not None and torch.backends.mkldnn.is_available():
                kernels["oneDNN"] = lambda w: _OP(x, w, None, "none", [], "")
            kernels["sum"] = lambda w: w.sum()
            rates = {k: _rate(f, weights, repeats) for k, f in kernels.items()}
            ratio = rates["gemv"] / rates["F.linear"]
            print(f"  ({out:5d}, {d:5d}): " + " | ".join(f"{k} {v:5.1f}" for k, v in rates.items())
                  + f" | gemv / F.linear {ratio:.2f}x")
            results[f"{out}x{d}"] = {**rates, "ratio": ratio}
            del weights
    return results
