"""`genzoo experiment dpok`: does online RL with KL regularisation (DPOK, Fan et al. 2023) beat reward-weighted
supervised fine-tuning (Lee et al. 2023), and does the KL term keep fidelity while the reward rises?

1. Train `ddpm-digits` for a few steps only: a deliberately under-trained base model.
2. The reward is the frozen `reward` judge's probability of the digit asked for (the prompt is the class).
3. Four arms from the same base with the same budget of reward queries and gradient steps: DPOK (beta > 0),
   DPOK (beta = 0), both with DDPO's per-prompt reward normalisation, DPOK (beta > 0) with the learned value
   baseline instead, and reward-weighted fine-tuning.
4. Every few iterations and at the end, each arm is scored on a fixed set of samples (the same noise): mean reward,
   Fréchet distance to the held-out digits, and the probability given by the `held-out` judge, which no arm
   optimises (a guard against reward hacking). The Fréchet distance of the two DPOK arms is compared at the
   highest reward both reach.

Writes report.md, samples_before.png, samples_<arm>.png, curves.png and results.json.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch

from ..figures import save_figure
from . import EXPERIMENTS
from .results import machine_line, target, targets_markdown, write_results

# arm -> (title, RLConfig fields besides the shared ones; beta=None takes the experiment's beta)
ARMS = {
    "dpok": ("DPOK (beta > 0)", {"beta": None, "normalise": "prompt"}),
    "dpok-beta0": ("DPOK (beta = 0)", {"beta": 0.0, "normalise": "prompt"}),
    "dpok-value": ("DPOK (beta > 0, value baseline)", {"beta": None, "normalise": "value"}),
    "reward-weighted": ("reward-weighted fine-tuning", {"beta": 0.0}),
}


def score(model, n_per_class: int, steps: int) -> dict:
    """Mean reward, held-out judge probability and Fréchet distance of a fixed set of samples (same noise)."""
    from ..models.diffusion.judges import class_probability, frechet_distance
    from ..models.diffusion.rl import rollout

    labels = torch.arange(10).repeat(n_per_class)
    images = rollout(model, labels, steps, torch.Generator().manual_seed(12345)).images
    return {"reward": class_probability(images, labels).mean().item(),
            "held_out": class_probability(images, labels, "held-out").mean().item(),
            "frechet": frechet_distance(images), "images": images[: 10 * 6]}


def fd_at_reward(curve: list[dict], level: float) -> float:
    """Fréchet distance where an arm's (reward, FD) curve first reaches `level`, linearly interpolated."""
    prev = None
    for p in curve:
        if p["reward"] >= level:
            if prev is None or p["reward"] == prev["reward"]:
                return p["frechet"]
            w = (level - prev["reward"]) / (p["reward"] - prev["reward"])
            return prev["frechet"] + w * (p["frechet"] - prev["frechet"])
        prev = p
    return float("nan")


