"""Fusing the aligned source distributions and the target's loss (FuseLLM, arXiv 2401.10491, sec. 3.2-3.3).

Per sequence, each source s has a distribution P_s over the target vocabulary at every target position
(`align.map_distributions`) and a cross-entropy CE_s against the gold text. The fusion function picks weights:

  min-ce   MinCE: all weight on the source with the lowest CE (the paper's default, eq. 4 with Fusion = MinCE);
  avg-ce   AvgCE: weights softmax(-CE_s / temperature) over the sources (the paper's AvgCE at temperature 1,
           `fuse.temperature`; below 1 it is sharper and tends to MinCE as the temperature goes to 0);
  none     no fusion: the target is trained with the causal language-modelling loss alone.
Every fusion function takes (ce, temperature); only AvgCE reads the temperature.
The fused distribution P = sum_s w_s P_s, and the target's loss (eq. 5) is

  L = lambda * L_CLM + (1 - lambda) * L_Fusion,   L_Fusion = - mean_t sum_v P[t, v] log Q[t, v],
Q the target's own next-token distribution. P stays sparse: the top k entries of every source side by side
(S * k ids per position, an id may repeat), so the dense (B, T, V) target is never built.

CE_s is the source's mean negative log-likelihood per *character* of the sequence on its own tokenization (the
paper's per-token CE is comparable only between tokenizers of one granularity; ours range from bytes to a
2048-entry BPE, where per-token CE would always favour the byte model).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..registry import Registry

FUSIONS: Registry = Registry("fusion")  # name -> weights (B, S) from per-sequence CE (B, S); None: no fusion


@FUSIONS.register("min-ce")
def min_ce(ce: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """One-hot on the source with the lowest CE (the first among ties): (B, S). The temperature is not used
    (MinCE is AvgCE's limit as the temperature goes to 0)."""
    return F.one_hot(ce.argmin(-1), ce.shape[-1]).to(ce.dtype)


@FUSIONS.register("avg-ce")
def avg_ce(ce: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """softmax(-CE / temperature) over the sources: (B, S). Temperature 1 is FuseLLM's AvgCE (arXiv 2401.10491,
    sec. 3.3, the weights softmax(-CE)); a lower one sharpens the weights towards the best source."""
    return torch.softmax(-ce / temperature, dim=-1)


@FUSIONS.register("none")
def no_fusion(ce: torch.Tensor | None = None, temperature: float = 1.0) -> None:
    """No fusion: the target learns from the gold tokens alone (the CLM baseline); the sources are not read."""
    return None


def fused_distribution(ids: torch.Tensor, probs: torch.Tensor, weights: torch.Tensor):
    """ids, probs (B, S, T, k) of S sources, weights (B, S) -> ids, probs (B, T, S * k) of sum_s w_s P_s."""
    b, s, t, k = ids.shape
    p = probs * weights[:, :, None, None]  # (B, S, T, k)
    return ids.permute(0, 2, 1, 3).reshape(b, t, s * k), p.permute(0, 2, 1, 3).reshape(b, t, s * k)


def sparse_cross_entropy(logits: torch.Tensor, ids: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """- sum_j probs[..., j] * log_softmax(logits)[..., ids[..., j]]: logits (B, T, V), ids/probs (B, T, J)
    -> (B, T). Equal to the dense cross-entropy against the distribution the (id, prob) pairs describe."""
    logq = torch.log_softmax(logits.float(), dim=-1)
    return -(logq.gather(-1, ids) * probs).sum(-1)


@dataclass
class FusionLoss:
    loss: torch.Tensor  # what is minimised
    clm: torch.Tensor  # the causal language-modelling term (mean over real positions)
    fusion: torch.Tensor | None  # the fusion term, None without fusion


def fusion_loss(logits: torch.Tensor, labels: torch.Tensor, lam: float, ids: torch.Tensor | None = None,
                probs: torch.Tensor | None = None) -> FusionLoss:
    """logits (B, T, V); labels (B, T): the next target token, -100 on padding; ids, probs (B, T, J) the fused
    distribution (None: CLM only). Both terms are means over the real (non-padding) positions; one log-softmax
    serves both."""
    real = labels != -100  # (B, T)
    n = real.sum().clamp(min=1)
    logq = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    clm = -(logq.gather(-1, labels.clamp(min=0)[..., None])[..., 0] * real).sum() / n
    if ids is None:
        return FusionLoss(clm, clm, None)
    fusion = -((logq.gather(-1, ids) * probs).sum(-1) * real).sum() / n  # sparse CE against the fused P
    return FusionLoss(lam * clm + (1 - lam) * fusion, clm, fusion)
