"""Timing helpers shared by the benchmarks: medians over alternating repeats, the matmul peak."""

from __future__ import annotations

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
    """The machine's measured dense matmul peak (FLOP/s), the ceiling for model FLOPs utilisation: the best of
    torch's matmul and, on CPU, the oneDNN kernel genzoo's `Linear` uses (faster than BLAS on some machines)."""
    from ..nn.linear import _OP, onednn_ok

    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    kernels = [lambda: a @ b]
    with torch.no_grad():
        if onednn_ok(a, b):
            kernels.append(lambda: _OP(a, b, None, "none", [], ""))
    best = 0.0
    for kernel in kernels:
        kernel()
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t = time.perf_counter()
            kernel()
            if device != "cpu":
                torch.cuda.synchronize()
            best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def hf_twin(model, auto_class: str = "AutoModelForCausalLM"):
    """The same weights as a `transformers` model: saved by genzoo, loaded by `transformers.<auto_class>` with
    its default attention (SDPA where the architecture has it, eager otherwise, as for DeBERTa)."""
    import genzoo

    tf = require_transformers()
    with tempfile.TemporaryDirectory() as d:
        genzoo.save(model, d)
        return getattr(tf, auto_class).from_pretrained(d).eval()
