"""Meta-Transformer's modality tokenizers (Zhang et al., 2023, arXiv 2307.10802, sec. 3.2, "data-to-sequence
tokenization"): each turns one modality's raw data into a sequence of token embeddings (B, T, D) in the shared
encoder's width; the encoder then adds its own positions and norm (`Stack`'s input stage, `inputs_embeds`).

| modality | tokenizer | tokens |
|---|---|---|
| image, audio | non-overlapping patches, linearly projected (`nn.patches.PatchEmbed`; audio: log-mel patches) | (H/P)(W/P) |
| text | the encoder's own word embeddings (frozen) and a trained linear map, initialised to the identity | words |
| point-cloud | farthest-point sampling -> kNN groups -> a mini-PointNet per group (shared MLP, max-pool) + centre | groups |
| tabular | one token per feature: x_f W_f + b_f (FT-Transformer's feature tokenizer, arXiv 2106.11959) | features |
| time-series | non-overlapping patches of the series, linearly projected (PatchTST, arXiv 2211.14730) | L/P |

Every tokenizer: forward(x, word_embeddings) -> (tokens (B, T, D), mask (B, T) of real tokens, or None).
"""

from __future__ import annotations

import torch
from torch import nn

from ...nn.patches import PatchEmbed
from ...registry import Registry

MODALITY_TOKENIZERS: Registry = Registry("modality")


@MODALITY_TOKENIZERS.register("image")
class ImagePatches(nn.Module):
    def __init__(self, cfg, dim: int):
        super().__init__()
        self.patches = PatchEmbed(cfg.input_shape[0], dim, cfg.patch)

    def forward(self, x, word_embeddings=None):
        return self.patches(x), None  # (B, (H/P)(W/P), D)


MODALITY_TOKENIZERS.register("audio", ImagePatches)  # log-mel spectrogram patches (AST-style)


@MODALITY_TOKENIZERS.register("text")
class TextTokens(nn.Module):
    """Token ids (B, T), 0 = padding -> the encoder's word embeddings, then a trained linear map (identity at
    first, so the pretrained encoder starts by seeing its own input)."""

    def __init__(self, cfg, dim: int):
        super().__init__()
        self.adapter = nn.Linear(dim, dim)
        with torch.no_grad():
            self.adapter.weight.copy_(torch.eye(dim))
            self.adapter.bias.zero_()

    def forward(self, x, word_embeddings):
        return self.adapter(word_embeddings(x)), (x != 0).long()


def farthest_points(xyz: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (B, k) of k points chosen by farthest-point sampling (each the point farthest from those already
    chosen; the first is point 0). xyz (B, N, 3)."""
    b, n, _ = xyz.shape
    chosen = torch.zeros(b, k, dtype=torch.long, device=xyz.device)
    dist = torch.full((b, n), float("inf"), device=xyz.device)
    rows = torch.arange(b, device=xyz.device)
    for i in range(1, k):
        last = xyz[rows, chosen[:, i - 1]]  # (B, 3)
        dist = torch.minimum(dist, (xyz - last[:, None]).pow(2).sum(-1))
        chosen[:, i] = dist.argmax(1)
    return chosen


@MODALITY_TOKENIZERS.register("point-cloud")
class PointGroups(nn.Module):
    """Point-BERT / Point-MAE style: n_groups centres by farthest-point sampling, each with its group_size nearest
    points in centre-relative coordinates, embedded by a mini-PointNet (Qi et al., 2017: a shared per-point MLP,
    then max-pooling) plus an embedding of the centre's position."""

    def __init__(self, cfg, dim: int):
        super().__init__()
        h = cfg.tokenizer_hidden
        self.n_groups, self.group_size = cfg.n_groups, cfg.group_size
        self.point_mlp = nn.Sequential(nn.Linear(3, h), nn.GELU(), nn.Linear(h, 2 * h))
        self.out = nn.Linear(2 * h, dim)
        self.centre = nn.Sequential(nn.Linear(3, h), nn.GELU(), nn.Linear(h, dim))

    def forward(self, x, word_embeddings=None):  # x (B, N, 3)
        b = x.shape[0]
        centres = x.gather(1, farthest_points(x, self.n_groups)[..., None].expand(-1, -1, 3))  # (B, G, 3)
        near = torch.cdist(centres, x).topk(self.group_size, largest=False).indices  # (B, G, K)
        groups = x.gather(1, near.reshape(b, -1, 1).expand(-1, -1, 3)).view(b, self.n_groups, self.group_size, 3)
        local = groups - centres[:, :, None]  # (B, G, K, 3)
        feats = self.point_mlp(local).max(dim=2).values  # (B, G, 2h)
        return self.out(feats) + self.centre(centres), None  # (B, G, D)


@MODALITY_TOKENIZERS.register("tabular")
class FeatureTokens(nn.Module):
    def __init__(self, cfg, dim: int):
        super().__init__()
        f = cfg.input_shape[0]
        self.weight = nn.Parameter(torch.randn(f, dim) * dim**-0.5)
        self.bias = nn.Parameter(torch.randn(f, dim) * dim**-0.5)  # also tells the features apart

    def forward(self, x, word_embeddings=None):  # x (B, F)
        return x[..., None] * self.weight + self.bias, None  # (B, F, D)


@MODALITY_TOKENIZERS.register("time-series")
class SeriesPatches(nn.Module):
    def __init__(self, cfg, dim: int):
        super().__init__()
        self.patch = cfg.patch
        self.proj = nn.Linear(cfg.patch, dim)

    def forward(self, x, word_embeddings=None):  # x (B, L)
        b, n = x.shape
        return self.proj(x.view(b, n // self.patch, self.patch)), None  # (B, L/P, D)
