"""Forward-pass results. Field names follow `transformers` so code written for it reads the same."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class CausalLMOutput:
    logits: torch.Tensor  # (B, T, V), or (B, K, V) for the last K positions
    loss: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None  # (B, T, D) after the final norm
    aux_loss: torch.Tensor | None = None  # mixture of experts: the load-balancing loss
    router_logits: tuple[torch.Tensor, ...] | None = None  # mixture of experts: per layer (B T, E)
    router_loss: torch.Tensor | None = None  # mixture of experts: the weighted router losses inside `loss`
