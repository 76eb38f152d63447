"""Gated attention (Bondarenko et al., "Quantizable Transformers: Removing Outliers by Helping Attention Heads Do
Nothing", 2023, arXiv 2306.12929, sec. 4.2, eq. 5-6):

    GatedAttention(x)_i = sigmoid(G_i(x)) * softmax(Q_i K_i^T / sqrt(d_head)) V_i       (head i, every token)

Each head's output is scaled, token by token, by a gate pi_i(x_t) in (0, 1) computed from the attention's own
input x_t. A head that has nothing to add closes its gate instead of putting all its attention on a
low-information token (the "no-op" behaviour the paper traces the activation outliers to, sec. 3). The gate
acts on the heads' outputs before the output projection, so it works with every attention backend, softmax
variant, mask, cache and unpadded batch. In cross-attention (T5's decoder, the UNet's text attention) x is the
query stream, not the memory: a query position decides how much its head adds.

`ATTENTION_GATES` names the gate parts (`Attention(..., gate=...)`, a config's ``attn_gate`` field):
- ``none``: no gate;
- ``head``: the paper's default, one linear map per head from that head's d_model / H slice of x to a logit
  (their "conditional per token" gate with a linear G_i: R^{d_model / H} -> R);
- ``linear``: one `nn.Linear(d_model, H)` over all features (the paper's "all features" ablation).
Both start with bias logit(init) and small weights, so every gate opens to about `init` (0.25) at the start.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry

ATTENTION_GATES: Registry = Registry("attention gate")


class AttentionGate(nn.Module):
    """Scales each head's attention output by sigmoid(logits(x)). Subclasses compute the (..., H) logits."""

    def __init__(self, n_heads: int, init: float = 0.25, std: float = 0.02):
        super().__init__()
        if not 0.0 < init < 1.0:
            raise ConfigError(f"attention gate init={init!r} is invalid: the initial gate value must lie in (0, 1)")
        self.n_heads, self.init, self.std = n_heads, init, std

    def logits(self, x: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., H)
        raise NotImplementedError

    def forward(self, x: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
        """x (..., D), the attention's input; heads (..., H * Dh), the heads' outputs -> (..., H * Dh) gated."""
        pi = torch.sigmoid(self.logits(x))  # (..., H)
        gated = heads.unflatten(-1, (self.n_heads, -1)) * pi.unsqueeze(-1).to(heads.dtype)  # (..., H, Dh)
        return gated.flatten(-2)  # (..., H * Dh)

    def init_logit(self) -> float:
        """The bias that opens the gate to `init` for a zero input: logit(init)."""
        return math.log(self.init / (1.0 - self.init))


class HeadGate(AttentionGate):
    """G_i(x) = w_i . x[i * C:(i + 1) * C] + b_i, C = D / H: head i reads its own slice of the input."""

    def __init__(self, dim: int, n_heads: int, init: float = 0.25, std: float = 0.02):
        super().__init__(n_heads, init, std)
        if dim % n_heads:
            raise ConfigError(f"attention gate 'head' splits d_model={dim} into n_heads={n_heads} slices: d_model "
                              "must be a multiple of n_heads (or use attn_gate='linear')")
        self.weight = nn.Parameter(torch.empty(n_heads, dim // n_heads))  # (H, C)
        self.bias = nn.Parameter(torch.empty(n_heads))  # (H,)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=self.std)
        nn.init.constant_(self.bias, self.init_logit())

    def logits(self, x):
        slices = x.unflatten(-1, (self.n_heads, -1))  # (..., H, C)
        return (slices * self.weight.to(x.dtype)).sum(-1) + self.bias.to(x.dtype)  # (..., H)


class LinearGate(AttentionGate):
    """G(x) = W x + b with W (H, D): every head's gate reads the whole input (a plain nn.Linear)."""

    def __init__(self, dim: int, n_heads: int, init: float = 0.25, std: float = 0.02):
        super().__init__(n_heads, init, std)
        self.proj = nn.Linear(dim, n_heads)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.proj.weight, std=self.std)
        nn.init.constant_(self.proj.bias, self.init_logit())

    def logits(self, x):
        return self.proj(x)  # (..., H)


ATTENTION_GATES.register("none", lambda dim, n_heads, **kw: None)
ATTENTION_GATES.register("head", HeadGate)
ATTENTION_GATES.register("linear", LinearGate)


def make_gate(name: str, dim: int, n_heads: int, **kw) -> AttentionGate | None:
    """The gate part registered as `name` for an attention over a width-`dim` input with `n_heads` heads."""
    return ATTENTION_GATES.get(name)(dim, n_heads, **kw)


def reset_gates(model: nn.Module) -> None:
    """Re-initialise every gate of `model` (after a model-wide init that zeroes biases)."""
    for m in model.modules():
        if isinstance(m, AttentionGate):
            m.reset_parameters()
