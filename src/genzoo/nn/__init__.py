"""genzoo.nn: the shared parts every model is composed of. No model or family names live here."""

from .attention import Attention
from .blocks import Block
from .cache import StaticKVCache
from .ffn import ACTIVATIONS, FFNS, GatedMLP, MLP
from .masks import AttnMask, build_mask
from .norms import NORMS, RMSNorm
from .positions import ALiBi, LearnedPositions, POSITIONS, RotaryPositions, SinusoidalPositions
from .softmax import SOFTMAX, softmax1

__all__ = [
    "ACTIVATIONS", "ALiBi", "Attention", "AttnMask", "Block", "FFNS", "GatedMLP", "LearnedPositions", "MLP",
    "NORMS", "POSITIONS", "RMSNorm", "RotaryPositions", "SOFTMAX", "SinusoidalPositions", "StaticKVCache",
    "build_mask", "softmax1",
]
