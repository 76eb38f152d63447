"""How a continuous value's token is embedded (`GatoConfig.continuous_embedding`, resolved by name here).

Gato (Reed et al., 2022, arXiv 2205.06175, sec. 2.1-2.2) mu-law encodes a continuous value, discretises it into
1024 bins and embeds the bin by a lookup: each bin's row is trained on its own, so a rarely seen bin learns little,
even when its neighbours are seen often. The options:

- `lookup`: the paper's embedding, the bin's row of the joint table (`GatoEmbedding.tokens`) and nothing more;
- `lookup+fourier`: the bin's row plus a learned linear map of Fourier features of the value itself,

      e(y) = E[bin(y)] + W phi(y),   phi(y) = [sin(w_1 y), cos(w_1 y), ..., sin(w_K y), cos(w_K y)],

  with y in [-1, 1] the mu-law encoded value at the bin's centre and K fixed geometric frequencies w_k (Tancik et
  al., 2020, "Fourier Features Let Networks Learn High Frequency Functions in Low Dimensional Domains", eq. 2-3,
  with deterministic frequencies in place of random ones). W (D, 2K) is shared by every bin: what a value teaches
  reaches its neighbours, and the lookup rows still tell bins apart. W starts at 0 (the paper's lookup; a random W
  made a continuous value's embedding 4 times the norm of every other token's at the start); the output head (tied
  to the table) is the lookup's alone.

A module takes the joint token ids (B, T) and returns what it adds to their lookup embeddings (B, T, D), or None.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import skip_init

from ...registry import Registry
from .tokens import Vocab, bin_centres

CONTINUOUS_EMBEDDINGS: Registry = Registry("continuous embedding")

FREQUENCIES = 16  # K: w_k from pi / 2 (monotone over [-1, 1]) to pi * 64 (a period of 1 / 32 of the range)


@CONTINUOUS_EMBEDDINGS.register("lookup")
class LookupOnly(nn.Module):
    """The paper's embedding: the lookup row alone (adds nothing, holds no parameters)."""

    def __init__(self, vocab: Vocab, dim: int):
        super().__init__()

    def forward(self, ids: torch.Tensor) -> torch.Tensor | None:
        return None


@CONTINUOUS_EMBEDDINGS.register("lookup+fourier")
class FourierValues(nn.Module):
    """W phi(y) at continuous-value tokens, zero elsewhere: ids (B, T) -> (B, T, D)."""

    def __init__(self, vocab: Vocab, dim: int, frequencies: int = FREQUENCIES):
        super().__init__()
        self.offset, self.bins = vocab.continuous_offset, vocab.bins
        k = torch.arange(frequencies, dtype=torch.float64) / max(frequencies - 1, 1)
        self.register_buffer("w", ((torch.pi / 2) * 128.0 ** k).float(), persistent=False)  # (K,)
        # W (D, 2K), from 0: the embedding starts as `lookup`; built without drawing random numbers, so every other
        # parameter of a model starts exactly as it would with `lookup`
        self.proj = skip_init(nn.Linear, 2 * frequencies, dim, bias=False)
        nn.init.zeros_(self.proj.weight)

    def features(self, y: torch.Tensor) -> torch.Tensor:
        """phi: values (...) in [-1, 1] -> (..., 2K)."""
        angles = y[..., None] * self.w  # (..., K)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)  # (..., 2K)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        index = ids - self.offset  # (B, T)
        continuous = (index >= 0) & (index < self.bins)  # (B, T)
        y = bin_centres(index.clamp(0, self.bins - 1), self.bins).float()  # (B, T) mu-law values in [-1, 1]
        return self.proj(self.features(y)) * continuous[..., None].to(self.proj.weight.dtype)  # (B, T, D)


def make_continuous_embedding(name: str, vocab: Vocab, dim: int) -> nn.Module:
    """The continuous-value embedding registered as `name`; an unknown name raises ConfigError listing the known."""
    return CONTINUOUS_EMBEDDINGS.get(name)(vocab, dim)
