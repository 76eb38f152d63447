"""Synthetic time series in eight classes (periodic, noisy, trending, ...), each randomly scaled, shifted and
noised, standardised per series. A labelled data set for time-series tokenizers (Meta-Transformer: patches of the
series), made on the fly from a seed."""

from __future__ import annotations

import numpy as np
import torch

SIGNALS = ("sine", "square", "sawtooth", "random-walk", "ar1", "trend", "damped", "spikes")


def series(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n)
    period, phase = rng.uniform(12, 40), rng.uniform(0, 2 * np.pi)
    w = 2 * np.pi * t / period + phase
    if kind == "sine":
        x = np.sin(w)
    elif kind == "square":
        x = np.sign(np.sin(w))
    elif kind == "sawtooth":
        x = (w / (2 * np.pi)) % 1.0 * 2 - 1
    elif kind == "random-walk":
        x = np.cumsum(rng.normal(size=n))
    elif kind == "ar1":
        x = np.zeros(n)
        phi = rng.uniform(0.5, 0.9)
        for i in range(1, n):
            x[i] = phi * x[i - 1] + rng.normal()
    elif kind == "trend":
        x = rng.choice([-1, 1]) * t / n * rng.uniform(2, 5) + 0.3 * rng.normal(size=n)
    elif kind == "damped":
        x = np.exp(-t / rng.uniform(20, 60)) * np.sin(w)
    elif kind == "spikes":
        x = np.zeros(n)
        x[rng.choice(n, size=rng.integers(3, 8), replace=False)] = rng.uniform(2, 4)
    else:
        raise KeyError(kind)
    x = x + 0.15 * rng.normal(size=n) * (np.abs(x).max() + 1e-8)
    return (x - x.mean()) / (x.std() + 1e-8)


def load_signals(per_class: int = 150, length: int = 128, val_percent: float = 20.0, seed: int = 0):
    """(train, train_labels, val, val_labels): series (N, length) float32."""
    from .pointclouds import split_per_class

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, kind in enumerate(SIGNALS):
        for _ in range(per_class):
            xs.append(series(kind, length, rng))
            ys.append(label)
    return split_per_class(torch.tensor(np.stack(xs), dtype=torch.float32), torch.tensor(ys), val_percent, seed)
