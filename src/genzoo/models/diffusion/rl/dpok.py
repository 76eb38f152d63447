"""DPOK (Fan et al., "DPOK: Reinforcement Learning for Fine-tuning Text-to-Image Diffusion Models", 2023).

The denoising chain is an MDP (their sec. 4.1): state (x_t, t, c), action x_{t-1}, policy the DDIM step with
eta = 1, p_theta(x_{t-1} | x_t, c) = N(mean_theta(x_t, t, c), sigma_t^2 I); the reward r(x_0, c) arrives at the
end. The objective (their eq. 7) is E[-r] + beta KL(p_theta || p_pre), with the KL bounded by the per-step terms
(their Lemma 4.2), which for Gaussians with equal variance are || eps_theta(x_t, t, c) - eps_pre(x_t, t, c) ||^2
up to a constant per step. The gradient (their eq. 8, Algorithm 1):

    - E[ (r - V(x_t, c)) grad log p_theta(x_{t-1} | x_t, c) ] + beta E[ grad || eps_theta - eps_pre ||^2 ]

with a learned value baseline V, and the PPO-style clipped importance ratio of their Algorithm 1 so a rollout
can serve a few gradient steps. Option `normalise="prompt"`: DDPO's per-prompt reward normalisation (Black et
al., 2023, sec. 4.3) instead of the value baseline; the seed's text-prompt practices (contrastive normalisation,
the textual-inconsistency penalty) are further registered names of `practices` (`normalise`, `penalty`).

Conditions: by default a trajectory's label is a class (B,) passed to `model.predict(x, t, labels)`; `condition`
maps the labels to other keyword arguments of `predict`, e.g. prompt indices (B,) -> {"labels": None, "context":
text token states (B, L, D)} for a text-conditioned model (`prompts.PromptTable.condition`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ....errors import ConfigError
from ....modes import evaluating
from ....nn.positions import SinusoidalPositions
from ..schedulers import DDIMScheduler, gaussian_log_prob
from .practices import ADVANTAGES, PENALTIES, shape_rewards


@dataclass
class RLConfig:
    iterations: int = 20  # rollouts; reward queries = iterations * batch
    batch: int = 64  # trajectories (and reward queries) per iteration
    steps: int = 10  # DDIM steps of a trajectory (the MDP's horizon)
    beta: float = 0.01  # KL weight; 0 turns the regulariser off
    lr: float = 1e-5
    value_lr: float = 1e-3
    clip: float = 0.2  # PPO ratio clipping
    epochs: int = 1  # passes over each rollout's transitions
    minibatch: int = 128  # transitions per gradient step
    normalise: str = "value"  # practices.ADVANTAGES: value, prompt (DDPO), batch, contrastive, none
    penalty: str = "none"  # practices.PENALTIES: none, inconsistency
    penalty_weight: float = 1.0  # subtracted from the reward where the penalty fires
    grad_clip: float = 1.0
    n_classes: int = 10  # classes, or prompts of a prompt table (the labels are their indices)
    seed: int = 0

    def __post_init__(self):
        for f, table in (("normalise", ADVANTAGES), ("penalty", PENALTIES)):
            if getattr(self, f) not in table:
                raise ConfigError(f"{f}={getattr(self, f)!r} is invalid: one of {', '.join(sorted(table))}")
        if self.penalty_weight < 0:
            raise ConfigError(f"penalty_weight={self.penalty_weight!r} is invalid: >= 0")
        for f in ("iterations", "batch", "steps", "epochs", "minibatch"):
            if not (isinstance(getattr(self, f), int) and getattr(self, f) > 0):
                raise ConfigError(f"{f}={getattr(self, f)!r} is invalid: a positive integer")
        if self.beta < 0:
            raise ConfigError(f"beta={self.beta!r} is invalid: >= 0")


class ValueNet(nn.Module):
    """V(x_t, t, c): the expected final reward from a state, an MLP over the pixels, a timestep embedding and a
    class embedding."""

    def __init__(self, pixels: int, num_timesteps: int, n_classes: int, hidden: int = 128):
        super().__init__()
        self.time = SinusoidalPositions(num_timesteps, 32)
        self.classes = nn.Embedding(n_classes, 32)
        self.mlp = nn.Sequential(nn.Linear(pixels + 64, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, x, t, labels):  # (B, C, H, W), (B,), (B,) -> (B,)
        return self.mlp(torch.cat([x.flatten(1), self.time(t), self.classes(labels)], dim=1)).squeeze(1)


@dataclass
class Rollout:
    states: torch.Tensor  # (K, B, C, H, W) x_t before each step
    actions: torch.Tensor  # (K, B, C, H, W) x_{t-1}
    log_probs: torch.Tensor  # (K, B) log p_old(x_{t-1} | x_t)
    timesteps: list  # K ints
    stds: list  # K floats, sigma_t
    images: torch.Tensor  # (B, C, H, W) x_0
    labels: torch.Tensor  # (B,)


def class_condition(labels: torch.Tensor) -> dict:
    """The default condition: the labels are classes."""
    return {"labels": labels}


def policy_scheduler(model, steps: int) -> DDIMScheduler:
    sched = DDIMScheduler(**model.config.scheduler_config())
    sched.set_timesteps(steps)
    return sched


@torch.no_grad()
def rollout(model, labels: torch.Tensor, steps: int, generator: torch.Generator | None = None,
            condition: Callable[[torch.Tensor], dict] = class_condition) -> Rollout:
    """Trajectories of the DDIM (eta = 1) policy from pure noise; every step's Gaussian log-probability."""
    c, device = model.config, labels.device
    cond = condition(labels)
    sched = policy_scheduler(model, steps)
    b = len(labels)
    x = torch.randn((b, c.channels, c.image_size, c.image_size), generator=generator).to(device)
    states, actions, logps, stds = [], [], [], []
    with evaluating(model):
        for t in sched.timesteps.tolist():
            out = model.predict(x, torch.full((b,), t, device=device), **cond)
            noise = torch.randn(x.shape, generator=generator).to(device)
            step = sched.step(out, t, x, eta=1.0, variance_noise=noise)
            states.append(x)
            actions.append(step.prev_sample)
            # the last step (to alpha_bar = 1) is deterministic: no action to score, left out of training
            logps.append(gaussian_log_prob(step.prev_sample, step.mean, step.std) if step.std > 0
                         else torch.zeros(b, device=device))
            stds.append(step.std)
            x = step.prev_sample
    return Rollout(torch.stack(states), torch.stack(actions), torch.stack(logps), sched.timesteps.tolist(), stds,
                   x.clamp(-1, 1), labels)


