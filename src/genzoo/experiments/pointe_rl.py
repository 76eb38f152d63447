"""`genzoo experiment pointe-rl`: the seed's RL practices for text prompts ("Training Diffusion Models with RL",
the notes of issue 22) on Point-E's text-to-image stage (arXiv 2212.08751 sec. 4.1), fine-tuned with DPOK (Fan et
al., arXiv 2305.16381, Algorithm 1: policy gradient on the DDIM chain, KL to the pretrained model kept, beta > 0).

1. Train the Point-E system's CLIP and text-to-image model through the shared loop (task "pointe"; the point stages
   shrunk, they are not used here), and the prompt LM (task "caption-lm").
2. Reward = the frozen CLIP's image-prompt cosine similarity (`rl.prompts.CLIPReward`).
3. Five arms from the same base, the same reward queries and gradient steps, KL kept:
   baseline (advantages normalised over the batch, prompts from the training templates);
   +a: advantages normalised over each image's contrastive prompts (`normalise="contrastive"`);
   +b: training prompts synthesised by the LM, none of them in any template list;
   +c: the textual-inconsistency penalty (`penalty="inconsistency"`);
   all: a + b + c.
4. Every few iterations each arm is scored on held-out prompts (the held-out templates, each shape x colour, the
   same noise): the mean reward (CLIP) and the held-out prompt accuracy of the independent view judge
   (`pointe.judge.view_judge`, a CNN trained on rendered views, which no arm optimises).
   Reward hacking of an arm = the largest drop of the judge's accuracy below the base model's at an evaluation
   where the reward is above the base's (reward up while the judge drops); 0 when that never happens.
5. Target per practice p in (a, b, c): max(accuracy gain of +p over the baseline, reduction of reward hacking
   vs the baseline) >= MARGIN.

Writes report.md, curves.png, samples.png and results.json.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch

from ..errors import ConfigError
from . import EXPERIMENTS
from .results import machine_line, target, targets_markdown, write_results

MARGIN = 0.02  # the margin each practice must win by: 2 points of held-out accuracy, or of reward hacking
# arm -> (title, RLConfig fields, prompts: "templates" or "synthesised")
ARMS = {
    "baseline": ("baseline (batch normalisation, template prompts)", {"normalise": "batch"}, "templates"),
    "a": ("+a contrastive normalisation", {"normalise": "contrastive"}, "templates"),
    "b": ("+b LM-synthesised prompts", {"normalise": "batch"}, "synthesised"),
    "c": ("+c inconsistency penalty", {"normalise": "batch", "penalty": "inconsistency"}, "templates"),
    "all": ("a + b + c", {"normalise": "contrastive", "penalty": "inconsistency"}, "synthesised"),
}
FULL = dict(base_steps=1200, clip_steps=300, objects=3000, lm_steps=150, iterations=40, batch=32, n_prompts=128,
            held_out_templates=4, judge_steps=500, judge_objects=3000, eval_every=5, chain=10)
SMALL = dict(base_steps=6, clip_steps=3, objects=64, lm_steps=80, iterations=2, batch=8, n_prompts=16,
             held_out_templates=1, judge_steps=20, judge_objects=64, eval_every=1, chain=4)


def held_out_prompts(n_templates: int) -> list[str]:
    from ..data.shape_captions import HELD_OUT_TEMPLATES, describe
    from ..data.shapes import COLOUR_NAMES, SHAPE_NAMES

    return [t.format(desc=describe(s, c)) for t in HELD_OUT_TEMPLATES[:n_templates] for s in SHAPE_NAMES
            for c in COLOUR_NAMES]


def template_prompts(n: int, seed: int) -> list[str]:
    from ..data.shape_captions import all_captions

    pool = all_captions()
    return [pool[i] for i in torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:n].tolist()]


@torch.no_grad()
def score(image_model, reward, table, judge, chain: int) -> dict:
    """Held-out prompts, the same noise for every model: mean CLIP reward, the view judge's accuracy (shape and
    colour both read back), and the fraction of images closest to their own prompt among the contrastive ones."""
    from ..models.diffusion.rl import rollout
    from ..models.pointe.judge import read_views

    idx = torch.arange(len(table))
    images = rollout(image_model, idx, chain, torch.Generator().manual_seed(12345), table.condition).images
    r = reward(images, idx)  # (P, 1 + M)
    shape, colour = read_views(images, judge)
    return {"reward": r[:, 0].mean().item(),
            "judge_accuracy": ((shape == table.shape) & (colour == table.colour)).float().mean().item(),
            "consistent": (r[:, 0] >= r[:, 1:].max(1).values).float().mean().item(), "images": images[:42]}


def hacking(curve: list[dict]) -> float:
    """The largest drop of the judge's accuracy below the base's (curve[0]) where the reward is above the base's."""
    r0, j0 = curve[0]["reward"], curve[0]["judge_accuracy"]
    return max([0.0] + [j0 - p["judge_accuracy"] for p in curve[1:] if p["reward"] > r0])


