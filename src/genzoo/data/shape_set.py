"""A fixed, seeded set of procedural objects for training and evaluation: each object's attributes and its view
(rendered once), with fresh surface samples (clouds) and captions drawn per use from a seed, so every epoch sees
other points of the same objects and other wordings of the same captions."""

from __future__ import annotations

import torch

from .raster import render
from .shape_captions import TRAIN_TEMPLATES, captions
from .shapes import Objects, random_objects, surface, to_channels


class ShapeSet:
    def __init__(self, n: int, seed: int, image_size: int = 16, render_points: int = 2048, chunk: int = 500):
        g = torch.Generator().manual_seed(seed)
        self.objects = random_objects(n, g)
        self.image_size = image_size
        views = []
        for i in range(0, n, chunk):  # render in chunks: a few million splatted points at a time
            o = self.subset(torch.arange(i, min(n, i + chunk)))
            pts, nrm = surface(o, render_points, g)
            views.append(render(pts, nrm, o.rgb, size=image_size))
        self.views = torch.cat(views)  # (N, 3, S, S) in [-1, 1]

    def __len__(self) -> int:
        return len(self.objects)

    def subset(self, idx: torch.Tensor) -> Objects:
        o = self.objects
        return Objects(o.shape[idx], o.colour[idx], o.size[idx], o.lying[idx], o.yaw[idx], o.rgb[idx])

    def clouds(self, idx: torch.Tensor, n_points: int, seed: int) -> torch.Tensor:
        """Fresh surface samples of objects idx: (B, 6, n_points) in Point-E's channels."""
        o = self.subset(idx)
        pts, _ = surface(o, n_points, torch.Generator().manual_seed(seed))
        return to_channels(pts, o.rgb)

    def captions(self, idx: torch.Tensor, seed: int, templates: list[str] | None = None) -> list[str]:
        return captions(self.subset(idx), torch.Generator().manual_seed(seed), templates or TRAIN_TEMPLATES)
