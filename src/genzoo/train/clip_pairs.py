"""CLIP on the user's image-caption pairs (task "clip" with data.source): a table whose data.image_column holds image
file paths (relative to the table's folder) and data.text_column the captions. Images are read with Pillow, resized
to the model's image_size (bicubic) and normalised with the initial checkpoint's `preprocessor_config.json` mean and
std (else scaled to [-1, 1]). Validation reports the contrastive loss on the held-out pairs and image->text and
text->image recall@1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..models.clip.loss import clip_loss
from ..models.clip.model import recall_at_k
from ..modes import evaluating
from ..tokenizers import train_bpe
from .clip_task import tokenize
from .data import run_tokenizer
from .distributed import Dist
from .recipe import Recipe
from .tasks import ExampleTask, autocast, build_from_recipe


def read_images(paths: list[str], root: Path, size: int, channels: int, mean, std) -> torch.Tensor:
    """Image files -> (N, C, size, size) float32, normalised per channel."""
    from PIL import Image

    out = torch.empty(len(paths), channels, size, size)
    for i, p in enumerate(paths):
        f = (root / p) if not Path(p).is_absolute() else Path(p)
        try:
            with Image.open(f) as im:
                im = im.convert("RGB" if channels == 3 else "L").resize((size, size), Image.BICUBIC)
                x = torch.from_numpy(np.asarray(im, dtype=np.float32).copy()).view(size, size, channels) / 255.0
        except (OSError, ValueError) as e:
            raise ConfigError(f"data.image_column: cannot read image {f} ({e})") from None
        out[i] = x.permute(2, 0, 1)  # (C, H, W)
    m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return (out - m) / s


class ImageCaptionPairs(ExampleTask):
    units = "pairs"

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        from ..data import open_source
        from ..data.sources import split_rows
        from .finetune import init_directory, init_tokenizer

        c = recipe.data
        source = open_source(c.source, c.glob)
        train, val = split_rows(source, [c.image_column, c.text_column], ["image_column", "text_column"],
                                c.val_percent)
        tok = init_tokenizer(recipe, ("clip",))
        self.tokenizer = run_tokenizer(run, d, lambda: tok or train_bpe([t for _, t in train] * 4, c.vocab_size,
                                                                        min_frequency=1))
        mean, std = [0.5], [0.5]  # [0, 1] -> [-1, 1]
        if recipe.init is not None:
            pre = init_directory(recipe) / "preprocessor_config.json"
            if pre.exists():
                cfg = json.loads(pre.read_text())
                mean, std = cfg.get("image_mean", mean), cfg.get("image_std", std)
        self.size, self.channels = self.image_shape()
        if len(mean) == 1:
            mean, std = mean * self.channels, std * self.channels
        root = source.root if source.path.is_dir() else source.path.parent
        self.train_x = read_images([p for p, _ in train], root, self.size, self.channels, mean, std)
        self.val_x = read_images([p for p, _ in val], root, self.size, self.channels, mean, std)
        self.train_text, self.val_text = [t for _, t in train], [t for _, t in val]

    def image_shape(self) -> tuple[int, int]:
        if self.recipe.init is None:
            m = self.recipe.model
            return int(m.get("image_size", 224)), int(m.get("channels", 3))
        from .finetune import init_directory

        cfg = json.loads((init_directory(self.recipe) / "config.json").read_text())
        vision = cfg.get("vision_config", {})
        if "genzoo_config" in cfg:
            return cfg["genzoo_config"]["image_size"], cfg["genzoo_config"]["channels"]
        return int(vision.get("image_size", 224)), int(vision.get("num_channels", 3))

    def build_model(self):
        if self.recipe.init is not None:
            from .finetune import init_model

            return init_model(self.recipe, ("clip",))
        eos = self.tokenizer.eos_id
        return build_from_recipe(self.recipe, vocab_size=self.tokenizer.vocab_size,
                                 max_positions=self.recipe.data.block_size, eos_token_id=eos, pad_token_id=eos,
                                 image_size=self.size, channels=self.channels)

    def tokenize(self, texts):
        ids, mask = tokenize(self.tokenizer, texts, self.recipe.data.block_size)
        return ids.to(self.d.device), mask.to(self.d.device)

    def next_batch(self):
        batch, mine, _ = self.take(len(self.train_text))
        idx = batch[mine]
        ids, mask = self.tokenize([self.train_text[int(i)] for i in idx])
        return ids, mask, self.train_x[idx].to(self.d.device)

    def loss(self, model, batch, amp):
        ids, mask, pixels = batch
        with autocast(pixels.device, amp):
            return model(ids, pixels, attention_mask=mask, return_loss=True).loss

    @torch.no_grad()
    def validate(self, model, amp):
        with evaluating(model) as net:
            net = getattr(net, "module", net)
            image = net.encode_image(self.val_x.to(self.d.device))
            text = net.encode_text(*self.tokenize(self.val_text))
            loss = clip_loss(image, text, net.scale(), distributed=False).item()
        i2t, t2i = recall_at_k(image, text, ks=(1,)), recall_at_k(text, image, ks=(1,))
        return {"val_loss": loss, "image_to_text_r1": i2t[1], "text_to_image_r1": t2i[1]}