def train_parts(out: Path, o: dict, sets: tuple[str, ...], small: bool):
    """The Point-E base (CLIP + text-to-image) and the caption LM, through the shared loop (reused if present)."""
    import genzoo
    from ..tokenizers import Tokenizer
    from ..train import load_recipe, train

    quiet = ["progress=false", "log_every=1000"]
    # the base keeps the timestep token it was measured with (the pointe-shapes recipe now adds it to the points;
    # the point stages share the global gradient-norm clip with the text-to-image stage this experiment tunes)
    shrink = ["model.time_token=true", "model.text_points=false", "model.point_layers=1", "model.upsampler_layers=1",
              "model.points=16",
              f"pointe.clip_steps={o['clip_steps']}", f"pointe.objects={o['objects']}", "pointe.val_objects=32",
              f"eval_every={o['base_steps']}", f"save_every={o['base_steps']}", "warmup_steps=10"]
    if small:
        shrink = ["model.preset=pointe-tiny", "data.block_size=12", "batch_size=8", "pointe.render_points=256",
                  *shrink, "pointe.val_objects=8"]
    if not (out / "base" / "model.safetensors").exists():
        train(load_recipe("pointe-shapes", [*quiet, *shrink, *sets]), out / "base", steps=o["base_steps"])
    lm_sets = [*quiet, f"eval_every={o['lm_steps']}", f"save_every={o['lm_steps']}"]
    if not (out / "lm" / "model.safetensors").exists():
        train(load_recipe("caption-lm", lm_sets), out / "lm", steps=o["lm_steps"])
    return genzoo.load(out / "base").eval(), genzoo.load(out / "lm").eval(), Tokenizer.from_dir(out / "lm")


@EXPERIMENTS.register("pointe-rl")
def run(out: str, steps: int | None = None, sets: tuple[str, ...] = (), small: bool = False, beta: float = 0.01,
        lr: float = 3e-4, **overrides) -> dict:
    from ..figures import image_grid
    from ..models.diffusion.rl import RLConfig, dpok
    from ..models.diffusion.rl.prompts import CLIPReward, PromptTable, synthesise_prompts, template_prompts as known
    from ..models.pointe.judge import view_judge

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(overrides) - set(FULL))
    if unknown:
        raise ConfigError(f"pointe-rl: unknown option(s) {', '.join(unknown)}; known: {', '.join(FULL)}")
    o = {**(SMALL if small else FULL), **overrides}
    if steps:
        o["iterations"] = steps  # `--steps` sets the RL iterations
    pointe, lm, tok = train_parts(out, o, sets, small)
    seconds = {"train_parts": time.perf_counter() - t0}
    t1 = time.perf_counter()
    synthesised, synth_stats = synthesise_prompts(lm, tok, o["n_prompts"], torch.Generator().manual_seed(0))
    prompts = {"templates": template_prompts(o["n_prompts"], 0), "synthesised": synthesised}
    held = PromptTable(pointe, held_out_prompts(o["held_out_templates"]))
    judge = view_judge(o["judge_steps"], image_size=pointe.config.image_size, objects=o["judge_objects"])
    held_reward = CLIPReward(pointe.clip, held)
    before = score(pointe.image, held_reward, held, judge, o["chain"])
    image_grid(before.pop("images"), out / "samples_before.png", ncol=6, title="base model, held-out prompts")
    seconds["prompts_and_judge"] = time.perf_counter() - t1
    results = {"options": o, "beta": beta, "lr": lr, "before": before, "margin": MARGIN,
               "synthesis": {**synth_stats, "kept": len(synthesised), "examples": synthesised[:10],
                             "all_novel": not set(synthesised) & known()},
               "held_out_prompts": len(held), "arms": {}}
    shown = {}
    for arm, (title, fields, source) in ARMS.items():
        t1 = time.perf_counter()
        if len(prompts[source]) < 2:  # the LM wrote too few novel prompts: reported, never faked
            results["arms"][arm] = {"title": title, "skipped": f"{len(prompts[source])} {source} prompts"}
            continue
        table = PromptTable(pointe, prompts[source])
        model = copy.deepcopy(pointe.image)
        cfg = RLConfig(iterations=o["iterations"], batch=o["batch"], steps=o["chain"], beta=beta, lr=lr,
                       minibatch=4 * o["batch"], n_classes=len(table), **fields)
        curve = [{"iteration": 0, **before}]

        def checkpoint(i, stats, model=model, curve=curve):
            if i % o["eval_every"] == 0 or i == o["iterations"]:
                s = score(model, held_reward, held, judge, o["chain"])
                shown[arm] = s.pop("images")
                curve.append({"iteration": i, **s})

        history = dpok(model, CLIPReward(pointe.clip, table), cfg, checkpoint, condition=table.condition)
        final = {k: v for k, v in curve[-1].items() if k != "iteration"}
        results["arms"][arm] = {"title": title, "fields": fields, "prompts": source, "n_prompts": len(table),
                                "beta": cfg.beta, "final": final, "curve": curve, "hacking": hacking(curve),
                                "train": [{k: h[k] for k in ("reward", "shaped_reward", "inconsistent", "kl")}
                                          for h in history], "seconds": time.perf_counter() - t1}
    results["targets"] = practice_targets(results["arms"])
    plot(results, shown, out)
    seconds["arms"] = sum(a.get("seconds", 0.0) for a in results["arms"].values())
    results["stage_seconds"] = seconds
    targets = results.pop("targets")
    results = write_results(out, results, targets, seconds=time.perf_counter() - t0)
    (out / "report.md").write_text(report(results))
    return results


