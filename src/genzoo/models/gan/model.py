"""A class-conditional DCGAN (Radford et al. 2016, arXiv:1511.06434, sec. 3): a generator of transposed
convolutions with batch norm and ReLU (tanh at the output), a discriminator of strided convolutions with LeakyReLU
and no normalisation in its first layer. G is conditioned by a class embedding concatenated to z (Mirza & Osindero
2014, arXiv:1411.1784); D by projection (Miyato & Koyama 2018, arXiv:1802.05637, eq. 3):
D(x, y) = psi(phi(x)) + embed(y) . phi(x).

`GANModel` holds G, D and (with ema_decay > 0) an exponential moving average of G's weights (Yazici et al. 2019,
arXiv:1806.04498), which `sample` uses. `discriminator_loss` / `generator_loss` compute one step's objective
(`losses.py`); the `gan` task (`genzoo.train.gan_task`) steps D and G with their own optimisers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ...config import GENRES
from ...errors import InputError
from ...modes import evaluating
from ...registry import Registry
from .config import GANConfig
from .losses import GAN_LOSSES, gradient_penalty, r1_penalty

D_NORMS: Registry = Registry("discriminator norm")
D_NORMS.register("batch", nn.BatchNorm2d)
D_NORMS.register("layer", lambda c: nn.GroupNorm(1, c))  # LayerNorm over (C, H, W), per sample (WGAN-GP sec. 4)
D_NORMS.register("none", lambda c: nn.Identity())


@dataclass
class GANOutput:
    images: torch.Tensor | None = None  # (B, C, H, W) in [-1, 1]
    loss: torch.Tensor | None = None  # the objective of the network being trained this step
    real_logits: torch.Tensor | None = None  # (B,) D on real images
    fake_logits: torch.Tensor | None = None  # (B,) D on generated images
    penalty: torch.Tensor | None = None  # the gradient penalty (R1 or WGAN-GP) inside `loss`


class Generator(nn.Module):
    """[z, embed(y)] (B, Z + E) -> Linear -> (B, C0, s, s) -> [BN, ReLU, ConvTranspose 4x4 stride 2] x n_up -> tanh."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        widths = [cfg.g_channels * 2 ** (cfg.n_up - 1 - i) for i in range(cfg.n_up)]  # e.g. [128, 64]
        self.classes = nn.Embedding(cfg.n_classes, cfg.class_dim) if cfg.n_classes else None
        self.s, self.c0 = cfg.base_size, widths[0]
        self.project = nn.Linear(cfg.z_dim + (cfg.class_dim if cfg.n_classes else 0), widths[0] * cfg.base_size ** 2)
        layers: list[nn.Module] = [nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for i, c in enumerate(widths):
            last = i == len(widths) - 1
            out = cfg.channels if last else widths[i + 1]
            layers.append(nn.ConvTranspose2d(c, out, 4, stride=2, padding=1))  # doubles H and W
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(out), nn.ReLU()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:  # (B, Z), (B,) -> (B, C, H, W)
        h = z if self.classes is None else torch.cat([z, self.classes(labels)], dim=1)  # (B, Z + E)
        h = self.project(h).view(z.shape[0], self.c0, self.s, self.s)  # (B, C0, s, s)
        return self.body(h)


class Discriminator(nn.Module):
    """x (B, C, H, W) -> [Conv 4x4 stride 2, (norm), LeakyReLU 0.2] x n_up -> phi(x) (B, F) -> psi(phi) + projection."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        sn = spectral_norm if cfg.spectral_norm else (lambda m: m)
        layers: list[nn.Module] = []
        c_in = cfg.channels
        for i in range(cfg.n_up):
            c = cfg.d_channels * 2 ** i
            layers.append(sn(nn.Conv2d(c_in, c, 4, stride=2, padding=1)))  # halves H and W
            if i > 0:  # no normalisation on D's input layer (DCGAN sec. 3)
                layers.append(D_NORMS.get(cfg.d_norm)(c))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c
        self.body = nn.Sequential(*layers, nn.Flatten())
        features = c_in * cfg.base_size ** 2
        self.psi = sn(nn.Linear(features, 1))
        self.classes = sn(nn.Embedding(cfg.n_classes, features)) if cfg.n_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:  # -> logits (B,)
        phi = self.body(x)  # (B, F)
        out = self.psi(phi).squeeze(1)  # (B,)
        if self.classes is not None:
            out = out + (self.classes(labels) * phi).sum(1)  # projection: <V y, phi(x)>
        return out


def dcgan_init(m: nn.Module) -> None:
    """DCGAN sec. 4: weights from N(0, 0.02), batch-norm scales from N(1, 0.02), biases zero (a spectral-normed layer's
    weight is its `original`)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
        w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
        nn.init.normal_(w, 0.0, 0.02)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


@GENRES.register("gan")
class GANModel(nn.Module):
    config_class = GANConfig

    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)
        self.apply(dcgan_init)
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False) if config.ema_decay > 0 else None
        self.loss_fn = GAN_LOSSES.get(config.loss)

    # ---- inputs ----
    def check_labels(self, labels: torch.Tensor | None, n: int | None = None) -> int:
        """The batch size; labels (B,) in [0, n_classes) for a class-conditional model, n for an unconditional one."""
        k = self.config.n_classes
        if k and labels is None:
            raise InputError(f"this GAN is class-conditional: give labels in [0, {k - 1}]")
        if labels is None:
            if not (isinstance(n, int) and n > 0):
                raise InputError(f"an unconditional GAN needs n, a positive number of images; got {n!r}")
            return n
        if not k:
            raise InputError("this GAN is unconditional (n_classes=0): give n, not labels")
        if labels.dim() != 1 or labels.dtype not in (torch.int32, torch.int64):
            raise InputError(f"labels must be integer class indices (B,), got {labels.dtype} {tuple(labels.shape)}")
        if labels.numel() and bool(((labels < 0) | (labels >= k)).any()):
            raise InputError(f"class index out of range: labels must be in [0, {k - 1}], got "
                             f"{labels.min().item()}..{labels.max().item()}")
        return labels.shape[0]

    def check_images(self, x: torch.Tensor) -> None:
        c = self.config
        want = (c.channels, c.image_size, c.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != want:
            raise InputError(f"images must be (B, {', '.join(map(str, want))}), got {tuple(x.shape)}")

    def noise(self, b: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        return torch.randn(b, self.config.z_dim, generator=generator).to(device or self.generator.project.weight.device)

    # ---- generation ----
    def forward(self, labels: torch.Tensor | None = None, noise: torch.Tensor | None = None, n: int | None = None,
                generator: torch.Generator | None = None) -> GANOutput:
        """G(z, y) with the trained (not the averaged) generator: images (B, C, H, W) in [-1, 1]."""
        b = self.check_labels(labels, n if noise is None else noise.shape[0])
        z = self.noise(b, generator) if noise is None else noise
        if z.shape != (b, self.config.z_dim):
            raise InputError(f"noise must be ({b}, {self.config.z_dim}), got {tuple(z.shape)}")
        return GANOutput(images=self.generator(z, labels))

    @torch.no_grad()
    def sample(self, labels: torch.Tensor | None = None, n: int | None = None, generator: torch.Generator | None = None,
               device=None, ema: bool = True) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] for class labels (B,) (or n unconditional ones), in eval mode, from the
        EMA generator when there is one (ema=False: the trained one). One forward pass: no sampling chain."""
        b = self.check_labels(labels, n)
        g = self.generator_ema if ema and self.generator_ema is not None else self.generator
        device = device or g.project.weight.device
        z = self.noise(b, generator, device)
        with evaluating(g):
            return g(z, None if labels is None else labels.to(device))

    # ---- training objectives (one step each; `train.gan_task` steps the optimisers) ----
    def discriminator_loss(self, real: torch.Tensor, labels: torch.Tensor | None,
                           generator: torch.Generator | None = None) -> GANOutput:
        """D's loss on real images (B, C, H, W) and as many generated ones (G's output detached), with the R1 or
        WGAN-GP penalty the config asks for."""
        self.check_images(real)
        b = self.check_labels(labels, real.shape[0])
        c, d = self.config, self.discriminator
        with torch.no_grad():
            fake = self.generator(self.noise(b, generator, real.device), labels)
        penalty = None
        if c.r1_gamma > 0:  # the real logits come from the penalty's graph, no second forward
            penalty, real_logits = r1_penalty(lambda x: d(x, labels), real, c.r1_gamma)
        else:
            real_logits = d(real, labels)
        fake_logits = d(fake, labels)
        loss = self.loss_fn.d(real_logits, fake_logits)
        if self.loss_fn.gradient_penalty:
            gp = c.gp_weight * gradient_penalty(lambda x: d(x, labels), real, fake, generator)
            penalty = gp if penalty is None else penalty + gp
        if penalty is not None:
            loss = loss + penalty
        return GANOutput(images=fake, loss=loss, real_logits=real_logits.detach(), fake_logits=fake_logits.detach(),
                         penalty=None if penalty is None else penalty.detach())

    def generator_loss(self, labels: torch.Tensor | None, n: int | None = None,
                       generator: torch.Generator | None = None) -> GANOutput:
        """G's loss on a batch of generated images (D's parameters take no gradient)."""
        b = self.check_labels(labels, n)
        images = self.generator(self.noise(b, generator), labels)
        d = self.discriminator
        was = [p.requires_grad for p in d.parameters()]
        d.requires_grad_(False)
        try:
            fake_logits = d(images, labels)
        finally:
            for p, r in zip(d.parameters(), was):
                p.requires_grad_(r)
        return GANOutput(images=images, loss=self.loss_fn.g(fake_logits), fake_logits=fake_logits.detach())

    @torch.no_grad()
    def update_ema(self) -> None:
        """G_ema <- decay G_ema + (1 - decay) G for the weights; the batch-norm statistics are copied."""
        if self.generator_ema is None:
            return
        decay = self.config.ema_decay
        for e, p in zip(self.generator_ema.parameters(), self.generator.parameters()):
            e.lerp_(p, 1 - decay)
        for e, b in zip(self.generator_ema.buffers(), self.generator.buffers()):
            e.copy_(b)
