"""Figures, targets and report.md of `genzoo experiment lens-spae`."""

from __future__ import annotations

from pathlib import Path

import torch

from ..figures import image_grid, save_figure
from .results import machine_line, target, targets_markdown, write_results

CHANCE = 0.2  # 5-way classification


def make_targets(r: dict) -> dict:
    icl = r["in_context_classification"]["spae"]
    return {
        "lens_vqa_accuracy": target(r["vqa"]["lens_accuracy"], ">= 0.85"),
        "spae_psnr_full_depth_db": target(r["spae"]["spae"]["psnr_per_depth"][-1], ">= 18"),
        "semantic_precision_with_loss": target(r["spae"]["spae"]["semantic_precision"], ">= 0.60"),
        "semantic_precision_without_loss": target(r["spae"]["spae-nosem"]["semantic_precision"], "<= 0.10"),
        "icl_5shot_points_above_chance": target(icl[5] - CHANCE, ">= 0.30"),
        "frozen_modules_unchanged": target(r["frozen_unchanged"], "== true"),
        "spae_emits_only_vocabulary_ids": target(r["spae"]["spae"]["only_vocabulary_ids"]
                                                 and r["generation"]["only_vocabulary_ids"], "== true"),
    }


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pick(labels: torch.Tensor) -> list[int]:
    """The first held-out image of each digit."""
    return [int((labels == c).nonzero()[0]) for c in range(10) if bool((labels == c).any())]


def plot_reconstructions(spaes: dict, images, labels, path: Path) -> None:
    idx = pick(labels)
    rows, names = [images[idx]], ["original"]
    with torch.no_grad():
        for name, m in spaes.items():
            ids = m.tokenize(images[idx])
            ends = [sum(m.config.layer_sizes[: i + 1]) for i in range(len(m.config.pyramid))]
            for depth, end in enumerate(ends, 1):
                rows.append(m.decode_tokens(ids[:, :end]))
                names.append(f"{'sem' if name == 'spae' else 'no-sem'} {end} tok")
    image_grid(torch.cat(rows), path, ncol=len(idx), title="SPAE reconstructions from each pyramid depth "
               "(with / without the semantic loss)", row_labels=names)


