"""How DPOK (Fan et al., arXiv 2305.16381, Algorithm 1) turns rewards into per-trajectory advantages, and the
reward shaping of the seed's "Training Diffusion Models with RL" practices for text prompts, as registered names
(`RLConfig.normalise`, `RLConfig.penalty`).

A reward function returns either a vector (B,) (the reward of each image for its own prompt) or a matrix
(B, 1 + M): column 0 the image's reward for its own prompt, columns 1..M its reward for M contrastive prompts (the
same template with another shape or colour, `data.shape_captions.contrastive`). With a vector, M = 0.

Advantages (`ADVANTAGES`), from the shaped reward r (B,) and the matrix R (B, 1 + M):
- "value": r itself; DPOK's learned value V(x_t, c) is subtracted per step (their eq. 8).
- "prompt": DDPO's per-prompt normalisation (Black et al., arXiv 2305.13301, sec. 4.3): (r - mean) / std over the
  batch's trajectories of the same prompt.
- "batch": (r - mean) / std over the whole batch.
- "contrastive" (the seed's practice (a)): normalised over the image's own contrastive prompts instead of the batch,
      A_i = (r_i - mean_j R[i, j]) / (std_j R[i, j] + eps),   j = 1..M,
  so an image earns a positive advantage only when it matches its prompt better than the prompts that differ from
  it in one word (the shape, or the colour), whatever the batch's other prompts are.
- "none": r as is.

Penalties (`PENALTIES`), subtracted from the own-prompt reward (weight `RLConfig.penalty_weight`):
- "none": 0.
- "inconsistency" (the seed's practice (c), a textual-inconsistency penalty in embedding space): 1 when some
  contrastive prompt is strictly closer to the image than its own prompt (max_j R[i, j] > R[i, 0]), else 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ....errors import InputError
from ....registry import Registry

EPS = 1e-6


@dataclass(frozen=True)
class Advantage:
    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (r (B,), R (B, 1+M), labels (B,))
    value_baseline: bool = False  # subtract DPOK's learned value V(x_t, c) per step
    needs_contrastive: bool = False  # needs M >= 2 contrastive columns


ADVANTAGES: Registry[Advantage] = Registry("advantage normalisation")
PENALTIES: Registry[Callable[[torch.Tensor], torch.Tensor]] = Registry("reward penalty")


def reward_table(scores: torch.Tensor, batch: int) -> torch.Tensor:
    """A reward function's output as the matrix (B, 1 + M): a vector (B,) becomes one column."""
    if scores.dim() == 1:
        scores = scores[:, None]
    if scores.dim() != 2 or scores.shape[0] != batch:
        raise InputError(f"a reward must be ({batch},) or ({batch}, 1 + M) (own prompt, then M contrastive prompts), "
                         f"got {tuple(scores.shape)}")
    return scores.float()


def per_prompt(r: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    out = torch.zeros_like(r)
    for c in labels.unique():  # per-prompt statistics over this batch; a prompt seen once has advantage 0
        m = labels == c
        if m.sum() > 1:
            out[m] = (r[m] - r[m].mean()) / (r[m].std() + EPS)
    return out


def over_batch(r: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (r - r.mean()) / (r.std() + EPS) if len(r) > 1 else torch.zeros_like(r)


def over_contrastive(r: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """(r_i - mean_j R[i, j]) / (std_j R[i, j] + eps) over the contrastive columns j = 1..M of each row."""
    others = table[:, 1:]  # (B, M)
    if others.shape[1] < 2:
        raise InputError(f"contrastive normalisation needs >= 2 contrastive prompts per image, got {others.shape[1]}")
    return (r - others.mean(1)) / (others.std(1) + EPS)


ADVANTAGES.register("value", Advantage(lambda r, table, labels: r, value_baseline=True))
ADVANTAGES.register("prompt", Advantage(lambda r, table, labels: per_prompt(r, labels)))
ADVANTAGES.register("batch", Advantage(lambda r, table, labels: over_batch(r, labels)))
ADVANTAGES.register("contrastive", Advantage(lambda r, table, labels: over_contrastive(r, table),
                                             needs_contrastive=True))
ADVANTAGES.register("none", Advantage(lambda r, table, labels: r))


def inconsistent(table: torch.Tensor) -> torch.Tensor:
    """(B,) 1.0 where a contrastive prompt is strictly closer to the image than its own prompt, else 0.0."""
    if table.shape[1] < 2:
        return torch.zeros(len(table), device=table.device)
    return (table[:, 1:].max(1).values > table[:, 0]).float()


PENALTIES.register("none", lambda table: torch.zeros(len(table), device=table.device))
PENALTIES.register("inconsistency", inconsistent)


def shape_rewards(scores: torch.Tensor, labels: torch.Tensor, normalise: str, penalty: str,
                  penalty_weight: float) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """A reward function's output (B,) or (B, 1 + M) -> (the shaped reward r (B,) the value net regresses on, the
    advantage (B,) before any value baseline, statistics). r = R[:, 0] - penalty_weight * penalty(R)."""
    table = reward_table(scores, len(labels))
    adv = ADVANTAGES.get(normalise)
    if adv.needs_contrastive and table.shape[1] < 3:
        raise InputError(f"normalise={normalise!r} needs a reward matrix (B, 1 + M) with M >= 2 contrastive prompts, "
                         f"got {tuple(table.shape)}")
    pen = PENALTIES.get(penalty)(table)  # (B,)
    r = table[:, 0] - penalty_weight * pen
    stats = {"reward": table[:, 0].mean().item(), "shaped_reward": r.mean().item(),
             "inconsistent": inconsistent(table).mean().item()}
    return r, adv.fn(r, table, labels), stats
