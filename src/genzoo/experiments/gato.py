"""`genzoo experiment gato`: is one multi-domain decoder as good as one model per task? (Gato, Reed et al., 2022,
arXiv 2205.06175, sec. 4-5.)

1. The generalist: `gato-nano` trained on the whole mixture (standard-library text, digit captions, CartPole,
   Pendulum, MountainCar and the image grid world), with the recipe's mixture weights.
2. The specialists: the same model size trained on one task each, on as many windows of its task as the generalist
   drew (mixture weight x steps, same batch size); the text specialist is the text-only model of the same size and
   the same number of steps as the generalist (the reference of the text target).
3. Evaluation on data never trained on: every control task over `episodes` environments (seeds from
   `control.EVAL_SEED`), prompted with a demonstration of the same task (`mixture.demonstration`), greedy actions
   (a discrete action: the most likely token; a continuous one: the expected value over its bins, `GatoAgent`);
   the score is normalised as (return - random) / (expert - random), the expert and the uniformly random policy
   played on the same seeds. Captioning: greedy captions of the held-out digits, correct when the digit named is
   the right one. Text: the masked next-token loss on held-out standard-library files.

The seven training runs (after the shared tokenizer) run side by side in `workers` one-thread processes
(`parallel.run_graph`, longest first: the generalist and the text-only model start together); workers=0 trains them
one after another in this process (the test suite).

Writes report.md, scores.png (normalised score per task, generalist vs specialists), gridworld_rollout.png (a
rollout strip of the generalist in the grid world) and results.json.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

import torch

from ..figures import save_figure
from .parallel import Job, run_graph
from .results import machine_line, target, targets_markdown, write_report, write_results
from . import EXPERIMENTS

SMALL = {  # the shrunken experiment of the test suite: a tiny model, a few steps, few episodes
    "model.preset": "gato-tiny", "data.block_size": 64, "data.vocab_size": 300, "data.max_bytes": 150_000,
    "steps": 6, "batch_size": 4, "eval_batches": 1, "warmup_steps": 2,
    "data.episodes": {"cartpole": 2, "pendulum": 3, "mountaincar": 3, "gridworld": 30},
}


@contextlib.contextmanager
def torch_threads(n: int):
    """Run with n intra-op threads (rollouts are many tiny ops, for which more threads only add waiting)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def tokenizer_job(recipe_sets: dict, directory: Path, generalist: Path) -> None:
    """The byte-level BPE every run shares, in directory/tokenizer.json: a trained generalist's own (reused), else
    trained as the gato task trains it (`gato_task.gato_tokenizer`: the corpus and the captions)."""
    from ..data import stdlib_corpus
    from ..train import load_recipe
    from ..train.distributed import Dist
    from ..train.gato_task import gato_tokenizer

    directory.mkdir(parents=True, exist_ok=True)
    if (generalist / "model.safetensors").exists():
        shutil.copyfile(generalist / "tokenizer.json", directory / "tokenizer.json")
        return
    data = load_recipe("gato-nano", recipe_sets).data
    texts = stdlib_corpus(max_bytes=data.max_bytes, val_percent=data.val_percent).read("train")
    gato_tokenizer(directory, Dist(), texts, data.vocab_size)


def train_run(recipe_sets: dict, directory: Path, tokenizer_from: Path | None) -> float:
    """Train (or reuse) one run; a tokenizer trained once is copied in, so every run shares the same vocabulary.
    -> the wall seconds it trained (0 when reused)."""
    from ..rundir import seed_run
    from ..train import load_recipe, train

    if (directory / "model.safetensors").exists():
        return 0.0
    recipe = load_recipe("gato-nano", recipe_sets)
    t0 = time.perf_counter()
    shutil.rmtree(directory, ignore_errors=True)
    if tokenizer_from is not None:
        seed_run(directory, {"tokenizer.json": tokenizer_from / "tokenizer.json"})
    train(recipe, directory)
    return time.perf_counter() - t0


