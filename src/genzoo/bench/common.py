"""Timing helpers shared by the benchmarks: medians over alternating repeats, the matmul peak, the machine."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time

import torch


def require_transformers():
    try:
        import transformers
    except ImportError:
        raise SystemExit("this benchmark needs transformers: pip install 'genzoo[bench]'") from None
    transformers.logging.set_verbosity_error()
    return transformers


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def compare(fns: dict, repeats: int = 3, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each callable, runs interleaved so machine noise hits every side alike."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            times[k] += timed(f, 1)
    return {k: statistics.median(v) for k, v in times.items()}


def matmul_peak_flops(n: int = 1024, seconds: float = 1.0, dtype=torch.float32, device="cpu") -> float:
    """The machine's measured dense matmul peak (FLOP/s) through torch's matmul: the ceiling for model FLOPs
    utilisation."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    a @ b
    best = 0.0
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def machine() -> str:
    """The machine a figure was measured on, in words: CPU model, cores, torch threads, GPU (if any), torch."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    parts = [f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"]
    if torch.cuda.is_available():
        parts.append(torch.cuda.get_device_name())
    parts.append(f"{platform.system()}, torch {torch.__version__}")
    return "; ".join(parts)


def hf_twin(model, auto_class: str = "AutoModelForCausalLM"):
    """The same weights as a `transformers` model: saved by genzoo, loaded by `transformers.<auto_class>` with
    its default attention (SDPA where the architecture has it, eager otherwise, as for DeBERTa)."""
    import genzoo

    tf = require_transformers()
    with tempfile.TemporaryDirectory() as d:
        genzoo.save(model, d)
        return getattr(tf, auto_class).from_pretrained(d).eval()
