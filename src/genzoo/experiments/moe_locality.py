"""`genzoo experiment moe-locality`: train the mixtral-nano recipe with and without the load-balancing
loss, then measure, per layer, how often consecutive tokens of held-out standard-library files go to the
same expert (by kind of text), against the random baselines, and the expert load per layer.
Writes report.md, locality.png, load.png and results.json."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..figures import save_figure
from . import EXPERIMENTS
from .locality import KINDS, char_kinds, locality, random_baselines
from .results import machine_line, target, targets_markdown, write_report, write_results


def route(model, tokenizer, texts: list[str], block: int, max_tokens: int):
    """Per layer, the experts chosen for every token (L x (N, k)), and each token's kind (N,)."""
    chosen, kinds, seen = [[] for _ in model.blocks], [], 0
    model.eval()
    for text in texts:
        enc = tokenizer.tok.encode(text)
        ck = char_kinds(text)
        ids = torch.tensor(enc.ids)
        kind = torch.tensor([ck[max(s, e - 1)] if e > s and max(s, e - 1) < len(ck) else 0 for s, e in enc.offsets])
        for i in range(0, len(ids), block):  # each block routed on its own, like training
            part = ids[i:i + block]
            if len(part) < 2:
                continue
            with torch.no_grad():
                model(part[None])
            for layer, b in enumerate(model.blocks):
                chosen[layer].append(b.ffn.chosen)
            k = kind[i:i + block].clone()
            k[-1] = -1  # no pair crosses a block (or file) boundary: its last token pairs with nothing
            kinds.append(k)
            seen += len(part)
        if seen >= max_tokens:
            break
    return [torch.cat(c) for c in chosen], torch.cat(kinds)


def measure(model, tokenizer, texts, block, max_tokens) -> dict:
    cfg = model.config
    chosen, kinds = route(model, tokenizer, texts, block, max_tokens)
    pair_kind_ok = (kinds[:-1] >= 0)
    layers = []
    for c in chosen:
        row = {"all": locality(c, pair_kind_ok)}
        for j, name in enumerate(KINDS):
            row[name] = locality(c, pair_kind_ok & (kinds[:-1] == j) & (kinds[1:] == j))
        share = torch.bincount(c.reshape(-1), minlength=cfg.n_experts).float()
        row["expert_share"] = (share / share.sum()).tolist()
        row["max_min_ratio"] = (share.max() / share.min().clamp(min=1)).item()
        layers.append(row)
    counts = {name: int(((kinds[:-1] == j) & (kinds[1:] == j)).sum()) for j, name in enumerate(KINDS)}
    return {"layers": layers, "tokens": int(len(kinds)), "pairs_by_kind": counts}


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base1, base2 = results["random_baseline"]
    layers = results["with_balance"]["layers"]
    x = range(len(layers))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=120)
    for ax, idx, base, title in ((axes[0], 0, base1, "same first-choice expert"),
                                 (axes[1], 1, base2, "shared expert among first or second choice")):
        width = 0.8 / (len(KINDS) + 1)
        for j, kind in enumerate(("all",) + KINDS):
            ax.bar([i + j * width for i in x], [100 * l[kind][idx] for l in layers], width, label=kind)
        ax.axhline(100 * base, color="k", ls="--", lw=1, label=f"random ({100 * base:.1f}%)")
        ax.set_xticks([i + 0.4 - width / 2 for i in x], [f"layer {i}" for i in x])
        ax.set_ylabel("% of consecutive token pairs")
        ax.set_title(title)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "locality.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), dpi=120, sharey=True)
    for ax, key, title in ((axes[0], "with_balance", "with load-balancing loss"),
                           (axes[1], "no_balance", "without load-balancing loss")):
        share = 100 * torch.tensor([l["expert_share"] for l in results[key]["layers"]]).numpy()
        im = ax.imshow(share, vmin=0, vmax=max(40.0, float(share.max())), cmap="viridis", aspect="auto")
        ax.set_xlabel("expert")
        ax.set_title(title)
    axes[0].set_ylabel("layer")
    fig.colorbar(im, ax=axes, label="% of assignments")
    save_figure(fig, out / "load.png")