def control_score(model, name: str, episodes: int, prompt_tokens: int, render: int = 0) -> dict:
    from ..data.control import CONTROL, run_episodes
    from ..data.mixture import demonstration
    from ..models.gato.agent import GatoAgent

    task = CONTROL.get(name)
    agent = GatoAgent(model, task.spec, demonstration(name, model.config.layout, prompt_tokens))
    agent.reset(episodes)
    returns, lengths, frames = run_episodes(task, agent.act, episodes, render=render)
    return {"returns": returns, "mean_return": sum(returns) / episodes, "mean_length": sum(lengths) / episodes,
            "frames": frames}


def baselines(name: str, episodes: int) -> dict:
    from ..data.control import CONTROL, EVAL_SEED, random_returns, rollout

    task = CONTROL.get(name)
    expert = [rollout(task, EVAL_SEED + i).total for i in range(episodes)]
    rand = random_returns(name, episodes)
    return {"expert": sum(expert) / episodes, "random": sum(rand) / episodes}


def caption_accuracy(model, tokenizer, n: int | None = None) -> tuple[float, list[str]]:
    """Greedy captions of the held-out digits; correct when the only digit word named is the right one."""
    from ..data.digits import WORDS, load_digits_split
    from ..data.mixture import DIGIT_RANGE, digit_ink
    from ..models.gato.sequence import image_tokens

    _, _, images, labels = load_digits_split(20.0)
    images, labels = images[:n], labels[:n]
    ids = model.generate_text(image_tokens(digit_ink(images), model.config.layout, *DIGIT_RANGE, local=False), 12,
                              tokenizer.eos_id)
    texts = [tokenizer.decode([t for t in row if t != tokenizer.eos_id]) for row in ids.tolist()]
    correct = 0
    for text, y in zip(texts, labels.tolist()):
        named = [w for w in WORDS if w in text.replace(",", " ").split()]
        correct += named == [WORDS[y]]
    return correct / len(labels), texts[:10]


def text_windows(tokenizer, recipe, layout, windows: int = 64):
    """The first `windows` blocks of the held-out standard-library files."""
    from ..data import stdlib_corpus
    from ..data.mixture import TextStream, validation_windows
    from ..train.data import token_stream

    corpus = stdlib_corpus(max_bytes=recipe.data.max_bytes, val_percent=recipe.data.val_percent)
    stream = TextStream(token_stream(tokenizer, corpus.read("val")), layout)
    return validation_windows(stream, recipe.data.block_size, windows)


def text_loss(model, w) -> float:
    """The masked next-token loss over text windows w (N, T)."""
    from ..models.gato.model import masked_loss

    with torch.no_grad():
        total = [masked_loss(model(w.batch_slice(i, i + 16)).logits, w.batch_slice(i, i + 16), "none").sum()
                 for i in range(0, w.ids.shape[0], 16)]
    return float(sum(total) / w.target[:, 1:].sum())