def step_log_prob(model, sched: DDIMScheduler, x, t: int, action, labels, std: float,
                  condition: Callable[[torch.Tensor], dict] = class_condition):
    """log p_theta(action | x) (B,) under the current weights, and the eps prediction (for the KL term)."""
    out = model.predict(x, torch.full((len(x),), t, device=x.device), **condition(labels))
    mean = sched.step(out, t, x, eta=1.0, variance_noise=torch.zeros_like(x)).mean
    return gaussian_log_prob(action, mean, std), out


def advantages(rewards: torch.Tensor, labels: torch.Tensor, how: str, n_classes: int | None = None) -> torch.Tensor:
    """Per-trajectory advantage before the value baseline: rewards (B,) (or (B, 1 + M)) normalised by the registered
    name `how` (`practices.ADVANTAGES`)."""
    return shape_rewards(rewards, labels, how, "none", 0.0)[1]


def dpok(model, reward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], cfg: RLConfig,
         callback: Callable[[int, dict], None] | None = None,
         condition: Callable[[torch.Tensor], dict] = class_condition,
         labels: Callable[[torch.Generator], torch.Tensor] | None = None) -> list[dict]:
    """Fine-tune `model` in place with DPOK; the pretrained weights are frozen as a copy for the KL term.
    reward(images (B, C, H, W), labels (B,)) -> (B,) or (B, 1 + M) (own prompt, then M contrastive prompts;
    `practices`). `labels(generator)` draws a batch's labels (default: uniform over cfg.n_classes).
    Returns per-iteration statistics."""
    device = next(model.parameters()).device
    pretrained = copy.deepcopy(model).eval().requires_grad_(False)
    c = model.config
    with torch.random.fork_rng(devices=[]):  # the value net's init from cfg.seed, not from the global RNG state
        torch.manual_seed(cfg.seed)
        value = ValueNet(c.channels * c.image_size**2, c.num_train_timesteps, cfg.n_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    vopt = torch.optim.Adam(value.parameters(), lr=cfg.value_lr)
    sched = policy_scheduler(model, cfg.steps)
    g = torch.Generator().manual_seed(cfg.seed)
    history = []
    for it in range(cfg.iterations):
        lab = torch.randint(cfg.n_classes, (cfg.batch,), generator=g) if labels is None else labels(g)
        lab = lab.to(device)
        ro = rollout(model, lab, cfg.steps, g, condition)
        # (B,) or (B, 1 + M): the only reward queries of this iteration; r (B,) = own reward - penalty
        r, adv_traj, shaped = shape_rewards(reward(ro.images, lab), lab, cfg.normalise, cfg.penalty,
                                            cfg.penalty_weight)
        baseline = ADVANTAGES.get(cfg.normalise).value_baseline
        stochastic = torch.tensor([i for i, s in enumerate(ro.stds) if s > 0])  # steps that are actions
        k = len(stochastic)
        # transitions: (step index, trajectory index), shuffled into minibatches
        pairs = torch.stack(torch.meshgrid(stochastic, torch.arange(cfg.batch), indexing="ij"), -1).view(-1, 2)
        stats = {**shaped, "pg": 0.0, "kl": 0.0, "value": 0.0}
        n_updates = 0
        model.train()
        for _ in range(cfg.epochs):
            perm = pairs[torch.randperm(len(pairs), generator=g)]
            for mb in perm.split(cfg.minibatch):
                # group the minibatch by step so each forward runs one timestep
                pg_terms, kl_terms, v_terms = [], [], []
                for si in mb[:, 0].unique().tolist():
                    j = mb[mb[:, 0] == si, 1].to(device)
                    t, std = ro.timesteps[si], ro.stds[si]
                    x, a, lj = ro.states[si][j], ro.actions[si][j], lab[j]
                    tt = torch.full((len(j),), t, device=device)
                    v = value(x, tt, lj)
                    v_terms.append(F.mse_loss(v, r[j], reduction="sum"))
                    adv = adv_traj[j] - (v.detach() if baseline else 0.0)
                    logp, eps = step_log_prob(model, sched, x, t, a, lj, std, condition)
                    ratio = torch.exp(logp - ro.log_probs[si][j])
                    pg_terms.append(-torch.min(adv * ratio, adv * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).sum())
                    if cfg.beta > 0:
                        with torch.no_grad():
                            eps_pre = pretrained.predict(x, tt, **condition(lj))
                        kl_terms.append(((eps - eps_pre) ** 2).flatten(1).sum(1).sum())
                n = len(mb)
                pg = torch.stack(pg_terms).sum() / n
                kl = torch.stack(kl_terms).sum() / n if kl_terms else torch.zeros((), device=device)
                loss = pg + cfg.beta * k * kl  # the KL bound sums over the K steps of a trajectory
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                vloss = torch.stack(v_terms).sum() / n
                vopt.zero_grad(set_to_none=True)
                vloss.backward()
                vopt.step()
                stats["pg"] += pg.item()
                stats["kl"] += kl.item()
                stats["value"] += vloss.item()
                n_updates += 1
        model.eval()
        for key in ("pg", "kl", "value"):
            stats[key] /= n_updates
        stats["iteration"] = it + 1
        stats["reward_queries"] = (it + 1) * cfg.batch
        history.append(stats)
        if callback is not None:
            callback(it + 1, stats)
    return history
