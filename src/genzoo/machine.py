"""Where a figure was measured: the CPU's model name and the load average. The benchmarks (`bench.common`) and
the experiments' results.json (`experiments.results.machine`) both name the machine through these."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("AMD EPYC 9B14", ...); the platform's processor or architecture
    name where there is no /proc/cpuinfo."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return cpu


def load_average() -> float | None:
    """The 1-minute load average, or None where the system has none."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None
