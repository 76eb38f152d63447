"""The VQ-VAE image tokenizer task: reconstruction MSE + commitment (van den Oord et al., 2017, eq. 3, EMA
codebook) on an embedded image corpus (`IMAGE_CORPORA`, named by data.corpus): scikit-learn's digits or the
rendered views of Point-E's procedural shapes. Validation reports the reconstruction PSNR of the held-out images,
the perplexity of their codes and the share of the codebook they use, and draws held-out images over their
reconstructions to `reconstructions.png`."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.digits import load_digits_split
from ..errors import ConfigError
from ..figures import image_grid
from ..modes import evaluating
from ..registry import Registry
from .distributed import Dist
from .recipe import DataConfig, Recipe
from .tasks import TASKS, ExampleTask, autocast, build_from_recipe

# data.corpus -> fn(data, seed) -> (train images, held-out images), each (N, C, S, S) in [-1, 1]
IMAGE_CORPORA: Registry = Registry("image corpus")
SHAPE_VIEWS = 4000  # objects rendered when data.examples is unset (Point-E's recipe trains on as many)
SHOWN = 10  # held-out images drawn per evaluation


@IMAGE_CORPORA.register("digits")
def digits(data: DataConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 greyscale digits, the same share of each class held out (a fixed split)."""
    train_x, _, val_x, _ = load_digits_split(data.val_percent)
    return train_x, val_x


@IMAGE_CORPORA.register("shapes")
def shapes(data: DataConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Point-E's procedural shapes (`data.shape_set`), data.examples objects drawn and rendered once from the
    seed as 16x16 RGB views; the first val_percent of them are held out."""
    from ..data.shape_set import ShapeSet

    views = ShapeSet(data.examples or SHAPE_VIEWS, seed).views  # (N, 3, 16, 16)
    n_val = max(1, round(len(views) * data.val_percent / 100))
    return views[n_val:], views[:n_val]


@TASKS.register("vq")
class ImageTokenizerTask(ExampleTask):
    units = "img"
    loss_label = "reconstruction MSE + commitment"

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        corpus = recipe.data.corpus
        if corpus not in IMAGE_CORPORA:
            raise ConfigError(f"task 'vq' needs data.corpus in {IMAGE_CORPORA.names()}, got {corpus!r}")
        self.train_x, self.val_x = IMAGE_CORPORA.get(corpus)(recipe.data, recipe.seed)

    def build_model(self):
        _, channels, size, _ = self.train_x.shape  # the corpus fixes the image the tokenizer reads
        return build_from_recipe(self.recipe, image_size=size, channels=channels)

    def next_batch(self):
        batch, mine, _ = self.take(len(self.train_x))
        return self.train_x[batch[mine]].to(self.d.device)

    def loss(self, model, batch, amp):
        with autocast(batch.device, amp):
            return model(batch).loss

    @torch.no_grad()
    def validate(self, model, amp):
        from ..models.vq import psnr

        x = self.val_x.to(self.d.device)
        with evaluating(model) as net:
            out = net(x)
        used = out.indices.unique().numel() / net.config.codebook_size
        db = psnr(out.reconstruction, x)
        if self.d.is_main:
            shown = torch.cat([x[:SHOWN], out.reconstruction[:SHOWN].clamp(-1, 1)]).cpu()  # (2 n, C, S, S)
            image_grid(shown, self.run / "reconstructions.png", ncol=min(SHOWN, len(x)), row_labels=["in", "VQ"],
                       title=f"{self.recipe.name or 'run'}: held-out PSNR {db:.1f} dB")
        return {"val_loss": out.loss.item(), "psnr": db, "perplexity": out.perplexity.item(), "codebook_used": used}

    def save_files(self, directory):
        """No tokenizer: the images are the data."""
