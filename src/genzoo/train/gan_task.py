"""Class-conditional GAN training on scikit-learn's digits (8x8): the task owns two optimisers, Adam for the
generator at the recipe's lr and Adam for the discriminator at lr * lr_d_ratio (TTUR, Heusel et al. 2017,
arXiv:1706.08500), and makes each update itself: d_steps discriminator steps on real batches (in the data order,
resumable) and generated ones, then one generator step on uniformly drawn classes, then the EMA of G. Validation
samples twenty of every digit and reports how often the frozen classifier of the diffusion genre reads the digit
asked for and the Fréchet distance to the held-out digits in its features (`models.diffusion.judges`), as the
`diffusion` task does; the samples are drawn to `samples.png`."""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..figures import image_grid
from .tasks import TASKS, DigitsTask, build_from_recipe

PER_CLASS = 20  # validation samples of each digit


@TASKS.register("gan")
class GANTraining(DigitsTask):
    loss_label = "discriminator loss"

    def __init__(self, recipe, run, d):
        super().__init__(recipe, run, d)
        if recipe.grad_accum != 1:
            raise ConfigError(f"task 'gan': grad_accum={recipe.grad_accum} is not used (each update is one batch); "
                              "set it to 1 and raise batch_size instead")

    def build_model(self):
        return build_from_recipe(self.recipe, image_size=8, channels=1, n_classes=10)

    def next_batch(self):
        batch, mine, _ = self.take(len(self.train_x))
        idx = batch[mine]
        return self.train_x[idx].to(self.d.device), self.train_y[idx].to(self.d.device)

    def make_optimizers(self, model):
        r, c = self.recipe, model.config

        def adam(module, lr):
            return torch.optim.Adam(module.parameters(), lr=lr, betas=(r.beta1, r.beta2), weight_decay=r.weight_decay)

        return {"generator": adam(model.generator, r.lr), "discriminator": adam(model.discriminator,
                                                                              r.lr * c.lr_d_ratio)}

    def _apply(self, loss, opt, module):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.recipe.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.recipe.grad_clip)
        opt.step()

    def train_step(self, model, optimizers, amp):
        g_opt, d_opt = optimizers["generator"], optimizers["discriminator"]
        for _ in range(model.config.d_steps):
            x, y = self.next_batch()
            out = model.discriminator_loss(x, y)
            self._apply(out.loss, d_opt, model.discriminator)
        labels = torch.randint(model.config.n_classes, (x.shape[0],), device=x.device)
        g = model.generator_loss(labels)
        self._apply(g.loss, g_opt, model.generator)
        model.update_ema()
        figures = {"loss": out.loss.item(), "loss_g": g.loss.item(), "d_real": out.real_logits.mean().item(),
                   "d_fake": out.fake_logits.mean().item()}
        if out.penalty is not None:
            figures["penalty"] = out.penalty.item()
        return figures

    def units_per_step(self):
        return self.global_batch * self.recipe.grad_accum

    def loss(self, model, batch, amp):
        raise NotImplementedError("task 'gan' makes its own updates (train_step)")

    @torch.no_grad()
    def validate(self, model, amp):
        from ..models.diffusion.judges import accuracy, frechet_distance

        labels = torch.arange(10).repeat_interleave(PER_CLASS)
        images = model.sample(labels, generator=torch.Generator().manual_seed(1)).cpu()
        if self.d.is_main:
            shown = images.view(10, PER_CLASS, *images.shape[1:])[:, :10].flatten(0, 1)  # 10 of each digit
            image_grid(shown, self.run / "samples.png", ncol=10, title=f"{self.recipe.name or 'run'}: "
                       f"{'EMA ' if model.generator_ema is not None else ''}generator",
                       row_labels=[str(c) for c in range(10)])
        return {"sample_acc": accuracy(images, labels), "frechet": frechet_distance(images)}

    def save_files(self, directory):
        """No tokenizer: the images are the data."""
