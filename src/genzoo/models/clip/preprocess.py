"""CLIP's image preprocessing (Radford et al., 2021, arXiv:2103.00020; as transformers' `CLIPImageProcessor` and
open_clip do it): RGB, resize the shortest edge (bicubic, PIL), center crop, scale to [0, 1], normalise by the
channel mean and std. The settings come from the directory's `preprocessor_config.json` when it has one, else the
model's image size and OpenAI's statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ...errors import InputError

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class ImagePreprocessor:
    def __init__(self, size: int, crop: int, mean=OPENAI_MEAN, std=OPENAI_STD, channels: int = 3):
        self.size, self.crop, self.channels = size, crop, channels
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]  # (C, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]

    @classmethod
    def for_model(cls, model, path=None) -> "ImagePreprocessor":
        cfg = model.config
        file = Path(path) / "preprocessor_config.json" if path is not None and Path(path).is_dir() else None
        if file is not None and file.exists():
            p = json.loads(file.read_text())
            size = p.get("size", cfg.image_size)
            size = size.get("shortest_edge", size.get("height")) if isinstance(size, dict) else size
            crop = p.get("crop_size", size)
            crop = crop.get("height") if isinstance(crop, dict) else crop
            return cls(size, crop, p.get("image_mean", OPENAI_MEAN), p.get("image_std", OPENAI_STD), cfg.channels)
        return cls(cfg.image_size, cfg.image_size, channels=cfg.channels)

    def one(self, image) -> torch.Tensor:
        """A PIL image or an (H, W, C) uint8 array -> (C, crop, crop) pixel values."""
        from PIL import Image

        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        if not isinstance(image, Image.Image):
            raise InputError(f"an image must be a PIL image, an (H, W, C) uint8 array or a tensor of pixel values; "
                             f"got {type(image).__name__}")
        image = image.convert("RGB" if self.channels == 3 else "L")
        w, h = image.size
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = self.size, int(self.size * long / short)
        image = image.resize((new_short, new_long) if w <= h else (new_long, new_short), Image.BICUBIC)
        w, h = image.size
        top, left = (h - self.crop) // 2, (w - self.crop) // 2
        image = image.crop((left, top, left + self.crop, top + self.crop))
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)  # (H, W) or (H, W, C)
        x = x[None] if x.dim() == 2 else x.permute(2, 0, 1)  # (C, H, W)
        return (x - self.mean) / self.std

    def __call__(self, images) -> tuple[torch.Tensor, bool]:
        """images -> (pixel values (B, C, crop, crop), whether one image was given)."""
        if isinstance(images, torch.Tensor):
            if images.dim() == 3:
                return images[None], True
            return images, False
        if isinstance(images, (list, tuple)):
            if not images:
                raise InputError("no images given")
            return torch.stack([self.one(i) for i in images]), False
        return self.one(images)[None], True
