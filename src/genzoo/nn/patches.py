"""Images as token sequences (Dosovitskiy et al., "An Image is Worth 16x16 Words", 2021, eq. 1): non-overlapping
P x P patches, each linearly projected (a strided convolution), optionally behind a learned class token.
It is the `embed` part of a `Stack` over images (CLIP's ViT, the DiT denoiser); positions are the stack's."""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    def __init__(self, channels: int, dim: int, patch: int, *, bias: bool = True, class_token: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(channels, dim, patch, stride=patch, bias=bias)
        self.class_embedding = nn.Parameter(torch.randn(dim) * dim**-0.5) if class_token else None

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, [1 +] (H/P) (W/P), D)."""
        x = self.conv(pixel_values.to(self.conv.weight.dtype)).flatten(2).transpose(1, 2)  # (B, N, D)
        if self.class_embedding is None:
            return x
        return torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], dim=1)  # (B, 1 + N, D)
