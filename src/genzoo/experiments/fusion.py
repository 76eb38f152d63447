"""`genzoo experiment fusion`: early fusion (Gemini Team, 2023, arXiv 2312.11805: one decoder over interleaved text
and image tokens, able to write images) against late fusion (LLaVA, arXiv 2304.08485: a frozen image encoder and a
frozen LM joined by a trained projector, with LoRA adapters on the LM; Flamingo's gated cross-attention, arXiv
2204.14198, as the option) on the digit world (`data.digit_fusion`), with the same data and the same training
compute.

1. The parts: a VQ image tokenizer (`vq-digits`: reconstruction PSNR), CLIP on the digits (`clip-digits`, whose image
   tower late fusion uses) and the digit world's text LM (`digit-lm`, late fusion's language model).
2. Training FLOPs of one step of each method are counted (`torch.utils.flop_counter`, forward + backward, averaged
   over a few batches); early fusion trains EARLY_STEPS, each late-fusion bridge as many steps as the same
   FLOPs buy. The parts' own pretraining FLOPs are reported beside them.
3. Each method trained with all the paired data (100%) and with 10% of it (the other images unpaired; early fusion
   still models them as images, late fusion cannot use them).
4. Held-out images (never trained on): greedy answers to "what digit is this?", "is it even?", "what is 3 plus this
   digit?", captions (right when they name the digit); early fusion also draws each digit from text ("draw a
   seven" <boi> ...), sampled, read by the frozen digit classifier (`models.diffusion.judges`).

Writes report.md, accuracy.png, drawings.png, vq.png and results.json (targets: both >= 90% on "what digit";
early-fusion text -> image read correctly >= 80%; the whole experiment <= 15 minutes, measured wall time; the
idle-core estimate, `parallel.replay_schedule` of each job's measured CPU seconds, is reported beside it).

The training jobs run as a graph (`parallel.run_graph`): the VQ tokenizer, CLIP and the LM first, each method at
each paired share as soon as its parts exist (early fusion needs only the VQ tokenizer), training and evaluating in
`workers` one-thread processes (spawned: a script calling `run(..., workers=2)` needs
``if __name__ == "__main__":``; `genzoo experiment fusion` has it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from ..figures import save_figure
from . import EXPERIMENTS
from .parallel import GraphRun, Job, replay_schedule, run_graph
from .results import machine_line, target, targets_markdown, write_report, write_results

PAIRED = (100.0, 10.0)
ARMS = {  # arm -> (recipe, --set overrides, title)
    "early": ("early-fusion-digits", [], "early fusion (one decoder, joint vocabulary)"),
    # LLaVA's projector with LoRA (r 8) on the frozen LM's q/v: the projector alone reached 86.1% on "what digit"
    # (LLaVA's first stage trains only the projector; its second also trains the LM, here through LoRA)
    "late-prefix": ("late-fusion-digits", ["model.bridge=prefix", "model.lora_r=8"],
                    "late fusion, LLaVA prefix + LoRA"),
    "late-xattn": ("late-fusion-digits", ["model.bridge=xattn"], "late fusion, Flamingo gated x-attn"),
}
TASKS = ("digit", "parity", "plus3", "caption")
_TINY_LM = ["model.n_layers=1", "model.d_model=32", "model.n_heads=2", "model.d_ff=64"]
_FEW = ["steps=3", "batch_size=8", "warmup_steps=1", "eval_every=3", "save_every=3", "log_every=1"]
SMALL = {  # the shrunken version for the test suite: tiny parts, a few steps
    "vq-digits": _FEW + ["model.hidden=16"],
    "clip-digits": _FEW + ["model.text_layers=1", "model.vision_layers=1"],
    "digit-lm": _FEW + _TINY_LM,
    "early-fusion-digits": _FEW + _TINY_LM,
    "late-fusion-digits": _FEW,
}


def train_part(recipe_name: str, run_dir: Path, sets: list[str], steps: int | None = None) -> Path:
    from ..train import load_recipe, train

    if not (run_dir / "model.safetensors").exists():
        train(load_recipe(recipe_name, ["progress=false", *sets]), run_dir, steps=steps)
    return run_dir


def step_flops(recipe, scratch: Path, batches: int = 3) -> tuple[float, int, int]:
    """(training FLOPs of one optimizer step: forward + backward, mean over `batches` batches; trainable and total
    parameters) of a freshly built model of `recipe`."""
    from torch.utils.flop_counter import FlopCounterMode

    from ..train.distributed import Dist
    from ..train.tasks import TASKS as TRAIN_TASKS

    scratch.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    task = TRAIN_TASKS.get(recipe.task)(recipe, scratch, Dist())
    model = task.build_model().train()
    total = 0
    for _ in range(batches):
        batch = task.next_batch()
        with FlopCounterMode(display=False) as fc:
            task.loss(model, batch, None).backward()
        total += fc.get_total_flops()
    model.zero_grad(set_to_none=True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total / batches, trainable, sum(p.numel() for p in model.parameters())


def run_flops(run_dir: Path, recipe_name: str, sets: list[str], steps: int) -> float:
    """Training FLOPs of a part's whole run (its recipe's steps)."""
    from ..train import load_recipe

    recipe = load_recipe(recipe_name, ["progress=false", *sets])
    return step_flops(recipe, run_dir.parent / f".flops-{run_dir.name}")[0] * steps


# ---- evaluation ----
def _early_prompts(tok, vocab, codes, task: str) -> torch.Tensor:
    from ..models.fusion.sequence import Segment, build
    from ..train.fusion_task import text_example

    rows = []
    for c in codes:
        prompt, _ = text_example(task, 0)  # the prompt does not depend on the digit
        ids, _ = build([Segment(image=c), Segment(text=prompt)], vocab, tok, bos=tok.eos_id)
        rows.append(ids)
    return torch.tensor(rows)  # every prompt of a task has the same length


def answer_budget(tok) -> int:
    """New tokens enough for the longest target text of the digit world (any caption template, any answer) and its
    end-of-text token: a fixed small budget cut "a picture of a seven" after "a picture of" and every caption
    read as wrong."""
    from ..data.digit_fusion import CAPTIONS, answer
    from ..data.digits import WORDS

    texts = [" " + c.format(w) for c in CAPTIONS for w in WORDS]
    texts += [" " + answer(task, d) for task in TASKS if task != "caption" for d in range(10)]
    return max(len(ids) for ids in tok.encode_batch(texts)) + 1


def _answers(tok, prompts: torch.Tensor, out: torch.Tensor) -> list[str]:
    return [tok.decode([t for t in row[prompts.shape[1]:].tolist() if t != tok.eos_id]) for row in out]


def judge_answers(task: str, texts: list[str], labels: torch.Tensor) -> float:
    from ..data.digit_fusion import answer, parse_answer, parse_number

    if task == "caption":
        ok = [parse_number(t) == int(y) for t, y in zip(texts, labels)]
    else:
        ok = [parse_answer(task, t) == answer(task, int(y)) for t, y in zip(texts, labels)]
    return sum(ok) / len(ok)


@torch.no_grad()
def evaluate_early(run_dir: Path, images: torch.Tensor, labels: torch.Tensor, per_digit: int, seed: int = 0):
    """Accuracy of every task on held-out images, and text -> image read by the frozen judge; the drawings."""
    import genzoo

    from ..data.digit_fusion import DRAW
    from ..data.digits import WORDS
    from ..models.diffusion.judges import accuracy
    from ..tokenizers import Tokenizer, pad_rows

    model, tok = genzoo.load(run_dir).eval(), Tokenizer.from_dir(run_dir)
    vocab = model.vocab
    codes = model.image_tokenizer.encode(images)  # (N, h, w)
    acc, budget = {}, answer_budget(tok)
    for task in TASKS:
        prompts = _early_prompts(tok, vocab, codes, task)
        out = model.generate(prompts, max_new_tokens=budget, eos_token_id=tok.eos_id, pad_token_id=tok.eos_id)
        acc[task] = judge_answers(task, _answers(tok, prompts, out), labels)
    digits = torch.arange(10).repeat_interleave(per_digit)
    prompts, mask = pad_rows([[tok.eos_id, *tok.encode(DRAW.format(WORDS[d])), vocab.boi] for d in range(10)],
                             tok.pad_id, side="left")  # (10, T): "draw a seven" <boi>, left-padded
    prompts, mask = prompts.repeat_interleave(per_digit, 0), mask.repeat_interleave(per_digit, 0)
    drawn = model.draw(prompts, mask, do_sample=True, temperature=1.0, seed=seed)  # (10 per_digit, 1, 8, 8)
    greedy = model.draw(prompts[::per_digit], mask[::per_digit])  # (10, 1, 8, 8)
    acc["text_to_image"] = accuracy(drawn, digits)
    acc["text_to_image_greedy"] = accuracy(greedy, torch.arange(10))
    return acc, drawn


@torch.no_grad()
def evaluate_late(run_dir: Path, images: torch.Tensor, labels: torch.Tensor) -> dict:
    import genzoo

    from ..tokenizers import Tokenizer
    from ..train.fusion_task import text_example

    model, tok = genzoo.load(run_dir).eval(), Tokenizer.from_dir(run_dir)
    acc, budget = {}, answer_budget(tok)
    for task in TASKS:
        prompt, _ = text_example(task, 0)
        prompts = torch.tensor([[tok.eos_id, *tok.encode(prompt)]]).expand(len(images), -1)  # (N, T)
        out = model.generate(images, prompts, max_new_tokens=budget, eos_token_id=tok.eos_id,
                             pad_token_id=tok.eos_id)
        acc[task] = judge_answers(task, _answers(tok, prompts, out), labels)
    return acc


# ---- the jobs (module-level: they run in spawned worker processes) ----
def part_job(recipe_name: str, run_dir: str, sets: list[str], n_eval: int | None, reconstruct: bool) -> dict:
    """Pretrain a part (VQ, CLIP or the LM) -> its pretraining FLOPs; reconstruct (the VQ tokenizer): also its
    held-out PSNR and the first ten reconstructions (vq.png)."""
    import genzoo

    from ..data.digits import load_digits_split
    from ..models.vq import psnr
    from ..train import load_recipe

    run_dir = Path(run_dir)
    train_part(recipe_name, run_dir, sets)
    steps = load_recipe(recipe_name, sets).steps
    out = {"steps": steps, "flops": run_flops(run_dir, recipe_name, sets, steps)}
    if not reconstruct:
        return out
    _, _, val_x, _ = load_digits_split(20.0)
    val_x = val_x[:n_eval]
    vq = genzoo.load(run_dir).eval()
    with torch.no_grad():
        recon = vq(val_x).reconstruction  # (N, 1, 8, 8)
    return {**out, "psnr_db": psnr(recon, val_x), "recon": recon[:10], "originals": val_x[:10]}


def arm_job(recipe_name: str, run_dir: str, sets: list[str], paired: float, budget: list[str] | None,
            n_eval: int | None, per_digit: int, draws: bool) -> dict:
    """Train one method at one paired share and evaluate it on the held-out images.

    sets: the method's recipe overrides (steps among them, else the recipe's); budget (the early-fusion recipe's
    overrides): instead as many steps as early fusion's training FLOPs buy at this method's FLOPs per step. draws:
    early fusion (text -> image too)."""
    from ..data.digits import load_digits_split
    from ..train import load_recipe

    run_dir = Path(run_dir)
    recipe = load_recipe(recipe_name, ["progress=false", *sets])
    per_step, trainable, total = step_flops(recipe, run_dir.parent / f".flops-{run_dir.name}")
    if budget is not None:
        early = load_recipe("early-fusion-digits", ["progress=false", *budget])
        early_per_step = step_flops(early, run_dir.parent / f".flops-early-for-{run_dir.name}")[0]
        steps = max(1, round(early_per_step * early.steps / per_step))
    else:
        steps = recipe.steps
    train_part(recipe_name, run_dir, [*sets, f"data.paired_percent={paired}"], steps=steps)
    _, _, val_x, val_y = load_digits_split(20.0)
    val_x, val_y = val_x[:n_eval], val_y[:n_eval]
    out = {"steps": steps, "flops_per_step": per_step, "trainable": trainable, "total": total, "drawn": None}
    if draws:
        out["accuracy"], out["drawn"] = evaluate_early(run_dir, val_x, val_y, per_digit)
    else:
        out["accuracy"] = evaluate_late(run_dir, val_x, val_y)
    return out


# ---- the experiment ----
# The experiment's training lengths (the recipes keep theirs for `genzoo train`), cut to fit the 15 minutes
# on 2 cores: early fusion's steps set every method's FLOPs budget (2,000 -> 1,500 cuts every arm by a quarter;
# early fusion alone, 1,500 steps on a 1,000-step VQ tokenizer, measured 90.3% on "what digit", drawings 84.5%;
# 2,000 steps: 92-93%). The VQ tokenizer: 1,000 steps, held-out PSNR 24.8 dB (1,500: 25.5).
EARLY_STEPS = 1500
PART_STEPS = {"vq-digits": 1000, "clip-digits": None, "digit-lm": None}  # None: the recipe's
# One-thread CPU seconds of each job at the steps above, measured on the 2-vCPU AMD EPYC: only the launch order
# (longest remaining chain first) depends on them.
COST_S = {"vq-digits": 15, "clip-digits": 60, "digit-lm": 45, "early": 200, "late-prefix": 290, "late-xattn": 260}


@EXPERIMENTS.register("fusion")
def run(out: str, small: bool = False, sets: tuple[str, ...] = (), per_digit: int = 20, steps: int | None = None,
        part_steps: int | None = None, workers: int = 2) -> dict:
    """steps: early fusion's training steps (the late-fusion bridges get the same FLOPs; default EARLY_STEPS);
    part_steps: the steps of each part's pretraining (VQ, CLIP, LM; default PART_STEPS). workers: processes
    training side by side, one thread each (`parallel.run_graph`; 0: all in this process, the test suite). With
    workers > 0 the workers are spawned: a script calling this needs ``if __name__ == "__main__":``."""
    from ..data.digits import load_digits_split

    t0, cpu0 = time.perf_counter(), time.process_time()
    load_start = os.getloadavg()
    out = Path(out)
    fresh = not ((out / "parts").exists() or (out / "runs").exists())  # else trained runs are reused: time unknown
    out.mkdir(parents=True, exist_ok=True)
    # the shrunken run keeps SMALL's few steps unless told otherwise
    early_steps = steps or (None if small else EARLY_STEPS)  # None: the recipe's (with SMALL's overrides)

    def extra(name):
        if name.endswith("fusion-digits"):
            n = early_steps if name == "early-fusion-digits" else None
            mine = list(sets)
        else:
            n = part_steps or (None if small else PART_STEPS[name])
            mine = []
        return (SMALL[name] if small else []) + mine + ([f"steps={n}"] if n else [])

    arms = dict(ARMS)
    n_eval = None
    if small:  # the test suite: 10 images, one drawing per digit, no cross-attention arm (tests/fusion has its own)
        n_eval, per_digit = 10, 1
        arms.pop("late-xattn")

    # the graph: the parts, then each method at each paired share (early fusion needs only the VQ tokenizer)
    parts = {"vq-digits": out / "parts" / "vq", "clip-digits": out / "parts" / "clip",
             "digit-lm": out / "parts" / "lm"}
    jobs = {name: Job(part_job, (name, str(d), ["progress=false", *extra(name)], n_eval, name == "vq-digits"),
                      cost=COST_S[name]) for name, d in parts.items()}
    part_sets = {"early": [f"parts.image_tokenizer={parts['vq-digits']}"],
                 "late": [f"parts.vision={parts['clip-digits']}", f"parts.lm={parts['digit-lm']}"]}
    early_sets = [*extra("early-fusion-digits"), *part_sets["early"]]
    deps = {}
    for paired in PAIRED:
        for arm, (recipe_name, arm_sets, _) in arms.items():
            key = f"{arm}@{paired:g}%"
            is_early = recipe_name == "early-fusion-digits"
            mine = [*extra(recipe_name), *arm_sets, *part_sets["early" if is_early else "late"]]
            jobs[key] = Job(arm_job, (recipe_name, str(out / "runs" / f"{arm}-paired{paired:g}"), mine, paired,
                                      None if is_early else early_sets, n_eval, per_digit, is_early),
                            cost=COST_S[arm])
            deps[key] = ["vq-digits"] if is_early else list(parts)  # late fusion's budget is early fusion's FLOPs
    cpu_before = time.process_time() - cpu0
    graph = run_graph(jobs, deps, workers)
    cpu_mark = time.process_time()
    done = graph.results

    vq = done["vq-digits"]
    acc = {k: done[k]["accuracy"] for k in jobs if "@" in k}
    drawings = done["early@100%"]["drawn"]
    per_step = {arm: done[f"{arm}@100%"]["flops_per_step"] for arm in arms}
    arm_steps = {arm: done[f"{arm}@100%"]["steps"] for arm in arms}
    params = {arm: {"trainable": done[f"{arm}@100%"]["trainable"], "total": done[f"{arm}@100%"]["total"],
                    "trainable_share": done[f"{arm}@100%"]["trainable"] / done[f"{arm}@100%"]["total"]}
              for arm in arms}
    flops = {name: done[name]["flops"] for name in parts}

    low = {arm: acc[f"{arm}@10%"]["digit"] for arm in arms}
    best_late = max((a for a in arms if a != "early"), key=lambda a: low[a])
    margin = low["early"] - low[best_late]
    plot_accuracy(acc, out / "accuracy.png")
    plot_drawings(drawings, per_digit, out / "drawings.png")
    plot_vq(vq["originals"], vq["recon"], vq["psnr_db"], out / "vq.png")
    timing = timing_section(graph, deps, workers, cpu_before + time.process_time() - cpu_mark,
                            time.perf_counter() - t0, load_start)
    results = {
        "setup": {"small": small, "reused_trained_runs": not fresh,
                  "held_out_images": len(load_digits_split(20.0)[3][:n_eval]), "paired_percent": list(PAIRED),
                  "steps": arm_steps,
                  "part_steps": {n: done[n]["steps"] for n in parts},
                  "drawings_per_digit": per_digit, "workers": workers},
        "vq_psnr_db": vq["psnr_db"], "accuracy": acc, "parameters": params,
        "training_flops": {arm: per_step[arm] * arm_steps[arm] for arm in arms}, "flops_per_step": per_step,
        "pretraining_flops": flops,
        "low_paired": {"what_digit": low, "winner": "early" if margin > 0 else best_late,
                       "margin_points": 100 * abs(margin)},
        "timing": timing,
    }
    targets = {
        "early fusion 'what digit' (100% paired)": target(acc["early@100%"]["digit"], ">= 0.90"),
        "late fusion (prefix) 'what digit' (100% paired)": target(acc["late-prefix@100%"]["digit"], ">= 0.90"),
        **({"late fusion (xattn) 'what digit' (100% paired)": target(acc["late-xattn@100%"]["digit"], ">= 0.90")}
           if "late-xattn" in arms else {}),
        "early fusion text -> image read correctly": target(acc["early@100%"]["text_to_image"], ">= 0.80"),
        # the measured wall time (None when trained runs were reused: not measured); the idle-core estimate is
        # reported beside it (timing), never in its place
        "minutes": target(timing["wall_s"] / 60 if fresh else None, "<= 15"),
    }
    data = write_results(out, results, targets, time.perf_counter() - t0)
    write_report(out, report(data))
    return data


def timing_section(graph: GraphRun, deps: dict, workers: int, main_cpu_s: float, wall_s: float,
                   load_start: tuple) -> dict:
    """Where the time went: each job's CPU seconds (one thread in its worker), its measured span, the workers'
    start-up CPU, the measured wall time, and the idle-core estimate: this process's own CPU (outside the graph) +
    the worker start-up + `replay_schedule` of the measured job CPU seconds on `workers` workers (the same launch
    order as the run). On a loaded machine the measured wall time exceeds it."""
    n = max(1, workers)
    replay_s, replay_spans = replay_schedule(graph.cpu_s, deps, n, costs=graph.costs)
    startup = max(graph.startup_cpu_s.values(), default=0.0)
    estimate = main_cpu_s + startup + replay_s
    return {
        "workers": workers,
        "job_cpu_s": {k: round(v, 1) for k, v in graph.cpu_s.items()},
        "job_wall_span_s": {k: [round(a, 1), round(b, 1)] for k, (a, b) in graph.spans.items()},
        "launch_order": list(graph.order),
        "worker_startup_cpu_s": {str(p): round(v, 1) for p, v in graph.startup_cpu_s.items()},
        "main_process_cpu_s": round(main_cpu_s, 1),
        "total_cpu_s": round(sum(graph.cpu_s.values()) + sum(graph.startup_cpu_s.values()) + main_cpu_s, 1),
        "graph_wall_s": round(graph.wall_s, 1),
        "wall_s": round(wall_s, 1),
        "idle_replay_s": round(replay_s, 1),
        "idle_replay_spans_s": {k: [round(a, 1), round(b, 1)] for k, (a, b) in replay_spans.items()},
        "idle_estimate_s": round(estimate, 1),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
    }


def timing_markdown(t: dict) -> list[str]:
    """The timing section of report.md: measured wall time, the idle-core estimate beside it, each job's CPU."""
    where = (f"{t['workers']} worker processes of one thread" if t["workers"] else "this process (workers=0)")
    lines = [
        "## Timing",
        "",
        f"Measured wall time **{t['wall_s'] / 60:.1f} min** ({t['wall_s']:.0f} s; the training graph "
        f"{t['graph_wall_s']:.0f} s in {where}; load average {', '.join(map(str, t['load_average_start']))} at the "
        f"start, {', '.join(map(str, t['load_average_end']))} at the end). Idle-core estimate "
        f"**{t['idle_estimate_s'] / 60:.1f} min** ({t['idle_estimate_s']:.0f} s: the measured CPU seconds of each "
        f"job replayed through the same schedule on {max(1, t['workers'])} idle workers, {t['idle_replay_s']:.0f} s, "
        f"+ worker start-up {max(map(float, t['worker_startup_cpu_s'].values()), default=0.0):.0f} s + this "
        f"process's own {t['main_process_cpu_s']:.0f} s). The `minutes` target is the measured wall time; the "
        f"estimate says what idle cores would take, it does not replace it. CPU seconds in all: "
        f"{t['total_cpu_s']:.0f}.",
        "",
        "| job | CPU s | measured span (s) | idle replay span (s) |",
        "|---|---|---|---|",
    ]
    for k in t["launch_order"]:
        a, b = t["job_wall_span_s"][k]
        c, d = t["idle_replay_spans_s"][k]
        lines.append(f"| {k} | {t['job_cpu_s'][k]:.1f} | {a:.0f}-{b:.0f} | {c:.0f}-{d:.0f} |")
    return lines