@EXPERIMENTS.register("gato")
def run(out: str, small: bool = False, sets: tuple[str, ...] = (), episodes: int = 20, workers: int = 2) -> dict:
    """workers: processes training side by side, one thread each (0: one after another in this process). With
    workers > 0 they are spawned: a script calling this needs ``if __name__ == "__main__":``."""
    import genzoo
    from ..data.control import CONTROL
    from ..data.mixture import check_mixture
    from ..tokenizers import Tokenizer
    from ..train import load_recipe
    from ..train.recipe import parse_sets

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = {"progress": False, **(SMALL if small else {}), **parse_sets(list(sets))}
    episodes = 2 if small else episodes
    recipe = load_recipe("gato-nano", base)
    weights = check_mixture(recipe.data.mixture)
    steps, block = recipe.steps, recipe.data.block_size
    shared = out / "tokenizer"
    jobs = {"tokenizer": Job(tokenizer_job, (base, shared, out / "generalist"), cost=1.0),
            "generalist": Job(train_run, (base, out / "generalist", shared), cost=float(steps))}
    budgets = {}
    for task in weights:  # the specialists, on the generalist's share of each task (text: all its steps)
        n = steps if task == "text" else max(1, round(weights[task] * steps))
        budgets[task] = n
        sets_n = {**base, "data.mixture": {task: 1.0}, "steps": n, "warmup_steps": max(1, min(recipe.warmup_steps,
                  n // 10)), "eval_every": n, "save_every": n}
        jobs[f"specialist-{task}"] = Job(train_run, (sets_n, out / f"specialist-{task}", shared), cost=float(n))
    graph = run_graph(jobs, {k: ["tokenizer"] for k in jobs if k != "tokenizer"}, workers)
    seconds_train = time.perf_counter() - t0

    tok = Tokenizer.from_dir(out / "generalist")
    models = {"generalist": genzoo.load(out / "generalist")}
    prompt_tokens = block // 4
    results = {"mixture": weights, "steps": steps, "batch_size": recipe.batch_size, "block_size": block,
               "workers": workers, "train_seconds": {k: round(v, 1) for k, v in graph.results.items() if v},
               "specialist_steps": budgets, "episodes": episodes, "prompt_tokens": prompt_tokens,
               "parameters": models["generalist"].num_parameters(), "control": {}}
    strip = []
    with torch_threads(1):
        for name in (n for n in weights if n in CONTROL):
            specialist = genzoo.load(out / f"specialist-{name}")
            ref = baselines(name, episodes)
            render = 12 if name == "gridworld" else 0  # the rollout strip
            g = control_score(models["generalist"], name, episodes, prompt_tokens, render=render)
            s = control_score(specialist, name, episodes, prompt_tokens)
            norm = lambda r: (r - ref["random"]) / (ref["expert"] - ref["random"])  # noqa: E731
            if name == "gridworld":
                strip = g["frames"]
            results["control"][name] = {
                **ref, "generalist": g["mean_return"], "specialist": s["mean_return"],
                "generalist_normalised": norm(g["mean_return"]), "specialist_normalised": norm(s["mean_return"]),
                "generalist_returns": g["returns"], "specialist_returns": s["returns"],
                "generalist_mean_length": g["mean_length"]}
        if "caption" in weights:
            n = 40 if small else None
            acc_g, examples = caption_accuracy(models["generalist"], tok, n)
            acc_s, _ = caption_accuracy(genzoo.load(out / "specialist-caption"), tok, n)
            results["caption"] = {"generalist": acc_g, "specialist": acc_s, "examples": examples}
        if "text" in weights:
            w = text_windows(tok, recipe, models["generalist"].config.layout, 4 if small else 64)
            lg = text_loss(models["generalist"], w)
            ls = text_loss(genzoo.load(out / "specialist-text"), w)
            results["text"] = {"generalist": lg, "text_only": ls, "ratio": lg / ls}

    c = results["control"]
    targets = {}
    for name, rule in (("cartpole", ">= 0.8"), ("pendulum", ">= 0.8"), ("gridworld", ">= 0.6")):
        if name in c:
            targets[f"{name}_normalised_score"] = target(c[name]["generalist_normalised"], rule)
    if "caption" in results:
        targets["caption_accuracy"] = target(results["caption"]["generalist"], ">= 0.85")
    if "text" in results:
        targets["text_loss_over_text_only"] = target(results["text"]["ratio"], "<= 1.10")
    seconds = time.perf_counter() - t0
    targets["minutes"] = target(seconds / 60, "<= 15")
    results["seconds_training"] = seconds_train
    plot_scores(results, out / "scores.png")
    if strip:
        plot_strip(strip, out / "gridworld_rollout.png")
    data = write_results(out, results, targets, seconds)
    write_report(out, report(data, bool(strip)))
    return data


def plot_scores(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(r["control"]) + (["caption"] if "caption" in r else [])
    gen = [r["control"][n]["generalist_normalised"] for n in r["control"]] + \
        ([r["caption"]["generalist"]] if "caption" in r else [])
    spe = [r["control"][n]["specialist_normalised"] for n in r["control"]] + \
        ([r["caption"]["specialist"]] if "caption" in r else [])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=120, gridspec_kw={"width_ratios": [4, 1]})
    x = torch.arange(len(names)).numpy()
    axes[0].bar(x - 0.2, gen, 0.4, label="generalist (one model)")
    axes[0].bar(x + 0.2, spe, 0.4, label="specialist (one per task)")
    axes[0].axhline(1.0, color="grey", lw=0.8, ls="--")
    axes[0].set_xticks(x, [n if n != "caption" else "caption\n(accuracy)" for n in names], fontsize=8)
    axes[0].set_ylabel("(return - random) / (expert - random)", fontsize=8)
    axes[0].set_ylim(top=max(1.0, *gen, *spe) + 0.3)  # room above the bars for the legend
    axes[0].legend(fontsize=7, loc="upper center", ncol=2)
    axes[0].set_title("normalised score per task", fontsize=9)
    if "text" in r:
        axes[1].bar([0, 1], [r["text"]["generalist"], r["text"]["text_only"]], color=["C0", "C1"])
        axes[1].set_xticks([0, 1], ["generalist", "text only"], fontsize=8)
        axes[1].set_title("text val. loss", fontsize=9)
    else:
        axes[1].axis("off")
    fig.tight_layout()
    save_figure(fig, path)


def plot_strip(frames: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(frames), figsize=(1.1 * len(frames), 1.4), dpi=120, squeeze=False)
    for i, (ax, f) in enumerate(zip(axes[0], frames)):
        ax.imshow(f)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"t={i}", fontsize=7)
    fig.suptitle("the generalist in the grid world (red: agent, green: goal)", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def report(r: dict, strip: bool) -> str:
    c = r["control"]
    lines = [
        "# Gato: one multi-domain decoder vs one model per task",
        "",
        f"`gato-nano` ({r['parameters']:,} parameters, context {r['block_size']}) trained {r['steps']} steps "
        f"(batch {r['batch_size']}) on the mixture {', '.join(f'{k} {v:.2f}' for k, v in r['mixture'].items())}. "
        "Each specialist is the same model trained on its task alone for as many windows of it as the generalist "
        "drew (steps: " + ", ".join(f"{k} {v}" for k, v in r["specialist_steps"].items()) + "; the text-only model "
        "has the generalist's steps). Training: " + (f"{r['workers']} one-thread worker processes side by side"
                                                      if r["workers"] else "one run after another in one process")
        + f", {r['seconds_training'] / 60:.1f} min.",
        "",
        f"Control: {r['episodes']} episodes per task on unseen seeds, prompted with a {r['prompt_tokens']}-token "
        "demonstration of the task, greedy actions (a continuous action: the expected value over its bins); "
        "normalised score = (return - random) / (expert - random).",
        "",
        "| task | expert | random | generalist | specialist | generalist normalised | specialist normalised |",
        "|---|---|---|---|---|---|---|",
        *[f"| {n} | {v['expert']:.1f} | {v['random']:.1f} | {v['generalist']:.1f} | {v['specialist']:.1f} | "
          f"{v['generalist_normalised']:.2f} | {v['specialist_normalised']:.2f} |" for n, v in c.items()],
        "",
    ]
    if "caption" in r:
        lines += [f"Captioning (held-out digits, the digit named): generalist {100 * r['caption']['generalist']:.1f}%, "
                  f"specialist {100 * r['caption']['specialist']:.1f}%. Examples: "
                  + "; ".join(f"`{t.strip()}`" for t in r["caption"]["examples"][:5]), ""]
    if "text" in r:
        lines += [f"Text (held-out standard-library files, masked next-token loss): generalist "
                  f"{r['text']['generalist']:.3f}, text-only {r['text']['text_only']:.3f} (ratio "
                  f"{r['text']['ratio']:.3f}).", ""]
    lines += ["## Targets", "", targets_markdown(r["targets"]), "",
              machine_line(r), "", "![scores](scores.png)", ""]
    if strip:
        lines += ["![grid-world rollout](gridworld_rollout.png)", ""]
    return "\n".join(lines)
