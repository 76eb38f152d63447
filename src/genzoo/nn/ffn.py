"""Position-wise feed-forward networks. Each takes its projections as plain `torch.nn.Linear` modules, so
quantization (`torch.ao.quantization.quantize_dynamic`) and adapter wrappers (LoRA) can swap them.

- `MLP`: ``down(act(up(x)))``, the Transformer FFN (Vaswani et al., 2017, eq. 2) with a GELU-family or ReLU
  activation (GPT-2 uses GELU with the tanh approximation); optionally with dropout on the hidden activations,
  ``down(drop(act(up(x))))`` (T5's DenseReluDense, GLiNER's projection layers).
- `GatedMLP`: ``down(act(gate(x)) * up(x))``, the GLU variants of Shazeer, "GLU Variants Improve
  Transformer" (2020), eq. 5-6: SwiGLU (act = SiLU, Llama/Mistral) and GeGLU (act = GELU).

`FFNS` factories share ``make(dim, hidden, activation, bias)``; `ACTIVATIONS` maps names to functions.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import Registry
from .activations import ACTIVATIONS
from .blocks import make_dropout


class MLP(nn.Module):
    """Two-layer FFN: (B, T, D) -> (B, T, F) -> (B, T, D') (D' = D unless `down` maps elsewhere).
    dropout: on the hidden activations, between the activation and `down` (0: none)."""

    def __init__(self, up: nn.Module, down: nn.Module, activation: str = "gelu", dropout: float = 0.0):
        super().__init__()
        self.act = ACTIVATIONS.get(activation)  # an unknown name fails here, when the model is built
        self.activation = activation
        self.up, self.down = up, down
        self.drop = make_dropout(dropout)

    @classmethod
    def build(cls, dim: int, hidden: int, activation: str = "gelu", bias: bool = True, dropout: float = 0.0) -> "MLP":
        return cls(nn.Linear(dim, hidden, bias=bias), nn.Linear(hidden, dim, bias=bias), activation, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.drop(self.act(self.up(x))))

    def extra_repr(self) -> str:
        return f"activation={self.activation}"


class GatedMLP(nn.Module):
    """Gated FFN (GLU family): (B, T, D) -> 2 x (B, T, F) -> (B, T, D)."""

    def __init__(self, gate: nn.Module, up: nn.Module, down: nn.Module, activation: str = "silu"):
        super().__init__()
        self.act = ACTIVATIONS.get(activation)  # an unknown name fails here, when the model is built
        self.activation = activation
        self.gate, self.up, self.down = gate, up, down

    @classmethod
    def build(cls, dim: int, hidden: int, activation: str = "silu", bias: bool = False) -> "GatedMLP":
        return cls(nn.Linear(dim, hidden, bias=bias), nn.Linear(dim, hidden, bias=bias),
                   nn.Linear(hidden, dim, bias=bias), activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.gate(x)) * self.up(x))

    def extra_repr(self) -> str:
        return f"activation={self.activation}"


FFNS: Registry = Registry("ffn")
FFNS.register("mlp", MLP.build)
FFNS.register("gated", GatedMLP.build)
# gated FFNs named after their activation (SwiGLU, GeGLU): the name fixes the activation
GATED_ACTIVATIONS = {"swiglu": "silu", "geglu": "gelu"}
GATED = ("gated", *GATED_ACTIVATIONS)  # every gated FFN name
for _name, _act in GATED_ACTIVATIONS.items():
    FFNS.register(_name, lambda dim, hidden, activation=_act, bias=False, _act=_act: GatedMLP.build(dim, hidden, _act,
                                                                                                      bias))
