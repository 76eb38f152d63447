"""The VQ-VAE image tokenizer (van den Oord et al., 2017, arXiv 1711.00937): a convolutional encoder to a grid of
vectors, each replaced by its nearest codebook entry (`quantizer.VectorQuantizer`), and a convolutional decoder back
to pixels. Trained on  || x - dec(z_q) ||^2 + beta || z_e - sg(e) ||^2  (eq. 3, with EMA codebook updates).

`encode(pixels) -> (B, h, w)` code indices are an image's discrete tokens (early fusion's image vocabulary);
`decode(indices) -> pixels` turns generated tokens back into an image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...config import GENRES
from ...errors import InputError
from .config import VQConfig
from .quantizer import VectorQuantizer


@dataclass
class VQOutput:
    reconstruction: torch.Tensor  # (B, C, H, W)
    indices: torch.Tensor  # (B, h, w) code indices
    loss: torch.Tensor  # reconstruction MSE + commitment
    commitment_loss: torch.Tensor
    perplexity: torch.Tensor  # exp(entropy) of the batch's code usage (codebook_size at most)


def psnr(x: torch.Tensor, y: torch.Tensor, value_range: float = 2.0) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(range^2 / MSE), over images in [-1, 1] (range 2)."""
    mse = F.mse_loss(x.float(), y.float()).item()
    return float("inf") if mse == 0 else 10 * math.log10(value_range**2 / mse)


def conv_stack(cin: int, hidden: int, cout: int, n_down: int, *, up: bool) -> nn.Sequential:
    """3x3 conv in, n_down stride-2 (transposed) 4x4 convs, 3x3 conv out, ReLU between."""
    layers: list[nn.Module] = [nn.Conv2d(cin, hidden, 3, padding=1), nn.ReLU()]
    for _ in range(n_down):
        conv = nn.ConvTranspose2d if up else nn.Conv2d
        layers += [conv(hidden, hidden, 4, stride=2, padding=1), nn.ReLU()]
    k = 3 if up else 1  # the decoder's last conv sees neighbouring codes; the encoder's is per position
    layers += [nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, cout, k, padding=k // 2)]
    return nn.Sequential(*layers)


@GENRES.register("vq-image")
class VQImageTokenizer(nn.Module):
    config_class = VQConfig

    def __init__(self, config: VQConfig):
        super().__init__()
        self.config = cfg = config
        self.encoder = conv_stack(cfg.channels, cfg.hidden, cfg.code_dim, cfg.downsample, up=False)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.code_dim, beta=cfg.beta, decay=cfg.decay,
                                         eps=cfg.eps, restart_threshold=cfg.restart_threshold)
        self.decoder = conv_stack(cfg.code_dim, cfg.hidden, cfg.channels, cfg.downsample, up=True)

    def check_pixels(self, pixel_values) -> None:
        c = self.config
        want = (c.channels, c.image_size, c.image_size)
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 4 or \
                tuple(pixel_values.shape[1:]) != want:
            shape = tuple(getattr(pixel_values, "shape", ()))
            raise InputError(f"pixel_values has shape {shape}; the image tokenizer takes (batch, *{want})")

    def check_indices(self, indices) -> None:
        g, k = self.config.grid, self.config.codebook_size
        if not isinstance(indices, torch.Tensor) or indices.dim() != 3 or tuple(indices.shape[1:]) != (g, g) or \
                indices.is_floating_point():
            raise InputError(f"code indices must be an integer tensor (batch, {g}, {g}); got "
                             f"{tuple(getattr(indices, 'shape', ()))}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= k):
            raise InputError(f"code index {int(indices.max()) if int(indices.max()) >= k else int(indices.min())} "
                             f"is out of range: codebook_size is {k} (codes 0..{k - 1})")

    def _quantize(self, pixel_values):
        z = self.encoder(pixel_values)  # (B, Dc, h, w)
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(b * h * w, d)  # (B h w, Dc)
        zq, idx, commit, perplexity = self.quantizer(flat)
        zq = zq.view(b, h, w, d).permute(0, 3, 1, 2)  # (B, Dc, h, w)
        return zq, idx.view(b, h, w), commit, perplexity

    def forward(self, pixel_values: torch.Tensor) -> VQOutput:
        """pixel_values (B, C, H, W) in [-1, 1] -> reconstruction, code indices (B, h, w) and the training loss."""
        self.check_pixels(pixel_values)
        zq, idx, commit, perplexity = self._quantize(pixel_values)
        recon = self.decoder(zq)  # (B, C, H, W)
        loss = F.mse_loss(recon, pixel_values) + commit
        return VQOutput(reconstruction=recon, indices=idx, loss=loss, commitment_loss=commit, perplexity=perplexity)

    @torch.no_grad()
    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, C, H, W) -> code indices (B, h, w)."""
        self.check_pixels(pixel_values)
        return self.quantizer.codes(self._latents(pixel_values)).view(pixel_values.shape[0], self.config.grid,
                                                                      self.config.grid)

    def _latents(self, pixel_values):
        z = self.encoder(pixel_values)  # (B, Dc, h, w)
        return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (B h w, Dc)

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """code indices (B, h, w) -> pixels (B, C, H, W), clamped to [-1, 1]."""
        self.check_indices(indices)
        zq = self.quantizer.lookup(indices).permute(0, 3, 1, 2)  # (B, Dc, h, w)
        return self.decoder(zq).clamp(-1, 1)
