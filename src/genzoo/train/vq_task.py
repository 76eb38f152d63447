"""The VQ-VAE image tokenizer task on scikit-learn's digits: reconstruction MSE + commitment (van den Oord et al.,
2017, eq. 3, EMA codebook). Validation reports the reconstruction PSNR of the held-out images, the perplexity of
their codes and the share of the codebook they use."""

from __future__ import annotations

import torch

from ..modes import evaluating
from .tasks import TASKS, DigitsTask, autocast, build_from_recipe


@TASKS.register("vq")
class ImageTokenizerTask(DigitsTask):
    loss_label = "reconstruction MSE + commitment"

    def build_model(self):
        return build_from_recipe(self.recipe, image_size=8, channels=1)

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
        return {"val_loss": out.loss.item(), "psnr": psnr(out.reconstruction, x),
                "perplexity": out.perplexity.item(), "codebook_used": used}

    def save_files(self, directory):
        """No tokenizer: the images are the data."""