def report(results: dict) -> str:
    base1, base2 = results["random_baseline"]
    lines = [
        "# Routing locality of a mixture of experts (Mixtral, sec. 5 / Table 5)",
        "",
        f"Model: `mixtral-nano` (8 experts, top-2), trained {results['steps']} steps on the standard-library corpus, "
        f"with (coefficient {results['aux_coef']}) and without the load-balancing loss. Routing measured on "
        f"{results['with_balance']['tokens']} held-out tokens (validation files). Random baselines: "
        f"{100 * base1:.1f}% (same first choice), {100 * base2:.1f}% (shared among top-2).",
        "",
        "## Consecutive tokens routed to the same expert (with load balancing)",
        "",
        "| layer | first choice: all | code | comment/docstring | string | first-or-second: all | code | comment/docstring | string |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, l in enumerate(results["with_balance"]["layers"]):
        f = [f"{100 * l[k][0]:.1f}%" for k in ("all",) + KINDS]
        s = [f"{100 * l[k][1]:.1f}%" for k in ("all",) + KINDS]
        lines.append(f"| {i} | " + " | ".join(f + s) + " |")
    lines += ["", "## Expert load (largest / smallest share of assignments per layer)", "",
              "| layer | with balancing loss | without |", "|---|---|---|"]
    for i, (a, b) in enumerate(zip(results["with_balance"]["layers"], results["no_balance"]["layers"])):
        lines.append(f"| {i} | {a['max_min_ratio']:.2f} | {b['max_min_ratio']:.2f} |")
    lines += ["", f"Validation loss: with balancing {results['val_loss_with']:.3f}, without "
              f"{results['val_loss_without']:.3f}.", "", "## Targets", "", targets_markdown(results["targets"]), "",
              machine_line(results), "",
              "![locality](locality.png)", "", "![load](load.png)", ""]
    return "\n".join(lines)


@EXPERIMENTS.register("moe-locality")
def run(out: str, steps: int = 400, max_tokens: int = 60000, sets: tuple[str, ...] = ()) -> dict:
    import genzoo
    from ..data import stdlib_corpus
    from ..tokenizers import Tokenizer
    from ..train import load_recipe, train

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"steps": steps}
    models = {}
    for key, coef in (("with_balance", None), ("no_balance", 0.0)):
        extra = list(sets) + ([f"model.router_aux_loss_coef={coef}"] if coef is not None else [])
        recipe = load_recipe("mixtral-nano", extra)
        run_dir = out / key
        done = (run_dir / "model.safetensors").exists()
        res = {"val_loss": json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["val_loss"]} \
            if done else train(recipe, run_dir, steps=steps)
        results["aux_coef" if coef is None else "no_aux_coef"] = recipe.model.get("router_aux_loss_coef", 0.02) \
            if coef is None else 0.0
        results["val_loss_with" if coef is None else "val_loss_without"] = res["val_loss"]
        models[key] = (genzoo.load(run_dir), Tokenizer.from_dir(run_dir), recipe)
    model, tok, recipe = models["with_balance"]
    results["random_baseline"] = random_baselines(model.config.n_experts, model.config.experts_top_k)
    corpus = stdlib_corpus(max_bytes=recipe.data.max_bytes, val_percent=recipe.data.val_percent)
    texts = corpus.read("val")
    for key, (m, t, r) in models.items():
        results[key] = measure(m, t, texts, r.data.block_size, max_tokens)
    with_b, without_b = results["with_balance"]["layers"], results["no_balance"]["layers"]
    base1 = results["random_baseline"][0]
    mean_first = sum(layer["all"][0] for layer in with_b) / len(with_b)
    targets = {  # the claims this experiment tests (Mixtral sec. 5, Table 5; the balancing loss of Switch, eq. 4)
        f"mean first-choice repetition over layers (random {base1:.3f})": target(mean_first, f"> {base1:.4f}"),
        "balancing loss lowers the largest/smallest expert share in every layer": target(
            all(a["max_min_ratio"] < b["max_min_ratio"] for a, b in zip(with_b, without_b)), "== true"),
    }
    results = write_results(out, results, targets, seconds=time.perf_counter() - t0)
    plot(results, out)
    write_report(out, report(results))
    print(f"wrote {out / 'report.md'}, {out / 'locality.png'}, {out / 'load.png'}, {out / 'results.json'}")
    return results
