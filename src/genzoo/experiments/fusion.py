"""`genzoo experiment fusion`: early fusion (Gemini Team, 2023, arXiv 2312.11805: one decoder over interleaved text
and image tokens, able to write images) against late fusion (LLaVA, arXiv 2304.08485: a frozen image encoder and a
frozen LM joined by a trained projector, with LoRA adapters on the LM; Flamingo's gated cross-attention, arXiv
2204.14198, as the option) on the digit world (`data.digit_fusion`), with the same data and the same training
compute.

1. The parts: a VQ image tokenizer (`vq-digits`: reconstruction PSNR), CLIP on the digits (`clip-digits`, whose image
   tower late fusion uses) and the digit world's text LM (`digit-lm`, late fusion's language model).
2. Training FLOPs of one step of each method are counted (`torch.utils.flop_counter`, forward + backward, averaged
   over a few batches); early fusion trains its recipe's steps, each late-fusion bridge as many steps as the same
   FLOPs buy. The parts' own pretraining FLOPs are reported beside them.
3. Each method trained with all the paired data (100%) and with 10% of it (the other images unpaired; early fusion
   still models them as images, late fusion cannot use them).
4. Held-out images (never trained on): greedy answers to "what digit is this?", "is it even?", "what is 3 plus this
   digit?", captions (right when they name the digit); early fusion also draws each digit from text ("draw a
   seven" <boi> ...), sampled, read by the frozen digit classifier (`models.diffusion.judges`).

Writes report.md, accuracy.png, drawings.png, vq.png and results.json (targets: both >= 90% on "what digit";
early-fusion text -> image read correctly >= 80%; the whole experiment <= 15 minutes).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..figures import save_figure
from . import EXPERIMENTS
from .results import target, targets_markdown, write_report, write_results

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


# ---- the experiment ----
@EXPERIMENTS.register("fusion")
def run(out: str, small: bool = False, sets: tuple[str, ...] = (), per_digit: int = 20, steps: int | None = None,
        part_steps: int | None = None) -> dict:
    """steps: early fusion's training steps (the late-fusion bridges get the same FLOPs; default: the recipe's);
    part_steps: the steps of each part's pretraining (VQ, CLIP, LM; default: their recipes')."""
    import genzoo

    from ..data.digits import load_digits_split
    from ..models.vq import psnr
    from ..train import load_recipe

    t0 = time.perf_counter()
    out = Path(out)
    fresh = not ((out / "parts").exists() or (out / "runs").exists())  # else trained runs are reused: time unknown
    out.mkdir(parents=True, exist_ok=True)

    def extra(name):
        mine = list(sets) + ([f"steps={steps}"] if steps else []) if name.endswith("fusion-digits") else \
            ([f"steps={part_steps}"] if part_steps else [])
        return (SMALL[name] if small else []) + mine

    _, _, val_x, val_y = load_digits_split(20.0)
    arms = dict(ARMS)
    if small:  # the test suite: 10 images, one drawing per digit, no cross-attention arm (tests/fusion has its own)
        val_x, val_y, per_digit = val_x[:10], val_y[:10], 1
        arms.pop("late-xattn")
    timing, flops = {}, {}

    # 1. the parts
    t = time.perf_counter()
    parts = out / "parts"
    vq_dir = train_part("vq-digits", parts / "vq", extra("vq-digits"))
    clip_dir = train_part("clip-digits", parts / "clip", extra("clip-digits"))
    lm_dir = train_part("digit-lm", parts / "lm", extra("digit-lm"))
    timing["parts_s"] = time.perf_counter() - t
    vq = genzoo.load(vq_dir).eval()
    with torch.no_grad():
        recon = vq(val_x).reconstruction
    vq_psnr = psnr(recon, val_x)
    for name, d in (("vq-digits", vq_dir), ("clip-digits", clip_dir), ("digit-lm", lm_dir)):
        flops[name] = run_flops(d, name, extra(name), load_recipe(name, extra(name)).steps)
    part_sets = {"early": [f"parts.image_tokenizer={vq_dir}"],
                 "late-prefix": [f"parts.vision={clip_dir}", f"parts.lm={lm_dir}"]}
    part_sets["late-xattn"] = part_sets["late-prefix"]

    # 2. the same training FLOPs for every method
    per_step, params, arm_steps = {}, {}, {}
    for arm, (recipe_name, arm_sets, _) in arms.items():
        recipe = load_recipe(recipe_name, ["progress=false", *extra(recipe_name), *arm_sets, *part_sets[arm]])
        per_step[arm], trainable, total = step_flops(recipe, out / "runs" / f".flops-{arm}")
        params[arm] = {"trainable": trainable, "total": total, "trainable_share": trainable / total}
    early_steps = load_recipe("early-fusion-digits", extra("early-fusion-digits")).steps
    budget = per_step["early"] * early_steps
    for arm in arms:
        arm_steps[arm] = early_steps if arm == "early" else max(1, round(budget / per_step[arm]))

    # 3. training at 100% and 10% paired data; 4. evaluation on the held-out images
    acc, drawings, train_s = {}, None, {}
    for paired in PAIRED:
        for arm, (recipe_name, arm_sets, _) in arms.items():
            key = f"{arm}@{paired:g}%"
            run_dir = out / "runs" / f"{arm}-paired{paired:g}"
            t = time.perf_counter()
            train_part(recipe_name, run_dir, [*extra(recipe_name), *arm_sets, *part_sets[arm],
                                              f"data.paired_percent={paired}"], steps=arm_steps[arm])
            train_s[key] = time.perf_counter() - t
            if arm == "early":
                acc[key], drawn = evaluate_early(run_dir, val_x, val_y, per_digit)
                if paired == 100.0:
                    drawings = drawn
            else:
                acc[key] = evaluate_late(run_dir, val_x, val_y)
    timing["training_s"] = train_s

    low = {arm: acc[f"{arm}@10%"]["digit"] for arm in arms}
    best_late = max((a for a in arms if a != "early"), key=lambda a: low[a])
    margin = low["early"] - low[best_late]
    results = {
        "setup": {"small": small, "reused_trained_runs": not fresh, "held_out_images": len(val_y),
                  "paired_percent": list(PAIRED), "steps": arm_steps,
                  "drawings_per_digit": per_digit},
        "vq_psnr_db": vq_psnr, "accuracy": acc, "parameters": params,
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
        "minutes": target((time.perf_counter() - t0) / 60 if fresh else None, "<= 15"),  # None: not measured
    }
    plot_accuracy(acc, out / "accuracy.png")
    plot_drawings(drawings, per_digit, out / "drawings.png")
    plot_vq(val_x[:10], recon[:10], vq_psnr, out / "vq.png")
    data = write_results(out, results, targets, time.perf_counter() - t0)
    write_report(out, report(data))
    return data


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
        f"Machine: {r['machine'].get('cpu')}, {r['machine'].get('cores')} cores, load average "
        f"{r['machine'].get('load_average_1min')}; {r['seconds']:.0f} s in all.",
        "",
        "![accuracy](accuracy.png)",
        "",
        "![drawings](drawings.png)",
        "",
        "![VQ reconstructions](vq.png)",
        "",
    ]
    return "\n".join(lines)
