"""Procedural 3D point clouds: points on the surface of eight kinds of shape, each randomly stretched, rotated and
jittered, centred and scaled into the unit sphere. A labelled data set for point-cloud tokenizers (Meta-Transformer's
point modality), made on the fly from a seed (no download)."""

from __future__ import annotations

import numpy as np
import torch

SHAPES = ("sphere", "cube", "cylinder", "cone", "torus", "pyramid", "disk", "helix")


def _surface(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points (n, 3) on the surface of a unit-size shape of `kind`."""
    u, v = rng.random(n), rng.random(n)
    if kind == "sphere":
        p = rng.normal(size=(n, 3))
        return p / np.linalg.norm(p, axis=1, keepdims=True)
    if kind == "cube":
        p = rng.uniform(-1, 1, size=(n, 3))
        axis = rng.integers(0, 3, n)
        p[np.arange(n), axis] = np.sign(rng.uniform(-1, 1, n))  # one coordinate on a face
        return p
    if kind == "cylinder":
        a = 2 * np.pi * u
        return np.stack([np.cos(a), np.sin(a), 2 * v - 1], 1)
    if kind == "cone":
        a, h = 2 * np.pi * u, np.sqrt(v)  # area grows with the radius
        return np.stack([h * np.cos(a), h * np.sin(a), 1 - 2 * h], 1)
    if kind == "torus":
        a, b = 2 * np.pi * u, 2 * np.pi * v
        return np.stack([(1 + 0.35 * np.cos(b)) * np.cos(a), (1 + 0.35 * np.cos(b)) * np.sin(a), 0.35 * np.sin(b)], 1)
    if kind == "pyramid":  # four triangular faces over a square base
        apex = np.array([0.0, 0.0, 1.0])
        corners = np.array([[1, 1, -1], [-1, 1, -1], [-1, -1, -1], [1, -1, -1]], dtype=float)
        face = rng.integers(0, 4, n)
        s, t = np.sqrt(u), v
        a, b = corners[face], corners[(face + 1) % 4]
        return (1 - s)[:, None] * apex + (s * (1 - t))[:, None] * a + (s * t)[:, None] * b
    if kind == "disk":
        r, a = np.sqrt(u), 2 * np.pi * v
        return np.stack([r * np.cos(a), r * np.sin(a), 0.02 * rng.normal(size=n)], 1)
    if kind == "helix":
        t = 4 * np.pi * u
        return np.stack([np.cos(t), np.sin(t), t / (2 * np.pi) - 1], 1) + 0.05 * rng.normal(size=(n, 3))
    raise KeyError(kind)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation matrix (3, 3) (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def point_cloud(kind: str, n_points: int, rng: np.random.Generator) -> np.ndarray:
    p = _surface(kind, n_points, rng) * rng.uniform(0.6, 1.4, size=3)  # anisotropic stretch
    p = p @ random_rotation(rng).T + 0.02 * rng.normal(size=p.shape)
    p = p - p.mean(0)
    return p / np.linalg.norm(p, axis=1).max()


def load_point_clouds(per_class: int = 150, n_points: int = 256, val_percent: float = 20.0, seed: int = 0):
    """(train_points, train_labels, val_points, val_labels): points (N, n_points, 3) float32."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, kind in enumerate(SHAPES):
        for _ in range(per_class):
            xs.append(point_cloud(kind, n_points, rng))
            ys.append(label)
    x = torch.tensor(np.stack(xs), dtype=torch.float32)
    y = torch.tensor(ys)
    return split_per_class(x, y, val_percent, seed)


def split_per_class(x: torch.Tensor, y: torch.Tensor, val_percent: float, seed: int = 0):
    """The same share of every class held out: (train_x, train_y, val_x, val_y)."""
    g = torch.Generator().manual_seed(seed)
    tr, va = [], []
    for c in y.unique().tolist():
        idx = (y == c).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_val = max(1, round(len(idx) * val_percent / 100))
        va.append(idx[:n_val])
        tr.append(idx[n_val:])
    tr, va = torch.cat(tr).sort().values, torch.cat(va).sort().values
    return x[tr], y[tr], x[va], y[va]