@EXPERIMENTS.register("dpok")
def run(out: str, steps: int | None = None, sets: tuple[str, ...] = (), base_steps: int = 60, iterations: int = 60,
        beta: float = 0.003, lr: float = 3e-4, eval_every: int = 5, n_per_class: int = 50, batch: int = 64) -> dict:
    import genzoo
    from ..figures import image_grid
    from ..models.diffusion.judges import class_probability
    from ..models.diffusion.rl import RLConfig, dpok, reward_weighted_finetune
    from ..train import load_recipe, train

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    iterations = steps or iterations  # `--steps` sets the RL iterations
    recipe = load_recipe("ddpm-digits", ["progress=false", "warmup_steps=10", f"eval_every={base_steps}",
                                         f"save_every={base_steps}", *sets])
    base_dir = out / "base"
    if not (base_dir / "model.safetensors").exists():
        train(recipe, base_dir, steps=base_steps)
    base = genzoo.load(base_dir)
    chain = RLConfig().steps
    before = score(base, n_per_class, chain)
    image_grid(before.pop("images"), out / "samples_before.png", ncol=10, title="base model (under-trained)")
    results = {"base_steps": base_steps, "reward_queries": iterations * batch, "before": before,
               "arms": {}}
    for arm, (title, fields) in ARMS.items():
        model = copy.deepcopy(base)
        fields = {**fields, "beta": beta if fields["beta"] is None else fields["beta"]}
        cfg = RLConfig(iterations=iterations, batch=batch, lr=lr, **fields)
        curve = [{"reward_queries": 0, **before}]
        shown = {}  # the samples of the latest evaluation, for the grid

        def checkpoint(i, stats, model=model, curve=curve, cfg=cfg, shown=shown):
            if i % eval_every == 0 or i == cfg.iterations:
                s = score(model, n_per_class, chain)
                shown["images"] = s.pop("images")
                curve.append({"reward_queries": stats["reward_queries"], **s})

        fit = reward_weighted_finetune if arm == "reward-weighted" else dpok
        history = fit(model, class_probability, cfg, callback=checkpoint)
        final = {k: v for k, v in curve[-1].items() if k != "reward_queries"}  # scored after the last iteration
        image_grid(shown["images"], out / f"samples_{arm}.png", ncol=10, title=title)
        results["arms"][arm] = {"title": title, "beta": cfg.beta, "normalise": cfg.normalise, "final": final, "curve": curve,
                                "train_reward": [h["reward"] for h in history]}
    r = results["arms"]
    matched = min(max(p["reward"] for p in r["dpok"]["curve"]), max(p["reward"] for p in r["dpok-beta0"]["curve"]))
    results["matched_reward"] = matched
    results["frechet_at_matched_reward"] = {a: fd_at_reward(r[a]["curve"], matched) for a in ("dpok", "dpok-beta0")}
    start, fd0 = before["reward"], before["frechet"]
    final = r["dpok"]["final"]
    fm = results["frechet_at_matched_reward"]
    results["targets"] = {
        "dpok final reward": target(final["reward"], f">= {max(start + 0.2, 0.85):.4f}"),  # max(base + 0.2, 0.85)
        "dpok Frechet / base Frechet": target(final["frechet"] / fd0, "<= 1.5"),
        "Frechet at matched reward, beta=0 minus beta>0": target(fm["dpok-beta0"] - fm["dpok"], "> 0"),
        "dpok reward minus reward-weighted reward": target(final["reward"] - r["reward-weighted"]["final"]["reward"],
                                                           ">= 0.05"),
    }
    plot_curves(results, out / "curves.png")
    targets = results.pop("targets")
    results = write_results(out, results, targets, seconds=time.perf_counter() - t0)
    (out / "report.md").write_text(report(results))
    return results


def plot_curves(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for arm, r in results["arms"].items():
        q = [p["reward_queries"] for p in r["curve"]]
        a.plot(q, [p["reward"] for p in r["curve"]], "o-", label=r["title"])
        b.plot([p["reward"] for p in r["curve"]], [p["frechet"] for p in r["curve"]], "o-", label=r["title"])
    a.set_xlabel("reward queries")
    a.set_ylabel("mean reward (fixed samples)")
    b.set_xlabel("mean reward")
    b.set_ylabel("Fréchet distance (lower = closer to real digits)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def report(r: dict) -> str:
    b = r["before"]
    lines = ["# DPOK vs reward-weighted fine-tuning on class-conditional digits", "",
             f"Base: `ddpm-digits` after {r['base_steps']} training steps. Each arm spends {r['reward_queries']} "
             "reward queries. Samples: DDIM eta=1, 10 steps, no guidance, the same noise for every model. "
             "DPOK's advantage is the reward normalised per prompt (DDPO), or the reward minus a learned value "
             "(`value baseline`).", "",
             "| model | reward | held-out judge | Fréchet distance |", "|---|---|---|---|",
             f"| base | {b['reward']:.3f} | {b['held_out']:.3f} | {b['frechet']:.1f} |"]
    for arm in r["arms"].values():
        f = arm["final"]
        lines.append(f"| {arm['title']} | {f['reward']:.3f} | {f['held_out']:.3f} | {f['frechet']:.1f} |")
    fm = r["frechet_at_matched_reward"]
    lines += ["", f"At the highest reward both DPOK arms reach ({r['matched_reward']:.3f}): Fréchet distance "
              f"{fm['dpok']:.1f} with beta > 0, {fm['dpok-beta0']:.1f} with beta = 0.", "", "## Targets", ""]
    lines += [targets_markdown(r["targets"]), "", machine_line(r)]
    lines += ["", "Figures: samples_before.png, samples_<arm>.png, curves.png.", ""]
    return "\n".join(lines)
