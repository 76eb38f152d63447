"""genzoo.nn: the shared parts every model is composed of. No model or family names live here."""

from .activations import ACTIVATIONS
from .attention import ATTENTION_BACKENDS, Attention
from .blocks import Block, GatedCrossBlock, make_dropout
from .cache import StaticKVCache
from .disentangled import DisentangledBias, RelativeEmbeddings
from .ffn import FFNS, GatedMLP, MLP
from .gates import ATTENTION_GATES, AttentionGate, make_gate, reset_gates
from .masks import AttnMask, build_mask
from .moe import SparseMoE, StackedExperts, TopKRouter, load_balancing_loss, router_z_loss
from .norms import NORMS, RMSNorm
from .packing import Packing
from .positions import ALiBi, LearnedPositions, POSITIONS, RotaryPositions, SinusoidalPositions, T5RelativeBias
from .softmax import SOFTMAX, make_softmax, softmax1
from .stack import Stack, attention_options, make_positions

__all__ = [
    "ACTIVATIONS", "ALiBi", "ATTENTION_BACKENDS", "ATTENTION_GATES", "Attention", "AttentionGate", "AttnMask", "Block",
    "DisentangledBias", "FFNS", "GatedCrossBlock", "GatedMLP", "LearnedPositions", "MLP", "NORMS", "POSITIONS", "Packing",
    "RMSNorm", "RelativeEmbeddings", "RotaryPositions", "SOFTMAX", "SinusoidalPositions", "SparseMoE", "Stack",
    "StackedExperts", "StaticKVCache", "T5RelativeBias", "TopKRouter", "build_mask", "load_balancing_loss",
    "attention_options", "make_dropout", "make_gate", "reset_gates", "make_positions", "router_z_loss", "softmax1",
    "make_softmax",
]
