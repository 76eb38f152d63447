"""`genzoo experiment meta-transformer`: does a frozen encoder pretrained on text (all-MiniLM-L6-v2's six layers)
serve other modalities through trained modality tokenizers (Meta-Transformer, Zhang et al., 2023, arXiv 2307.10802,
sec. 3), better than the same encoder frozen at random initialisation?

For one data set of each of six modalities (`data.modality_sets`: digits images, stdlib docstrings, procedural
point clouds, synthesised sounds as log-mel patches, the wine table, synthetic time series) three runs of the
`meta-transformer` recipe, the same steps and data:
- frozen pretrained: only the modality tokenizer and the head train (the paper's setting);
- frozen random: the same, around the same architecture freshly initialised (parts.encoder_init=random);
- fully fine-tuned: the pretrained encoder trains too (model.freeze_encoder=false, a lower learning rate).

Held-out accuracy of each, the trainable share of the parameters. Writes report.md, accuracy.png and results.json
(targets: frozen pretrained beats frozen random by >= 5 points on at least 4 of 6 modalities; trainable parameters
<= 10% of the total in the frozen setting; the whole experiment <= 15 minutes).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..figures import save_figure
from . import EXPERIMENTS
from .results import machine_line, target, targets_markdown, write_report, write_results

SETS = ("digits", "docstrings", "shapes", "sounds", "wine", "signals")  # one per modality
ARMS = {  # arm -> (--set overrides, title)
    "frozen-pretrained": ([], "frozen pretrained encoder"),
    "frozen-random": (["parts.encoder_init=random"], "frozen random encoder"),
    "fine-tuned": (["model.freeze_encoder=false", "lr=3.0e-4"], "fully fine-tuned"),
}
SMALL = ["steps=2", "batch_size=8", "warmup_steps=1", "eval_every=2", "save_every=2", "log_every=1",
         "model.preset=meta-transformer-tiny", "model.tokenizer_hidden=16"]
SMALL_SETS = ("digits", "wine", "signals")


def tiny_encoder(directory: Path) -> Path:
    """A tiny BERT-shaped encoder with random weights, saved as the shrunken run's 'pretrained' encoder."""
    import genzoo

    if not (directory / "config.json").exists():
        genzoo.save(genzoo.build("bert-tiny"), directory)
    return directory


def final_accuracy(run_dir: Path) -> float:
    """The last held-out accuracy a run logged (metrics.jsonl)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if "val_acc" in r][-1]["val_acc"]


@EXPERIMENTS.register("meta-transformer")
def run(out: str, small: bool = False, sets: tuple[str, ...] = (), data_sets: tuple[str, ...] | None = None,
        steps: int | None = None) -> dict:
    """steps: training steps of every run (default: the recipe's); data_sets: MODALITY_SETS names (default: SETS)."""
    import genzoo

    from ..data.modality_sets import MODALITY_SETS
    from ..train import load_recipe, train

    t0 = time.perf_counter()
    out = Path(out)
    fresh = not (out / "runs").exists()  # else trained runs are reused and the time is not the experiment's
    out.mkdir(parents=True, exist_ok=True)
    names = tuple(data_sets or (SMALL_SETS if small else SETS))
    base = ["progress=false", *(SMALL if small else []), *sets, *([f"steps={steps}"] if steps else [])]
    if small:
        base.append(f"parts.encoder={tiny_encoder(out / 'encoder-tiny')}")
    acc, params, seconds = {}, {}, {}
    for name in names:
        modality = MODALITY_SETS.get(name).modality
        acc[name], seconds[name] = {}, {}
        for arm, (arm_sets, _) in ARMS.items():
            run_dir = out / "runs" / f"{name}-{arm}"
            t = time.perf_counter()
            if not (run_dir / "model.safetensors").exists():
                train(load_recipe("meta-transformer", [*base, f"data.corpus={name}", *arm_sets]), run_dir)
            seconds[name][arm] = time.perf_counter() - t
            acc[name][arm] = final_accuracy(run_dir)
            if arm == "frozen-pretrained":
                params[name] = {"modality": modality, **genzoo.load(run_dir).parameter_counts()}
    gaps = {n: acc[n]["frozen-pretrained"] - acc[n]["frozen-random"] for n in names}
    wins = sum(g >= 0.05 for g in gaps.values())
    share = max(p["trainable_share"] for p in params.values())
    results = {
        "setup": {"small": small, "reused_trained_runs": not fresh, "data_sets": list(names),
                  "steps": load_recipe("meta-transformer", base).steps},
        "accuracy": acc, "pretrained_minus_random": gaps, "modalities_won_by_5_points": wins,
        "parameters": params, "seconds_per_run": seconds,
    }
    need = 4 if len(names) >= 6 else max(1, round(len(names) * 4 / 6))
    targets = {
        f"modalities where frozen pretrained beats frozen random by >= 5 points (of {len(names)})":
            target(wins, f">= {need}"),
        "largest trainable share of the parameters (frozen encoder)": target(share, "<= 0.10"),
        "minutes": target((time.perf_counter() - t0) / 60 if fresh else None, "<= 15"),  # None: not measured
    }
    plot_accuracy(acc, out / "accuracy.png")
    data = write_results(out, results, targets, time.perf_counter() - t0)
    write_report(out, report(data))
    return data


def plot_accuracy(acc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(acc)
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2, 3.4), dpi=110)
    w = 0.8 / len(ARMS)
    for i, (arm, (_, title)) in enumerate(ARMS.items()):
        ax.bar([j + i * w for j in range(len(names))], [acc[n][arm] for n in names], w, label=title)
    ax.set_xticks([j + w for j in range(len(names))], names, fontsize=8)
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("Meta-Transformer: modality tokenizers around all-MiniLM-L6-v2's layers", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def report(r: dict) -> str:
    acc, params = r["accuracy"], r["parameters"]
    lines = [
        "# Meta-Transformer: one frozen text encoder for six modalities",
        "",
        f"Recipe `meta-transformer` ({r['setup']['steps']} steps per run); held-out accuracy after training the "
        "modality tokenizer and head (frozen arms) or everything (fine-tuned).",
        "",
        "| data set | modality | frozen pretrained | frozen random | pretrained - random | fully fine-tuned | "
        "trainable (frozen) |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, a in acc.items():
        p = params[n]
        lines.append(f"| {n} | {p['modality']} | {100 * a['frozen-pretrained']:.1f}% | "
                     f"{100 * a['frozen-random']:.1f}% | {100 * r['pretrained_minus_random'][n]:+.1f} | "
                     f"{100 * a['fine-tuned']:.1f}% | {p['trainable']:,} of {p['total']:,} "
                     f"({100 * p['trainable_share']:.2f}%) |")
    lines += [
        "",
        "## Targets",
        "",
        targets_markdown(r["targets"]),
        "",
        machine_line(r),
        "",
        "![accuracy](accuracy.png)",
        "",
    ]
    return "\n".join(lines)
