"""GAN objectives, registered by name, and the gradient penalties that stabilise them.

Each loss gives the discriminator's loss from its logits on real and generated images, and the generator's loss
from its logits on generated images (D(x) is a logit, any real number):

- ``non-saturating`` (Goodfellow et al. 2014, arXiv:1406.2661, sec. 3): D minimises -log sigmoid(D(x)) -
  log(1 - sigmoid(D(G(z)))), G minimises -log sigmoid(D(G(z))) instead of log(1 - sigmoid(D(G(z)))), whose gradient
  vanishes while D rejects the samples. -log sigmoid(a) = softplus(-a).
- ``hinge`` (Lim & Ye 2017, arXiv:1705.02894; Miyato et al. 2018, arXiv:1802.05957, eq. 16-17): D minimises
  relu(1 - D(x)) + relu(1 + D(G(z))), G minimises -D(G(z)).
- ``wgan-gp`` (Gulrajani et al. 2017, arXiv:1704.00028, eq. 3): the critic minimises D(G(z)) - D(x) plus
  `gradient_penalty`; G minimises -D(G(z)).

`r1_penalty` is Mescheder et al. 2018 (arXiv:1801.04406), eq. 9: gamma/2 E_real ||grad_x D(x)||^2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ...registry import Registry


@dataclass(frozen=True)
class GANLoss:
    d: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (real logits (B,), fake logits (B,)) -> scalar
    g: Callable[[torch.Tensor], torch.Tensor]  # fake logits (B,) -> scalar
    gradient_penalty: bool = False  # the critic's loss adds `gradient_penalty` (WGAN-GP)


GAN_LOSSES: Registry = Registry("GAN loss")
GAN_LOSSES.register("non-saturating", GANLoss(d=lambda r, f: F.softplus(-r).mean() + F.softplus(f).mean(),
                                              g=lambda f: F.softplus(-f).mean()))
GAN_LOSSES.register("hinge", GANLoss(d=lambda r, f: F.relu(1 - r).mean() + F.relu(1 + f).mean(), g=lambda f: -f.mean()))
GAN_LOSSES.register("wgan-gp", GANLoss(d=lambda r, f: f.mean() - r.mean(), g=lambda f: -f.mean(),
                                       gradient_penalty=True))


def input_gradient(critic: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(critic(x) (B,), d sum(critic(x)) / dx (B, ...)), the gradient kept in the graph (create_graph) so that a
    penalty on it trains the critic. Each row's gradient is its own when the critic treats rows independently
    (no batch norm)."""
    x = x.detach().requires_grad_(True)
    out = critic(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return out, grad


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """WGAN-GP: E_xhat (||grad_xhat D(xhat)||_2 - 1)^2 at xhat = eps x + (1 - eps) G(z), eps ~ U[0, 1] per row."""
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), generator=generator).to(real)  # (B, 1, 1, 1)
    _, grad = input_gradient(critic, eps * real.detach() + (1 - eps) * fake.detach())
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(critic, real: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(gamma / 2 * E ||grad_x D(x)||^2 over real x, D(x) (B,)): the logits come back so that D's loss reuses them."""
    out, grad = input_gradient(critic, real)
    return gamma / 2 * grad.flatten(1).pow(2).sum(1).mean(), out