def plot_words(spaes: dict, tok, images, labels, path: Path, n: int = 5) -> None:
    """For a few held-out images: the words of each pyramid layer, with and without the semantic loss."""
    plt = _plt()
    idx = pick(labels)[:n]
    fig, axes = plt.subplots(n, 1 + len(spaes), figsize=(3.2 + 6.0 * len(spaes), 1.9 * n), dpi=100,
                             gridspec_kw={"width_ratios": [1] + [6] * len(spaes)}, squeeze=False)
    for r, i in enumerate(idx):
        axes[r, 0].imshow(images[i, 0].numpy(), cmap="gray_r", vmin=-1, vmax=1)
        axes[r, 0].set_xticks([])
        axes[r, 0].set_yticks([])
        axes[r, 0].set_ylabel(f"digit {int(labels[i])}", fontsize=8)
        for j, (name, m) in enumerate(spaes.items(), 1):
            ids = m.split(m.tokenize(images[i: i + 1]))
            lines = []
            for layer, s in zip(ids, m.config.pyramid):
                words = [tok.tok.id_to_token(int(t)) for t in layer[0]]
                grid = [" ".join(f"{w:>8}" for w in words[k * s: (k + 1) * s]) for k in range(s)]
                lines.append(f"{s * s:>2} tok: " + grid[0])
                lines += [" " * 8 + g for g in grid[1:]]
            ax = axes[r, j]
            ax.axis("off")
            ax.text(0, 1, "\n".join(lines), family="monospace", fontsize=6.5, va="top")
            if r == 0:
                ax.set_title("with the semantic loss" if name == "spae" else "without the semantic loss", fontsize=9)
    fig.suptitle("SPAE: the frozen LM's words at each pyramid layer (coarse to fine)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def plot_vqa(vqa: dict, path: Path) -> None:
    plt = _plt()
    qs = list(vqa["lens_per_question"])
    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=110)
    x = torch.arange(len(qs)).float()
    ax.bar(x - 0.2, [vqa["lens_per_question"][q] for q in qs], 0.4, label="LENS (LM never saw an image)")
    ax.bar(x + 0.2, [vqa["baseline_per_question"][q] for q in qs], 0.4, label="image-trained baseline")
    ax.set_xticks(x.tolist())
    ax.set_xticklabels([q.replace("?", "").replace("the number ", "").replace("the digit ", "") for q in qs],
                       rotation=25, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (held-out images)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


def report(r: dict, targets: dict) -> str:
    v, s, icl, g = r["vqa"], r["spae"], r["in_context_classification"], r["generation"]
    p = r["parameters"]
    lines = [
        "# LENS and SPAE: vision through language with frozen language models (digits)",
        "",
        f"{r['held_out_images']} held-out images of scikit-learn's digits. The LM ({p['lm']:,} parameters) was "
        "trained on text only: digit questions in LENS's prompt layout, written with words, and in-context episodes "
        "over random words. It never saw an image or an image token.",
        "",
        "## Targets",
        "",
        targets_markdown(targets),
        "",
        "## LENS zero-shot VQA (arXiv 2306.16410)",
        "",
        f"LENS: {100 * v['lens_accuracy']:.1f}% vs the image-trained baseline of the LM's size ({p['baseline']:,} "
        f"parameters, trained on images with these questions): {100 * v['baseline_accuracy']:.1f}%. The first tag "
        f"names the right digit for {100 * v['tag_top1_names_digit']:.1f}% of the images, the beam caption for "
        f"{100 * v['beam_caption_names_digit']:.1f}%.",
        "",
        "| question | LENS | baseline |",
        "|---|---|---|",
        *[f"| {q} | {100 * a:.1f}% | {100 * v['baseline_per_question'][q]:.1f}% |"
          for q, a in v["lens_per_question"].items()],
        "",
        "![VQA per question](vqa.png)",
        "",
        "A prompt the LM read (held-out image of digit {}):".format(v["prompt_examples"][0]["label"])
        if v["prompt_examples"] else "",
        "",
        f"    {v['prompt_examples'][0]['prompt']} {v['prompt_examples'][0]['answer']}" if v["prompt_examples"] else "",
        "",
        "## SPAE (arXiv 2306.17842)",
        "",
        "| | PSNR 1 token | PSNR 5 tokens | PSNR 21 tokens | coarse-token precision | codebook rows used |",
        "|---|---|---|---|---|---|",
        *[f"| {'with' if n == 'spae' else 'without'} semantic loss | "
          + " | ".join(f"{d:.1f} dB" for d in x["psnr_per_depth"])
          + f" | {100 * x['semantic_precision']:.1f}% | {x['codebook_used']} of {x['codebook_allowed']} |"
          for n, x in s.items()],
        "",
        "The semantic loss pulls the coarse token toward K_I, the 2 words the frozen CLIP finds most relevant to the "
        "image, ranked among the words CLIP has read (its training captions' content words, `vl.semantic_words`).",
        "",
        f"Coarse words chosen (with the loss): {', '.join(s['spae']['coarse_words'])}.",
        f"Coarse words chosen (without): {', '.join(s['spae-nosem']['coarse_words'])}.",
        "",
        "![reconstructions](reconstructions.png)",
        "",
        "![words per layer](words.png)",
        "",
        "## In-context use by the frozen LM",
        "",
        f"5-way classification of SPAE tokens (the first 5: layers 1 and 2), made-up label words, in the "
        f"{r.get('in_context_layout', 'label-first')} layout of the LM's text episodes. Closed set: the "
        f"LM's likeliest of the prompt's 5 label words (chance {100 * CHANCE:.0f}%, the target's); open-ended: its "
        "greedy next token over the whole vocabulary must be the label.",
        "",
        "| SPAE | 1-shot | 5-shot | 1-shot open-ended | 5-shot open-ended |",
        "|---|---|---|---|---|",
        *[f"| {'with' if n == 'spae' else 'without'} semantic loss | {100 * a[1]:.1f}% | {100 * a[5]:.1f}% | "
          f"{100 * a['1_open']:.1f}% | {100 * a['5_open']:.1f}% |" for n, a in icl.items()],
        "",
        f"Class-conditional generation: the LM writes 21 SPAE tokens after two examples of each of three classes; "
        f"the frozen digit classifier reads the requested digit in {100 * g['accuracy']:.1f}% of the decoded images "
        f"({100 * g['judge_on_reconstructions']:.1f}% on SPAE's reconstructions of real held-out images). "
        f"{100 * g['copy_rate']:.1f}% of the generated sequences are exact copies of an example in the prompt.",
        "",
        "![generated](generated.png)",
        "",
        "## Frozen parts",
        "",
        "LENS's CLIP, captioner and LM are frozen (eval mode, no gradients); their tensors hash the same before and "
        f"after the evaluation: {r['frozen_unchanged']}. SPAE's codebook equals the LM's embedding table. The LM, "
        "CLIP and captioner weight files are bitwise the same after the SPAE runs that read them: "
        + {True: "yes", False: "**no**", None: "not observed (no SPAE run trained in this call)"}[
            r.get("frozen_files_unchanged_by_spae_training")] + ".",
        "",
        f"Training {r['train_seconds']:.0f} s (seconds per part trained in this call: "
        f"{r.get('train_seconds_per_part', {})}).",
        "",
        machine_line(r),
        "",
    ]
    return "\n".join(lines)


def write_outputs(out: Path, results: dict, spaes: dict, tok, images, labels, gen: dict, seconds: float) -> dict:
    plot_reconstructions(spaes, images, labels, out / "reconstructions.png")
    plot_words(spaes, tok, images, labels, out / "words.png")
    order = torch.argsort(gen["wanted"], stable=True)
    per = max(1, len(order) // 10)
    image_grid(gen["images"][order], out / "generated.png", ncol=per, title="decoded SPAE tokens the frozen LM wrote "
               "for each requested digit", row_labels=[str(c) for c in range(10)])
    plot_vqa(results["vqa"], out / "vqa.png")
    targets = make_targets(results)
    data = write_results(out, results, targets, seconds)  # + the machine and the seconds the report names
    text = report(data, targets)
    (out / "report.md").write_text(text)
    print(text)
    return data
