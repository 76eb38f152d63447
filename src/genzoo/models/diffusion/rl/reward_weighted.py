"""Reward-weighted supervised fine-tuning, the baseline DPOK is compared with (Lee et al., "Aligning Text-to-Image
Models using Human Feedback", 2023, eq. 1): samples are drawn once from the pretrained model, scored by the
reward, and the model is fine-tuned with the denoising loss of each sample weighted by its reward. It spends the
same reward queries and the same number of gradient steps as the DPOK run it is compared with."""

from __future__ import annotations

import copy
from typing import Callable

import torch

from .dpok import RLConfig, rollout


def reward_weighted_finetune(model, reward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], cfg: RLConfig,
                             callback: Callable[[int, dict], None] | None = None) -> list[dict]:
    """Fine-tune `model` in place; per iteration, as in DPOK, `cfg.batch` new reward queries (samples of the
    pretrained model, drawn with the same sampler) and the same number of gradient steps."""
    device = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed)
    pool_x, pool_y, pool_r = [], [], []
    pretrained = copy.deepcopy(model).eval().requires_grad_(False)
    history = []
    for it in range(cfg.iterations):
        labels = torch.randint(cfg.n_classes, (cfg.batch,), generator=g).to(device)
        ro = rollout(pretrained, labels, cfg.steps, g)
        images = ro.images
        # DPOK's gradient steps per rollout: its transitions (the stochastic steps) in minibatches, per epoch
        updates_per_iter = cfg.epochs * -(-sum(s > 0 for s in ro.stds) * cfg.batch // cfg.minibatch)
        r = reward(images, labels).float()
        pool_x.append(images)
        pool_y.append(labels)
        pool_r.append(r)
        x, y, w = torch.cat(pool_x), torch.cat(pool_y), torch.cat(pool_r)
        model.train()
        total = 0.0
        for _ in range(updates_per_iter):
            idx = torch.randint(len(x), (cfg.minibatch,), generator=g).to(device)
            t = torch.randint(0, model.config.num_train_timesteps, (len(idx),), generator=g).to(device)
            noise = torch.randn(x[idx].shape, generator=g).to(device)
            x_t = model.scheduler.add_noise(x[idx], noise, t)
            out = model.denoiser(x_t, t, y[idx])
            per = ((out - model.scheduler.target(x[idx], noise, t)) ** 2).flatten(1).mean(1)  # (B,)
            loss = (w[idx] * per).sum() / w[idx].sum().clamp(min=1e-8)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            total += loss.item()
        model.eval()
        stats = {"iteration": it + 1, "reward": r.mean().item(), "loss": total / updates_per_iter,
                 "reward_queries": (it + 1) * cfg.batch}
        history.append(stats)
        if callback is not None:
            callback(it + 1, stats)
    return history
