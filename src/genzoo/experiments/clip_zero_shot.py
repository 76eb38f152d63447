"""`genzoo experiment clip-zero-shot`: train the clip-digits recipe, then classify held-out digit images
zero-shot with caption templates never seen in training: each template alone and the prompt ensemble
(CLIP sec. 3.1.4), and retrieve text->image and image->text (recall@1, @5). Writes report.md,
confusion.png and results.json."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..figures import save_figure
from . import EXPERIMENTS
from .results import machine_line, target, targets_markdown, write_report, write_results


@EXPERIMENTS.register("clip-zero-shot")
def run(out: str, steps: int | None = None, sets: tuple[str, ...] = ()) -> dict:
    import genzoo
    from ..data.digits import HELD_OUT_TEMPLATES, TRAIN_TEMPLATES, WORDS
    from ..models.clip import recall_at_k
    from ..data.digits import load_digits_split
    from ..tokenizers import Tokenizer
    from ..train import load_recipe, train
    from ..train.clip_task import tokenize

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = load_recipe("clip-digits", list(sets))
    run_dir = out / "run"
    if not (run_dir / "model.safetensors").exists():
        train(recipe, run_dir, steps=steps)
    model, tok = genzoo.load(run_dir), Tokenizer.from_dir(run_dir)
    _, _, images, labels = load_digits_split(recipe.data.val_percent)

    def tk(texts):
        return tokenize(tok, texts, recipe.data.block_size)

    with torch.no_grad():
        single = {}
        for t in HELD_OUT_TEMPLATES:
            pred, _ = model.classify(images, WORDS, [t], tk)
            single[t] = (pred == labels).float().mean().item()
        pred, _ = model.classify(images, WORDS, HELD_OUT_TEMPLATES, tk)
        ensemble = (pred == labels).float().mean().item()
        # retrieval: one caption per held-out image, from a held-out template, naming its class by word
        g = torch.Generator().manual_seed(0)
        picks = torch.randint(len(HELD_OUT_TEMPLATES), (len(labels),), generator=g)
        captions = [HELD_OUT_TEMPLATES[int(i)].format(WORDS[int(c)]) for i, c in zip(picks, labels)]
        text = model.encode_text(*tk(captions))
        image = model.encode_image(images)
        i2t = recall_at_k(image, text, (1, 5), labels, labels)
        t2i = recall_at_k(text, image, (1, 5), labels, labels)
    confusion = torch.zeros(10, 10, dtype=torch.long)
    for p, y in zip(pred, labels):
        confusion[y, p] += 1
    mean_single = sum(single.values()) / len(single)
    results = {
        "held_out_images": len(labels), "train_templates": TRAIN_TEMPLATES, "held_out_templates": HELD_OUT_TEMPLATES,
        "zero_shot_single_template": single, "zero_shot_mean_single": mean_single, "zero_shot_ensemble": ensemble,
        "ensemble_beats_mean_single": ensemble > mean_single, "recall_image_to_text": i2t,
        "recall_text_to_image": t2i, "confusion": confusion.tolist(),
    }
    targets = {  # the claims this experiment tests (CLIP sec. 3.1.4: an ensemble of prompts beats one prompt)
        "zero-shot ensemble accuracy minus mean single-template accuracy": target(ensemble - mean_single, "> 0"),
        "zero-shot ensemble accuracy (chance 0.1)": target(ensemble, "> 0.1"),
    }
    results = write_results(out, results, targets, seconds=time.perf_counter() - t0)
    plot_confusion(confusion, out / "confusion.png", ensemble)
    write_report(out, report(results, recipe))
    print(f"wrote {out / 'report.md'}, {out / 'confusion.png'}, {out / 'results.json'}")
    return results


def plot_confusion(confusion: torch.Tensor, path: Path, acc: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=120)
    im = ax.imshow(confusion.numpy(), cmap="Blues")
    for i in range(10):
        for j in range(10):
            v = int(confusion[i, j])
            if v:
                ax.text(j, i, v, ha="center", va="center", fontsize=7,
                        color="white" if v > confusion.max() / 2 else "black")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted digit (zero-shot)")
    ax.set_ylabel("true digit")
    ax.set_title(f"CLIP zero-shot on held-out digits, unseen templates: {100 * acc:.1f}%", fontsize=9)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    save_figure(fig, path)


def report(r: dict, recipe) -> str:
    lines = [
        "# CLIP zero-shot classification and retrieval on handwritten digits",
        "",
        f"`clip-digits` ({recipe.steps} steps, batch {recipe.batch_size}) trained on scikit-learn's digits "
        f"with captions from {len(r['train_templates'])} templates; evaluated on {r['held_out_images']} held-out "
        f"images with {len(r['held_out_templates'])} templates never seen in training (class named by its word).",
        "",
        "| zero-shot | accuracy |",
        "|---|---|",
        *[f"| `{t}` | {100 * a:.1f}% |" for t, a in r["zero_shot_single_template"].items()],
        f"| mean of single templates | {100 * r['zero_shot_mean_single']:.1f}% |",
        f"| **ensemble of all held-out templates** | **{100 * r['zero_shot_ensemble']:.1f}%** |",
        "",
        "Retrieval with one held-out-template caption per image; a hit is an item of the same digit among the "
        "top k (captions repeat across images of one digit, so pairwise retrieval is ill-defined):",
        "",
        "| direction | recall@1 | recall@5 |",
        "|---|---|---|",
        f"| image -> text | {100 * r['recall_image_to_text'][1]:.1f}% | {100 * r['recall_image_to_text'][5]:.1f}% |",
        f"| text -> image | {100 * r['recall_text_to_image'][1]:.1f}% | {100 * r['recall_text_to_image'][5]:.1f}% |",
        "",
        "## Targets",
        "",
        targets_markdown(r["targets"]),
        "",
        machine_line(r),
        "",
        "![confusion matrix](confusion.png)",
        "",
    ]
    return "\n".join(lines)
