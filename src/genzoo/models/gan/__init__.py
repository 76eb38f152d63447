"""GANs: a class-conditional DCGAN (projection discriminator), losses by name (non-saturating, hinge, WGAN-GP) and
stabilisers as options (spectral norm, R1 penalty, EMA of G, TTUR learning rates)."""

from .config import GANConfig
from .losses import GAN_LOSSES, gradient_penalty, r1_penalty
from .model import D_NORMS, GANModel, GANOutput

__all__ = ["D_NORMS", "GAN_LOSSES", "GANConfig", "GANModel", "GANOutput", "gradient_penalty", "r1_penalty"]
