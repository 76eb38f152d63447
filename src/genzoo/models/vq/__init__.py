"""A VQ-VAE image tokenizer: images <-> grids of discrete codes (the image tokens of early fusion)."""

from .config import VQConfig
from .model import VQImageTokenizer, VQOutput, psnr
from .quantizer import VectorQuantizer

__all__ = ["VQConfig", "VQImageTokenizer", "VQOutput", "VectorQuantizer", "psnr"]
