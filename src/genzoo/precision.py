"""Which precision a machine runs fast: bf16 where the hardware has bf16 arithmetic, detected, never assumed.

- CPU: the flags the kernel reports in /proc/cpuinfo: ``amx_bf16`` (Intel AMX tiles, Sapphire Rapids and later)
  or ``avx512_bf16`` (AVX-512 BF16 dot products: Cooper Lake, AMD Zen 4 and later). oneDNN runs bf16 matmuls on
  these natively; without them bf16 is emulated through fp32 and is slower than fp32.
- CUDA: `torch.cuda.is_bf16_supported()` (compute capability 8.0 and later).

`resolve_precision("auto" | "fp32" | "bf16", device)` is what training, evaluation and the benchmarks use: "auto"
is bf16 autocast where supported and fp32 elsewhere; "bf16" where unsupported is a ConfigError. Master weights
stay fp32 either way (autocast runs the matmuls in bf16). The environment variable GENZOO_PRECISION ("fp32" or
"bf16") decides what "auto" means instead, for runs whose numerics must not depend on the CPU they land on (the
test suite pins fp32 in tests/conftest.py; its bf16 tests ask for bf16 by name).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch

from .errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class Support:
    supported: bool
    reason: str  # what was detected, in words


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU feature flags of /proc/cpuinfo (or of the text given); empty where there is none."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):  # x86: flags; arm64: Features
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_bf16(flags: set[str]) -> Support:
    """bf16 support from a set of CPU flags."""
    have = [f for f in CPU_BF16_FLAGS if f in flags]
    if have:
        return Support(True, "CPU " + " + ".join(have))
    return Support(False, "CPU without amx_bf16 / avx512_bf16")


@functools.cache
def bf16_support(device: str = "cpu") -> Support:
    """Whether `device` ("cpu", "cuda", "cuda:0", ...) has native bf16 arithmetic, and what was detected."""
    kind = torch.device(device).type
    if kind == "cpu":
        return cpu_bf16(cpu_flags())
    if kind == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return Support(True, f"CUDA {torch.cuda.get_device_name(torch.device(device))}")
        return Support(False, "CUDA without bf16")
    return Support(False, f"no bf16 detection for device type {kind!r}")


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> torch.dtype | None:
    """The autocast dtype for a precision name on a device: torch.bfloat16, or None for fp32."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r} is invalid: one of {', '.join(PRECISIONS)}")
    if precision == "auto" and os.environ.get("GENZOO_PRECISION"):
        pinned = os.environ["GENZOO_PRECISION"]
        if pinned not in ("fp32", "bf16"):
            raise ConfigError(f"environment variable GENZOO_PRECISION={pinned!r} is invalid: 'fp32' or 'bf16'")
        precision = pinned
    if precision == "fp32":
        return None
    support = bf16_support(str(torch.device(device)))
    if precision == "bf16" and not support.supported:
        raise ConfigError(f"precision='bf16' is not supported on {device} ({support.reason}); use 'auto' or 'fp32'")
    return torch.bfloat16 if support.supported else None


def autocast(device: torch.device | str, dtype: torch.dtype | None):
    """torch.autocast to `dtype` on the device's type, or a no-op context for fp32 (dtype None)."""
    return torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None)
