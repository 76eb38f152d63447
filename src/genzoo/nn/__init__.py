"""genzoo.nn: the shared parts every model is composed of. No model or family names live here."""

from .activations import ACTIVATIONS
from .attention import ATTENTION_BACKENDS, Attention
from .blocks import Block, CrossBlock, make_dropout
from .cache import StaticKVCache
from .disentangled import DisentangledBias, RelativeEmbeddings
from .ffn import FFNS, GatedMLP, MLP
from .linear import Linear, set_onednn
from .masks import AttnMask, build_mask
from .moe import SparseMoE, StackedExperts, TopKRouter, load_balancing_loss, router_z_loss
from .norms import NORMS, RMSNorm
from .packing import Packing
from .positions import ALiBi, LearnedPositions, POSITIONS, RotaryPositions, SinusoidalPositions, T5RelativeBias
from .softmax import SOFTMAX, softmax1

__all__ = [
    "ACTIVATIONS", "ALiBi", "ATTENTION_BACKENDS", "Attention", "AttnMask", "Block", "CrossBlock",
    "DisentangledBias", "FFNS", "GatedMLP", "LearnedPositions", "Linear", "MLP", "NORMS", "POSITIONS", "Packing",
    "RMSNorm", "RelativeEmbeddings", "RotaryPositions", "SOFTMAX", "SinusoidalPositions", "SparseMoE",
    "StackedExperts", "StaticKVCache", "T5RelativeBias", "TopKRouter", "build_mask", "load_balancing_loss",
    "make_dropout", "router_z_loss", "set_onednn", "softmax1",
]