def practice_targets(arms: dict) -> dict:
    """Per practice: max(held-out accuracy gain over the baseline, reward-hacking reduction) >= MARGIN (None, a
    missed target, when an arm did not run); and the KL term kept in every arm."""
    out = {}
    base = arms["baseline"]
    for p, name in (("a", "contrastive normalisation"), ("b", "LM-synthesised prompts"),
                    ("c", "inconsistency penalty")):
        arm = arms[p]
        value = None
        if "final" in arm and "final" in base:
            gain = arm["final"]["judge_accuracy"] - base["final"]["judge_accuracy"]
            value = max(gain, base["hacking"] - arm["hacking"])
        out[f"practice {p} ({name}): max(held-out accuracy gain, hacking reduction) vs baseline"] = target(
            value, f">= {MARGIN}")
    betas = [a["beta"] for a in arms.values() if "beta" in a]
    out["KL term kept: smallest beta over the arms"] = target(min(betas) if betas else None, "> 0")
    return out


def plot(results: dict, shown: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..figures import image_grid, save_figure

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for arm in results["arms"].values():
        if "curve" not in arm:
            continue
        it = [p["iteration"] for p in arm["curve"]]
        a.plot(it, [p["reward"] for p in arm["curve"]], "o-", label=arm["title"])
        b.plot(it, [p["judge_accuracy"] for p in arm["curve"]], "o-", label=arm["title"])
    a.set_ylabel("CLIP reward, held-out prompts")
    b.set_ylabel("view judge accuracy, held-out prompts")
    for ax in (a, b):
        ax.set_xlabel("DPOK iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / "curves.png")
    if shown:
        image_grid(torch.cat([v[:6] for v in shown.values()]), out / "samples.png", ncol=6,
                   title="after DPOK, rows: " + ", ".join(shown))


def report(r: dict) -> str:
    b, o = r["before"], r["options"]
    lines = ["# The seed's RL practices on Point-E's text-to-image stage (DPOK, KL kept)", "",
             f"Base: Point-E CLIP + text-to-image after {o['base_steps']} steps ({o['clip_steps']} CLIP). Each arm: "
             f"{o['iterations']} DPOK iterations x {o['batch']} reward queries, {o['chain']} DDIM steps, "
             f"beta = {r['beta']}, lr = {r['lr']}. Held-out: {r['held_out_prompts']} prompts of the held-out "
             "templates; judge: the view CNN (never optimised).", "",
             f"Prompt LM: {r['synthesis']['kept']} novel well-formed prompts kept of {r['synthesis']['sampled']} "
             f"sampled ({r['synthesis']['malformed']} malformed, {r['synthesis']['in_templates']} already in a "
             f"template list); e.g. {', '.join(repr(p) for p in r['synthesis']['examples'][:4])}.", "",
             "| arm | prompts | held-out reward | judge accuracy | own prompt closest | reward hacking |",
             "|---|---|---|---|---|---|",
             f"| base | - | {b['reward']:.4f} | {b['judge_accuracy']:.3f} | {b['consistent']:.3f} | - |"]
    for arm in r["arms"].values():
        if "final" not in arm:
            lines.append(f"| {arm['title']} | skipped: {arm['skipped']} | | | | |")
            continue
        f = arm["final"]
        lines.append(f"| {arm['title']} | {arm['prompts']} ({arm['n_prompts']}) | {f['reward']:.4f} | "
                     f"{f['judge_accuracy']:.3f} | {f['consistent']:.3f} | {arm['hacking']:.3f} |")
    lines += ["", f"Reward hacking: the largest drop of the judge's accuracy below the base's at an evaluation where "
              f"the reward is above the base's. Margin: {r['margin']}.", "", "## Targets", "",
              targets_markdown(r["targets"]), "",
              f"{machine_line(r)} Stages: " + ", ".join(f"{k} {v:.0f} s" for k, v in r["stage_seconds"].items())
              + ".",
              "", "Figures: curves.png, samples_before.png, samples.png.", ""]
    return "\n".join(lines)
