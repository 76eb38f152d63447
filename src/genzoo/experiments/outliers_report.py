"""Figures and report.md of `genzoo experiment outliers` (see `outliers.py`)."""

from __future__ import annotations

from pathlib import Path

from ..figures import save_figure
from .results import machine_line

COLORS = {"vanilla": "tab:red", "softmax1": "tab:blue", "clipped": "tab:green", "gated": "tab:purple"}
TITLES = {"decoder": "OPT-style decoder", "encoder": "BERT-style masked LM"}


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    genres = results["genres"]
    fig, axes = plt.subplots(2, len(genres), figsize=(5.5 * len(genres), 7), dpi=110, squeeze=False)
    for j, (genre, arms) in enumerate(genres.items()):
        for arm, r in arms.items():
            x = range(len(r["layers"]))
            axes[0][j].plot(x, [layer["kurtosis"] for layer in r["layers"]], "o-", color=COLORS[arm], label=arm)
            axes[1][j].plot(x, [layer["inf_norm"] for layer in r["layers"]], "o-", color=COLORS[arm], label=arm)
        axes[0][j].set_title(f"{TITLES[genre]}: kurtosis of the hidden states")
        axes[1][j].set_title(f"{TITLES[genre]}: max |x| (inf-norm)")
        for ax in (axes[0][j], axes[1][j]):
            ax.set_xlabel("layer (block output)")
            ax.set_xticks(range(len(next(iter(arms.values()))["layers"])))
            low, high = ax.get_ylim()
            if low > 0 and high / low > 10:  # log scale only where outliers spread the values
                ax.set_yscale("log")
            ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "layers.png")

    fig, axes = plt.subplots(1, len(genres), figsize=(5.5 * len(genres), 3.8), dpi=110, squeeze=False)
    for j, (genre, arms) in enumerate(genres.items()):
        ax, names = axes[0][j], list(arms)
        for i, arm in enumerate(names):
            r = arms[arm]
            ax.bar(i - 0.27, r["fp32_ppl"], 0.27, color=COLORS[arm], alpha=0.45, label="fp32" if i == 0 else None)
            ax.bar(i, r["bf16_ppl"], 0.27, color=COLORS[arm], alpha=0.7, label="bf16" if i == 0 else None)
            ax.bar(i + 0.27, r["w8a8_ppl"], 0.27, color=COLORS[arm], hatch="//", label="W8A8" if i == 0 else None)
        ax.set_xticks(range(len(names)), names)
        ax.set_ylabel("validation perplexity")
        ax.set_title(f"{TITLES[genre]}: fp32 / bf16 / W8A8 (hatched)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "perplexity.png")

    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    for genre, rows in results["growth"].items():
        if rows:
            ax.plot([r[0] for r in rows], [r[1] for r in rows], "o-", label=TITLES[genre])
    ax.axhline(10, color="k", ls="--", lw=1, label="validity threshold (10)")
    ax.set_xlabel("training step")
    ax.set_ylabel("vanilla average kurtosis")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "growth.png")


def _f(v, digits=3) -> str:
    if v is None:
        return "n/a"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def report(r: dict, targets_table: str) -> str:
    lines = [
        "# Activation outliers: softmax off by one, clipped softmax and gated attention",
        "",
        "Seed: \"97%+ of outlier activations in LLMs occur in whitespace and punctuation positions\"; adding 1 to the "
        "softmax denominator lets a head attend to nothing; \"it is likely more important for highly quantized "
        "weights, but 32 and 16 bit dtypes are probably unaffected\" (E. Miller, 2023). Methods: Bondarenko et al., "
        "arXiv 2306.12929 (clipped softmax with gamma = -0.03, zeta = 1; gated attention, gate init 0.25).",
        "",
        f"Each arm trained {r['steps']} steps with the same data, seed and hyper-parameters; evaluated on held-out "
        "standard-library files. W8A8: simulated per-tensor int8 weights (symmetric) and activations (asymmetric, "
        "min-max calibrated on training batches) at every Linear input and block output. Kurtosis: of each "
        "sequence's hidden states (block outputs), averaged over sequences and layers. Outlier positions: the top "
        "0.1% of |x| per layer and batch, by the kind of token at that position.",
        "",
        f"{machine_line(r)} Training: " + ", ".join(f"{g} {s:.0f} s" for g, s in r["train_seconds"].items())
        + " (the load average is the one at the end).",
        "",
    ]
    for genre, arms in r["genres"].items():
        lines += [f"## {genre}: " + str(r["recipes"][genre]["model"]), "",
                  "| arm | fp32 ppl | bf16 ppl | W8A8 ppl | W8A8 increase | max inf-norm | avg kurtosis | "
                  "outliers at whitespace/newline/punct. | + first/special | attn on first | attn on delimiters | "
                  "attn weight sum |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for arm, a in arms.items():
            lines.append(
                f"| {arm} | {a['fp32_ppl']:.2f} | {a['bf16_ppl']:.2f} | {a['w8a8_ppl']:.2f} | "
                f"{100 * a['w8a8_increase']:.1f}% | {a['max_inf_norm']:.1f} | {a['avg_kurtosis']:.2f} | "
                f"{100 * a['outliers_at_delimiters']:.1f}% | {100 * a['outliers_at_delimiters_or_first']:.1f}% | "
                f"{_f(a['attn_first'])} | {_f(a['attn_delimiters'])} | {_f(a['attn_total'])} |")
        van = arms["vanilla"]
        kinds = van.get("outlier_kinds", {})
        lines += ["", "Where vanilla's top-0.1% activations sit: "
                  + ", ".join(f"{k} {100 * v:.1f}%" for k, v in kinds.items()) + " (seed: 97% at whitespace and "
                  "punctuation).", ""]
        if genre == "decoder":
            lines += ["Real low-bit inference of each arm (torchao), greedy next token equal to fp32's on held-out "
                      "positions: " + "; ".join(
                          f"{arm} int8 {100 * a['int8_agreement']:.1f}%, int4 {100 * a['int4-weight_agreement']:.1f}%"
                          for arm, a in arms.items())
                      + f". Model bytes: fp32 {van['fp32_bytes'] / 1e6:.2f} MB, int8 {van['int8_bytes'] / 1e6:.2f} "
                      f"MB, int4 {van['int4-weight_bytes'] / 1e6:.2f} MB.", ""]
    lines += ["## Growth of the vanilla outliers with training", "",
              "| genre | step: kurtosis (max inf-norm) |", "|---|---|"]
    for genre, rows in r["growth"].items():
        lines.append(f"| {genre} | " + ", ".join(f"{s}: {k:.2f} ({n:.0f})" for s, k, n in rows) + " |")
    lines += ["", "## Targets", "", targets_table, "",
              "![kurtosis and inf-norm per layer](layers.png)", "", "![perplexity](perplexity.png)", "",
              "![growth](growth.png)", ""]
    return "\n".join(lines)
