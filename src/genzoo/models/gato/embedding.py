"""Gato's embedding function f(.; theta_e) (arXiv 2205.06175, sec. 2.2 and appendix C.2-C.3): it dispatches on
the kind of each token.

- text, discrete and continuous values and the separator: a lookup in one learned table over the joint
  vocabulary (the output head shares it when `tie_embeddings`); a continuous value adds what
  `config.continuous_embedding` adds (`values.py`: nothing, or a learned map of its Fourier features);
- image patches: a single ResNet block (`PatchResNet`, v2 ordering: norm, activation, convolution), flattened and
  projected to the model width, plus a learned row and a learned column position embedding: the patch's
  quantised interval, sampled uniformly within it while training and its mean at evaluation (appendix C.3);
- observation tokens (values or patches) add a learned local observation position: the token's index within its
  timestep's observation (appendix C.3), the same at every timestep.

The sequence position of every token is the transformer's own (the shared `Stack`'s position part).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import GatoConfig
from .sequence import Tokens
from .tokens import IMAGE, interval_index
from .values import make_continuous_embedding


def sinusoidal_table(bins: int, dim: int, std: float) -> torch.Tensor:
    """(bins, dim) initial rows of a table over ordered bins (continuous values, quantised patch positions):
    a_k [sin(w_k y), cos(w_k y)] of each bin's centre y in [-1, 1], at dim / 2 geometric frequencies w_k from pi / 2
    (monotone over the whole range) to pi * bins / 4 (a period of 8 bins), with amplitudes a_k = (w_0 / w_k)^(1/2),
    scaled to standard deviation `std`. The rows are still a lookup table (each is trained on its own), but bins
    close in value start close (for 1024 bins: cosine 0.86 at 32 bins apart, 0.48 at 128), so a value seen rarely
    starts near its neighbours, a patch position drawn in its interval starts near the interval's mean, and the
    tied output head gives neighbouring bins of a continuous action similar logits."""
    y = -1.0 + (2.0 * torch.arange(bins, dtype=torch.float64) + 1.0) / bins  # (bins,) bin centres
    k = torch.arange(dim // 2, dtype=torch.float64) / max(dim // 2 - 1, 1)
    w = (torch.pi / 2) * (bins / 2.0) ** k  # (dim / 2,) from pi / 2 to pi * bins / 4
    a = (w[0] / w).sqrt()  # (dim / 2,) low frequencies carry most of the norm
    angles = y[:, None] * w[None]  # (bins, dim / 2)
    table = torch.zeros(bins, dim, dtype=torch.float64)
    table[:, 0:2 * (dim // 2):2], table[:, 1:2 * (dim // 2):2] = angles.sin() * a, angles.cos() * a
    return (table * (std / table.std())).float()


class PatchResNet(nn.Module):
    """One pre-activation ResNet block over a patch (He et al., 2016, "Identity Mappings in Deep Residual
    Networks"; Gato sec. 2.2): a 1x1 stem to `hidden` channels, h + conv(gelu(gn(conv(gelu(gn(h)))))), then the
    flattened block output projected to the model width. patches (N, C, P, P) -> (N, D)."""

    def __init__(self, channels: int, patch: int, hidden: int, groups: int, dim: int):
        super().__init__()
        self.stem = nn.Conv2d(channels, hidden, 1)
        self.norm1 = nn.GroupNorm(groups, hidden)
        self.conv1 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, hidden)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.proj = nn.Linear(hidden * patch * patch, dim)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        h = self.stem(patches)  # (N, c, P, P)
        h = h + self.conv2(F.gelu(self.norm2(self.conv1(F.gelu(self.norm1(h))))))  # (N, c, P, P)
        return self.proj(h.flatten(1))  # (N, c P P) -> (N, D)


class GatoEmbedding(nn.Module):
    def __init__(self, config: GatoConfig):
        super().__init__()
        d = config.d_model
        self.channels, self.patch = config.channels, config.patch_size
        self.tokens = nn.Embedding(config.vocab_size, d)
        self.values = make_continuous_embedding(config.continuous_embedding, config.vocab, d)
        self.patches = PatchResNet(config.channels, config.patch_size, config.patch_channels, config.patch_groups, d)
        self.rows = nn.Embedding(config.position_bins, d)  # quantised patch row / column positions (appendix C.3)
        self.cols = nn.Embedding(config.position_bins, d)
        self.local = nn.Embedding(config.max_local_positions, d)

    def forward(self, t: Tokens) -> torch.Tensor:
        """Tokens (B, T) -> embeddings (B, T, D)."""
        image = t.kinds == IMAGE  # (B, T)
        ids = t.ids.masked_fill(image, 0)  # (B, T)
        h = self.tokens(ids)  # (B, T, D); image positions are replaced below
        extra = self.values(ids)  # (B, T, D) at continuous values, or None
        if extra is not None:
            h = h + extra.to(h.dtype)
        if bool(image.any()):
            n = int(image.sum())
            pixels = t.patches[image].view(n, self.channels, self.patch, self.patch)  # (N, C, P, P)
            sample = self.training
            rows = interval_index(t.rows[image], sample)  # (N,)
            cols = interval_index(t.cols[image], sample)  # (N,)
            e = self.patches(pixels.to(h.dtype)) + self.rows(rows) + self.cols(cols)  # (N, D)
            h = h.masked_scatter(image[..., None], e.to(h.dtype))  # (B, T, D), e in row-major order of `image`
        observation = t.local >= 0  # (B, T)
        if bool(observation.any()):
            h = h + self.local(t.local.clamp(min=0)) * observation[..., None].to(h.dtype)
        return h
