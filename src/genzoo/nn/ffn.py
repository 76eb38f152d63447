"""Position-wise feed-forward networks.

- `MLP`: ``down(act(up(x)))``, the Transformer FFN (Vaswani et al., 2017, eq. 2) with a GELU-family or ReLU
  activation (GPT-2 uses GELU with the tanh approximation).
- `GatedMLP`: ``down(act(gate(x)) * up(x))``, the GLU variants of Shazeer, "GLU Variants Improve
  Transformer" (2020), eq. 5-6: SwiGLU (act = SiLU, Llama/Mistral) and GeGLU (act = GELU).

`FFNS` factories share ``make(dim, hidden, activation, bias)``; `ACTIVATIONS` maps names to functions.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import Registry
from .activations import ACTIVATIONS
from .linear import Linear


class MLP(nn.Module):
    """Two-layer FFN: (B, T, D) -> (B, T, F) -> (B, T, D)."""

    def __init__(self, dim: int, hidden: int, activation: str = "gelu", bias: bool = True):
        super().__init__()
        ACTIVATIONS.get(activation)  # an unknown name fails here, when the model is built
        self.activation = activation  # applied by `Linear`, fused with the product where it can be
        self.up = Linear(dim, hidden, bias=bias)
        self.down = Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.up(x, activation=self.activation))

    def extra_repr(self) -> str:
        return f"activation={self.activation}"


class GatedMLP(nn.Module):
    """Gated FFN (GLU family): (B, T, D) -> 2 x (B, T, F) -> (B, T, D)."""

    def __init__(self, dim: int, hidden: int, activation: str = "silu", bias: bool = False):
        super().__init__()
        ACTIVATIONS.get(activation)  # an unknown name fails here, when the model is built
        self.activation = activation  # applied by `Linear`, fused with the product where it can be
        self.gate = Linear(dim, hidden, bias=bias)
        self.up = Linear(dim, hidden, bias=bias)
        self.down = Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.up(x, multiply=self.gate(x, activation=self.activation)))

    def extra_repr(self) -> str:
        return f"activation={self.activation}"


FFNS: Registry = Registry("ffn")
FFNS.register("mlp", MLP)
FFNS.register("gated", GatedMLP)
# gated FFNs named after their activation (SwiGLU, GeGLU): the name fixes the activation
GATED_ACTIVATIONS = {"swiglu": "silu", "geglu": "gelu"}
GATED = ("gated", *GATED_ACTIVATIONS)  # every gated FFN name
for _name, _act in GATED_ACTIVATIONS.items():
    FFNS.register(_name, lambda dim, hidden, activation=_act, bias=False, _act=_act: GatedMLP(dim, hidden, _act, bias))
