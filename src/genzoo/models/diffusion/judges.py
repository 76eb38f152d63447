"""Frozen digit classifiers that judge generated 8x8 digits: how often a sample is the digit asked for, and a
Fréchet distance in the classifier's penultimate features (the FID recipe of Heusel et al., 2017, eq. 6, with an
in-package classifier instead of Inception).

Two judges are trained here, deterministically from a seed, on scikit-learn's digits (train split): the
`reward` judge (a small CNN) gives DPOK its reward and the Fréchet features; the `held-out` judge (an MLP with
another seed) is never optimised against and guards against reward hacking.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.digits import load_digits_split


class DigitCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
                                  nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def features(self, x):  # (B, 1, 8, 8) -> (B, 64)
        return self.body(x)

    def forward(self, x):  # -> logits (B, 10)
        return self.head(self.features(x))


class DigitMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


JUDGES = {"reward": (DigitCNN, 0), "held-out": (DigitMLP, 1)}


@functools.lru_cache(maxsize=None)
def judge(name: str = "reward", steps: int = 400) -> nn.Module:
    """The named judge, trained once per process (about a second), frozen, in eval mode. Training uses light
    noise augmentation so that the judge is not fooled by off-manifold pixels alone."""
    cls, seed = JUDGES[name]
    x, y, _, _ = load_digits_split()
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        net = cls()
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        for _ in range(steps):
            idx = torch.randint(len(x), (128,))
            xb = (x[idx] + 0.1 * torch.randn_like(x[idx])).clamp(-1, 1)
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval().requires_grad_(False)
    return net


@torch.no_grad()
def accuracy(images: torch.Tensor, labels: torch.Tensor, name: str = "reward") -> float:
    return (judge(name)(images.cpu()).argmax(-1) == labels.cpu()).float().mean().item()


@torch.no_grad()
def class_probability(images: torch.Tensor, labels: torch.Tensor, name: str = "reward") -> torch.Tensor:
    """The judge's probability of the asked-for digit, (B,): DPOK's reward."""
    p = judge(name)(images.detach().float().cpu()).softmax(-1)
    return p[torch.arange(len(labels)), labels.cpu()].to(images.device)


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two feature sets (N, D)."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    eps = 1e-6 * np.eye(a.shape[1])  # features that never fire make a covariance singular
    s1, s2 = np.cov(a, rowvar=False) + eps, np.cov(b, rowvar=False) + eps
    covmean = np.real(linalg.sqrtm(s1 @ s2))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@torch.no_grad()
def frechet_distance(images: torch.Tensor, reference: torch.Tensor | None = None) -> float:
    """Fréchet distance between generated images (N, 1, 8, 8) and real ones (default: the held-out digits) in
    the reward judge's features."""
    if reference is None:
        reference = load_digits_split()[2]
    f = judge("reward").features
    return frechet(f(images.float().cpu()).double().numpy(), f(reference.float().cpu()).double().numpy())