def plot_accuracy(acc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [*TASKS, "text_to_image"]
    arms = [a for a in ARMS if f"{a}@100%" in acc]
    fig, axes = plt.subplots(1, len(PAIRED), figsize=(11, 3.6), dpi=110, sharey=True)
    for ax, paired in zip(axes, PAIRED):
        w = 0.8 / len(arms)
        for i, arm in enumerate(arms):
            a = acc[f"{arm}@{paired:g}%"]
            ys = [a.get(c, float("nan")) for c in cols]
            ax.bar([j + i * w for j in range(len(cols))], ys, w, label=ARMS[arm][2])
        ax.set_xticks([j + w for j in range(len(cols))], ["what digit", "even?", "3 plus", "caption", "text->img"],
                      fontsize=8)
        ax.set_title(f"{paired:g}% of the training images paired with text", fontsize=9)
        ax.axhline(0.9, color="grey", lw=0.6, ls="--")
    axes[0].set_ylabel("held-out accuracy")
    axes[0].set_ylim(0, 1.02)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    save_figure(fig, path)


def plot_drawings(drawn: torch.Tensor, per_digit: int, path: Path, cols: int = 8) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(cols, per_digit)
    fig, axes = plt.subplots(10, cols, figsize=(cols * 0.7, 7.2), dpi=110, squeeze=False)
    for d in range(10):
        for j in range(cols):
            ax = axes[d][j]
            ax.imshow(drawn[d * per_digit + j, 0].numpy(), cmap="gray_r", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[d][0].set_ylabel(str(d), rotation=0, labelpad=8)
    fig.suptitle("early fusion: 'draw a <digit>' -> image tokens -> VQ decoder", fontsize=8)
    save_figure(fig, path)


def plot_vq(x: torch.Tensor, recon: torch.Tensor, db: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(x), figsize=(len(x) * 0.7, 1.8), dpi=110, squeeze=False)
    for j in range(len(x)):
        for i, img in enumerate((x, recon)):
            axes[i][j].imshow(img[j, 0].numpy(), cmap="gray_r", vmin=-1, vmax=1)
            axes[i][j].set_xticks([])
            axes[i][j].set_yticks([])
    axes[0][0].set_ylabel("in", rotation=0, labelpad=8)
    axes[1][0].set_ylabel("VQ", rotation=0, labelpad=8)
    fig.suptitle(f"VQ tokenizer: 16 codes per digit, held-out PSNR {db:.1f} dB", fontsize=8)
    save_figure(fig, path)


def report(r: dict) -> str:
    s = r["setup"]
    acc, params, fl = r["accuracy"], r["parameters"], r["training_flops"]
    arms = [a for a in ARMS if a in params]
    lines = [
        "# Early fusion vs late fusion on the digit world",
        "",
        f"Held-out digits: {s['held_out_images']} images never trained on. VQ image tokenizer: held-out "
        f"reconstruction PSNR {r['vq_psnr_db']:.2f} dB. Every method gets the same training FLOPs (forward + "
        f"backward, `torch.utils.flop_counter`); steps: " + ", ".join(f"{a} {n}" for a, n in s["steps"].items()) + ".",
        "",
        "| method | paired | what digit | even? | 3 plus | caption | text -> image (sampled / greedy) |",
        "|---|---|---|---|---|---|---|",
    ]
    for paired in s["paired_percent"]:
        for arm in arms:
            a = acc[f"{arm}@{paired:g}%"]
            t2i = (f"{100 * a['text_to_image']:.1f}% / {100 * a['text_to_image_greedy']:.0f}%"
                   if "text_to_image" in a else "-")
            lines.append(f"| {ARMS[arm][2]} | {paired:g}% | {100 * a['digit']:.1f}% | {100 * a['parity']:.1f}% | "
                         f"{100 * a['plus3']:.1f}% | {100 * a['caption']:.1f}% | {t2i} |")
    lines += [
        "",
        "| method | trainable parameters | total parameters | training FLOPs | FLOPs / step |",
        "|---|---|---|---|---|",
        *[f"| {ARMS[a][2]} | {params[a]['trainable']:,} ({100 * params[a]['trainable_share']:.1f}%) | "
          f"{params[a]['total']:,} | {fl[a]:.3g} | {r['flops_per_step'][a]:.3g} |" for a in arms],
        "",
        "Pretraining of the parts (not in the budget above; late fusion needs CLIP and the LM, early fusion the VQ "
        "tokenizer): " + ", ".join(f"{k} {v:.3g} FLOPs" for k, v in r["pretraining_flops"].items()) + ".",
        "",
        f"**Low paired data (10%)**: on \"what digit\" the winner is **{ARMS[r['low_paired']['winner']][2]}**, by "
        f"{r['low_paired']['margin_points']:.1f} points over the best of the other kind ("
        + ", ".join(f"{a} {100 * v:.1f}%" for a, v in r["low_paired"]["what_digit"].items()) + "). "
        "Early fusion still trains on the unpaired 90% as image-only sequences; late fusion's bridge sees only the "
        "paired 10%, but its CLIP image tower was pretrained with captions of every training image (its "
        "pretraining is not limited to the paired share).",
        "",
        "## Targets",
        "",
        targets_markdown(r["targets"]),
        "",
        machine_line(r),
        "",
        *timing_markdown(r["timing"]),
        "",
        "![accuracy](accuracy.png)",
        "",
        "![drawings](drawings.png)",
        "",
        "![VQ reconstructions](vq.png)",
        "",
    ]
    return "\n".join(lines)
