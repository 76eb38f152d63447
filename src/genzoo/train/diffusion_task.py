"""Class-conditional image diffusion on scikit-learn's digits (8x8). The loss is the denoising objective of the
model's schedule; validation reports that loss on the held-out images (fixed noise and timesteps), then samples
ten of every digit (DDIM, classifier-free guidance) and reports how often a frozen classifier reads the digit
asked for and the Fréchet distance to the held-out digits in that classifier's features. The samples are drawn
to `samples.png` in the run directory."""

from __future__ import annotations


import torch

from ..figures import image_grid
from ..modes import evaluating
from .tasks import TASKS, DigitsTask, autocast, build_from_recipe

SAMPLE_STEPS = 20
GUIDANCE = 2.0


@TASKS.register("diffusion")
class ImageDiffusion(DigitsTask):
    loss_label = "denoising loss (MSE of the predicted target)"
    def build_model(self):
        return build_from_recipe(self.recipe, image_size=8, channels=1, n_classes=10)

    def next_batch(self):
        batch, mine, start = self.take(len(self.train_x))
        idx = batch[mine]
        return self.train_x[idx].to(self.d.device), self.train_y[idx].to(self.d.device)

    def loss(self, model, batch, amp):
        x, y = batch
        with autocast(x.device, amp):
            return model(x, y).loss

    @torch.no_grad()
    def validate(self, model, amp):
        from ..models.diffusion.judges import accuracy, frechet_distance

        g = torch.Generator().manual_seed(0)
        x, y = self.val_x.to(self.d.device), self.val_y.to(self.d.device)
        with evaluating(model) as net:
            net = getattr(net, "module", net)
            loss = net(x, y, generator=g).loss.item()
            labels = torch.arange(10).repeat_interleave(10)
            images = net.sample(labels, num_inference_steps=SAMPLE_STEPS, guidance_scale=GUIDANCE,
                                generator=torch.Generator().manual_seed(1), device=x.device).cpu()
        if self.d.is_main:
            image_grid(images, self.run / "samples.png", ncol=10, title=f"{self.recipe.name or 'run'}: DDIM "
                       f"{SAMPLE_STEPS} steps, guidance {GUIDANCE}", row_labels=[str(c) for c in range(10)])
        return {"val_loss": loss, "sample_acc": accuracy(images, labels), "frechet": frechet_distance(images)}

    def save_files(self, directory):
        """No tokenizer: the images are the data."""
