"""Timing helpers shared by the benchmarks: where a figure was measured (`header`: CPU model, cores, torch threads,
torch version, load average, a warning when the machine is busier than its cores), genzoo and the reference run
interleaved over >= 5 rounds (`compare`), and the median with the range of the rounds (`Timing`, `rate`)."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time

import torch

from ..machine import cpu_model, load_average

MIN_ROUNDS = 5  # medians and ranges over at least this many interleaved rounds (`genzoo bench`)


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


class Timing(float):
    """The median seconds of a callable over its rounds (a float, so `n / t` is a rate), with every round kept in
    the order it ran: `low` and `high` are the fastest and the slowest round."""

    times: tuple[float, ...]

    def __new__(cls, times):
        obj = super().__new__(cls, statistics.median(times))
        obj.times = tuple(times)
        return obj

    @property
    def low(self) -> float:
        return min(self.times)

    @property
    def high(self) -> float:
        return max(self.times)


def rate(t: Timing, units: float, fmt: str = ".1f") -> str:
    """'median [slowest-fastest]' units per second of a `Timing`, e.g. '412.3 [380.1-420.9]'."""
    return f"{units / t:{fmt}} [{units / t.high:{fmt}}-{units / t.low:{fmt}}]"


def speedup(ours: Timing, ref: Timing) -> tuple[float, float, float]:
    """How many times faster `ours` runs than `ref`: the ratio of the medians, and the lowest and highest ratio of
    rounds paired by position (round i of each side ran back to back, so a pair shares the machine's state)."""
    pairs = [r / o for o, r in zip(ours.times, ref.times)]
    return float(ref) / float(ours), min(pairs), max(pairs)


def ratio(ours: Timing, ref: Timing) -> str:
    """`speedup` as text: '1.23x [1.10-1.31]'."""
    mid, lo, hi = speedup(ours, ref)
    return f"{mid:.2f}x [{lo:.2f}-{hi:.2f}]"


def compare(fns: dict, repeats: int = MIN_ROUNDS, warmup: int = 1) -> dict[str, Timing]:
    """Each callable's `Timing` over `repeats` rounds, interleaved (round i runs every callable once, in turn),
    so machine noise hits every side alike. The benchmarks default to >= MIN_ROUNDS; fewer (a test of a
    benchmark's plumbing) prints a warning that the range says little."""
    if repeats < MIN_ROUNDS:
        print(f"  warning: {repeats} round(s), fewer than {MIN_ROUNDS}: the medians and ranges say little",
              file=sys.stderr)
    for f in fns.values():
        for _ in range(warmup):
            f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            times[k] += timed(f, 1)
    return {k: Timing(v) for k, v in times.items()}


def machine() -> str:
    """The machine a figure was measured on, in words: CPU model, cores, torch threads, GPU (if any), torch, the
    bf16 support `genzoo.precision` detects, the load average."""
    from ..precision import bf16_support

    parts = [f"{cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"]
    if torch.cuda.is_available():
        parts.append(torch.cuda.get_device_name())
    parts.append(f"{platform.system()}, torch {torch.__version__}")
    parts.append(f"bf16: {bf16_support('cpu').reason}")
    load = load_average()
    if load is not None:
        parts.append(f"load average {load:.2f}")
    return "; ".join(parts)


def header(title: str) -> str:
    """Print (and return) the benchmark's first lines: what it measures and where: the machine, its load, and a
    warning when the load exceeds the cores (the figures then measure the contention as much as the code)."""
    text = f"{title}\n  machine: {machine()}"
    load, cores = load_average(), os.cpu_count() or 1
    if load is not None and load > cores:
        text += (f"\n  WARNING: load average {load:.2f} exceeds the {cores} cores: other processes share the CPU, "
                 "so the figures below are noisy; compare ratios, and re-measure on an idle machine")
    print(text)
    return text


def footer() -> None:
    """The load at the end of a benchmark, to set beside the one at the start."""
    load = load_average()
    if load is not None:
        print(f"  load average at the end: {load:.2f}")


def matmul_peak_flops(n: int = 1024, seconds: float = 1.0, dtype=torch.float32, device="cpu") -> float:
    """The machine's measured dense matmul peak (FLOP/s) through torch's matmul at `dtype`: the ceiling for model
    FLOPs utilisation of the same precision."""
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


@torch.no_grad()
def linear_floor(model: torch.nn.Module, batch: int, repeats: int = 20, skip=None) -> float:
    """Seconds of one decoding step's matrix products alone: `F.linear` of a (batch, in) input with every
    `nn.Linear` weight of `model` in turn, median of `repeats` passes. At small batch a decoding step reads every
    weight once and does little else, so this is the memory-bound floor any implementation built on torch's own
    matmul pays per step on this machine (a roofline measured, not assumed: `batch / floor` tokens/s is the
    ceiling of both genzoo and transformers). skip(name) -> True leaves a layer out: one a decoding step does not
    run (an encoder, cross-attention keys and values projected once per generate)."""
    weights = [m.weight for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and not (skip and skip(name))]
    if not weights:
        raise ValueError("linear_floor: the model has no nn.Linear layer")
    inputs = {w.shape[1]: torch.randn(batch, w.shape[1], dtype=w.dtype, device=w.device) for w in weights}

    def one_step():
        for w in weights:
            torch.nn.functional.linear(inputs[w.shape[1]], w)

    one_step()
    return statistics.median(timed(one_step, repeats))


def hf_twin(model, auto_class: str = "AutoModelForCausalLM"):
    """The same weights as a `transformers` model: saved by genzoo, loaded by `transformers.<auto_class>` with
    its default attention (SDPA where the architecture has it, eager otherwise, as for DeBERTa)."""
    import genzoo

    tf = require_transformers()
    with tempfile.TemporaryDirectory() as d:
        genzoo.save(model, d)
        return getattr(tf, auto_class).from_pretrained(d).eval()
