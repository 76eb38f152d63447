"""Synthesised audio clips in eight classes (tones, chirps, noises, ...) and their log-mel spectrograms, computed
with scipy's STFT and a mel filterbank (Stevens et al.'s mel scale, HTK formula). A labelled data set for audio
tokenizers (Meta-Transformer's audio modality: spectrogram patches), made on the fly from a seed."""

from __future__ import annotations

import numpy as np
import torch

SOUNDS = ("tone", "chirp-up", "chirp-down", "white-noise", "brown-noise", "tremolo", "square", "clicks")
RATE = 8000
SECONDS = 0.5


def synthesise(kind: str, rng: np.random.Generator, rate: int = RATE, seconds: float = SECONDS) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    f0 = rng.uniform(300, 1800)
    if kind == "tone":
        x = np.sin(2 * np.pi * f0 * t)
    elif kind in ("chirp-up", "chirp-down"):
        lo, hi = rng.uniform(200, 800), rng.uniform(1600, 3200)
        f = np.linspace(lo, hi, len(t)) if kind == "chirp-up" else np.linspace(hi, lo, len(t))
        x = np.sin(2 * np.pi * np.cumsum(f) / rate)
    elif kind == "white-noise":
        x = rng.normal(size=len(t))
    elif kind == "brown-noise":
        x = np.cumsum(rng.normal(size=len(t)))
        x = x - np.convolve(x, np.ones(401) / 401, mode="same")  # no drift
    elif kind == "tremolo":
        x = np.sin(2 * np.pi * f0 * t) * (0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(6, 14) * t))
    elif kind == "square":
        x = np.sign(np.sin(2 * np.pi * rng.uniform(150, 600) * t))
    elif kind == "clicks":
        x = np.zeros(len(t))
        period = int(rate / rng.uniform(8, 30))
        x[rng.integers(0, period)::period] = 1.0
        x = np.convolve(x, np.hanning(16), mode="same")
    else:
        raise KeyError(kind)
    x = x / (np.abs(x).max() + 1e-8) * rng.uniform(0.3, 1.0)
    return x + 0.01 * rng.normal(size=len(t))


def mel_filterbank(n_mels: int, n_fft: int, rate: int) -> np.ndarray:
    """Triangular filters (n_mels, n_fft // 2 + 1) equally spaced on the mel scale m = 2595 log10(1 + f / 700)."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = hz(np.linspace(mel(0), mel(rate / 2), n_mels + 2))
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.maximum(0, np.minimum((freqs - lower) / (centre - lower), (upper - freqs) / (upper - centre)))


def log_mel(x: np.ndarray, rate: int = RATE, n_mels: int = 32, frames: int = 32, n_fft: int = 256) -> np.ndarray:
    """The log-mel spectrogram (n_mels, frames) of a clip: |STFT|^2 (Hann window, hop chosen for `frames`)
    through the mel filterbank, log(1e-6 + .)."""
    from scipy.signal import stft

    hop = max(1, len(x) // frames)
    _, _, z = stft(x, fs=rate, nperseg=n_fft, noverlap=n_fft - hop)  # zero-padded ends: >= frames columns
    power = np.abs(z) ** 2  # (n_fft // 2 + 1, T)
    return np.log(1e-6 + mel_filterbank(n_mels, n_fft, rate) @ power)[:, :frames]


def load_sounds(per_class: int = 120, val_percent: float = 20.0, seed: int = 0):
    """(train, train_labels, val, val_labels): log-mel spectrograms (N, 1, 32, 32), standardised."""
    from .pointclouds import split_per_class

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, kind in enumerate(SOUNDS):
        for _ in range(per_class):
            xs.append(log_mel(synthesise(kind, rng)))
            ys.append(label)
    x = torch.tensor(np.stack(xs), dtype=torch.float32)[:, None]
    x = (x - x.mean()) / x.std()
    return split_per_class(x, torch.tensor(ys), val_percent, seed)
