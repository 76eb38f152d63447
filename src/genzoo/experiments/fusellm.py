"""`genzoo experiment fusellm`: does a target LM trained on the fused distributions of source LMs with other
architectures and tokenizers (FuseLLM, Wan et al. 2024, arXiv 2401.10491) predict held-out text better than
the same target trained with the language-modelling loss alone, and how many target tokens does MinED align
that exact matching leaves to the fallback?

1. Three sources, each trained (shared loop, task "lm") only on the training files (`source+fuse` shares) of its
   own standard-library domain, so each is a specialist: a GPT-2-style model with a byte-level BPE of 2048 (text
   processing), a Llama-style model with a SentencePiece-style BPE of 2048 pieces (networking), a Mistral-style
   model with a byte-level BPE of 4096 (numerics).
2. The target's tokenizer (byte-level BPE of 1024) is trained on the union of the domains' `fuse` shares (each
   known to its own domain's source, none to the others); that text is cut into sequences and the sources'
   top-10 distributions are aligned onto the target tokens (MinED) and stored once (safetensors shards).
3. Three targets, the same recipe, data, order and steps: CLM only, MinCE, AvgCE (lambda = 0.7, the recipe's:
   it passed on more of the sources than the paper's 0.9 here).
4. Bits per character of every target and every source on each domain's held-out (`val`) files, which no
   model has seen (the sources' per-domain figures show them as specialists); alignment rate per source (share
   of target positions with a non-fallback mapping) under exact matching and MinED; the gold mass: the
   probability the fused distribution (and each source's aligned one) puts on the gold next token.

Writes report.md, bits_per_char.png, alignment.png, curves.png and results.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..figures import save_figure
from . import EXPERIMENTS
from .results import machine_line

SOURCES = {  # name -> (recipe, domain of its training text, title)
    "gpt2-bpe2048": ("fusellm-gpt2-bpe2048", "text", "GPT-2-style, byte-level BPE 2048"),
    "llama-sp2048": ("fusellm-llama-sp2048", "net", "Llama-style, SentencePiece BPE 2048"),
    "mistral-bpe4096": ("fusellm-mistral-bpe4096", "num", "Mistral-style, byte-level BPE 4096"),
}
ARMS = {"clm": ("none", "CLM only"), "min-ce": ("min-ce", "FuseLLM MinCE"), "avg-ce": ("avg-ce", "FuseLLM AvgCE")}
DOMAINS = ("text", "net", "num")
SMALL = {  # the shrunken version for the test suite: tiny models, little text, a few steps
    "source": ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.d_ff=64", "steps=3",
               "batch_size=2", "warmup_steps=1", "eval_every=3", "save_every=3", "eval_batches=1",
               "data.max_bytes=15000", "data.vocab_size=400", "data.block_size=64", "progress=false"],
    "target": ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.d_ff=64", "steps=3",
               "batch_size=4", "warmup_steps=1", "eval_every=3", "save_every=3", "eval_batches=1",
               "data.max_bytes=6000", "data.vocab_size=300", "data.block_size=32", "progress=false",
               "fuse.shard_size=16"],
}


@EXPERIMENTS.register("fusellm")
def run(out: str, small: bool = False, sets: tuple[str, ...] = (), eval_chunks: int = 160) -> dict:
    from ..data.domains import domain_corpus
    from ..fuse import FusionShards, prepare
    from ..fuse.chunks import make_chunks
    from ..fuse.config import FuseConfig
    from ..train import load_recipe, train
    from ..train.fuse_task import max_chars

    t0, cpu0 = time.perf_counter(), time.process_time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    src_sets = SMALL["source"] if small else ["progress=false"]
    tgt_sets = (SMALL["target"] if small else ["progress=false"]) + list(sets)
    eval_chunks = 8 if small else eval_chunks
    timing = {}

    # 1. the sources, each an expert of one domain
    t = time.perf_counter()
    source_dirs = {}
    for name, (recipe_name, _, _) in SOURCES.items():
        recipe = load_recipe(recipe_name, src_sets)
        run_dir = out / "sources" / name
        if not (run_dir / "model.safetensors").exists():
            train(recipe, run_dir)
        source_dirs[name] = run_dir
    timing["sources_s"] = time.perf_counter() - t

    # 2. the target's text, tokenizer and sequences; the sources' distributions precomputed once
    t = time.perf_counter()
    base = load_recipe("fusellm-target", tgt_sets)
    from ..fuse.pipeline import target_text

    shared = out / "shared"
    tokenizer, chunks = target_text(base, shared)
    cfg = FuseConfig.from_dict(base.fuse)
    limit, chars = base.data.block_size + 1, max_chars(base, cfg)
    domain_of, seen = [], 0  # the union's documents are the domains' documents in order: label each sequence
    for d in DOMAINS:
        n = len(make_chunks(domain_corpus(f"stdlib/{d}/fuse", base.data.max_bytes).read("train"), tokenizer, limit,
                            chars))
        domain_of += [d] * n
        seen += n
    assert seen == len(chunks), "the union's sequences are the domains' sequences in order"
    topk = prepare([source_dirs[n] for n in SOURCES], base, shared, chunks=chunks, tokenizer=tokenizer)
    timing["precompute_s"] = time.perf_counter() - t
    shards = FusionShards(topk)

    # 3. the three targets: the same recipe, data, order and steps
    t = time.perf_counter()
    arm_dirs = {}
    for arm, (method, _) in ARMS.items():
        recipe = load_recipe("fusellm-target", tgt_sets + [f"fuse.method={method}", f"fuse.shards={topk}"])
        run_dir = out / "targets" / arm
        if not (run_dir / "model.safetensors").exists():
            train(recipe, run_dir)
        arm_dirs[arm] = run_dir
    timing["targets_s"] = time.perf_counter() - t

    # 4. bits per character on each domain's held-out text; alignment rates; MinCE's choices
    t = time.perf_counter()
    results = evaluate(arm_dirs, source_dirs, tokenizer, base, limit, chars, eval_chunks)
    timing["evaluate_s"] = time.perf_counter() - t
    rates = shards.alignment_rates()
    results["alignment"] = {n: r for n, r in zip(SOURCES, rates)}
    mean = {m: sum(r[m] for r in rates) / len(rates) for m in ("exact", "mined")}
    results["alignment"]["mean"] = mean
    results["min_ce_choice"] = min_ce_choices(shards, domain_of)
    results["gold_mass"] = gold_mass(shards)
    results["specialists"] = specialists(results["bits_per_char"])
    results["curves"] = {arm: _curve(d / "metrics.jsonl") for arm, d in arm_dirs.items()}
    results["setup"] = {"sequences": len(chunks), "sequence_tokens": limit, "sequence_chars": chars,
                        "target_steps": base.steps, "target_vocab": base.data.vocab_size,
                        "batch_size": base.batch_size, "lambda": cfg.lam,
                        "top_k": cfg.top_k, "small": small,
                        "source_steps": {n: load_recipe(r, src_sets).steps for n, (r, _, _) in SOURCES.items()},
                        "timing_s": {k: round(v, 1) for k, v in timing.items()},
                        "cpu_s": round(time.process_time() - cpu0, 1)}

    from .results import target, targets_markdown, write_report, write_results

    union = results["bits_per_char"]["union"]
    reduction = (union["clm"] - union["min-ce"]) / union["clm"]
    results["min_ce_beats_avg_ce"] = union["min-ce"] < union["avg-ce"]
    targets = {
        "MinCE bits/char reduction vs CLM (union of domains)": target(reduction, ">= 0.03"),
        "MinED - exact alignment rate (points, mean over sources)": target(100 * (mean["mined"] - mean["exact"]),
                                                                           ">= 5"),
    }
    plot_bits(results, out / "bits_per_char.png")
    plot_alignment(results, out / "alignment.png")
    plot_curves(results, out / "curves.png")
    data = write_results(out, results, targets, time.perf_counter() - t0)
    write_report(out, report(data, targets_markdown(targets)))
    print(f"wrote {out / 'report.md'}, {out / 'bits_per_char.png'}, {out / 'alignment.png'}, "
          f"{out / 'curves.png'}, {out / 'results.json'}")
    return data


def evaluate(arm_dirs: dict, source_dirs: dict, tokenizer, base, limit: int, chars: int, n_chunks: int) -> dict:
    """Bits per character of every target and source on n_chunks held-out sequences of each domain, spread
    evenly over its held-out files."""
    import genzoo
    from ..data.domains import domain_corpus
    from ..fuse.chunks import make_chunks
    from ..fuse.evaluate import bits_per_char, merge, nll_sums
    from ..fuse.sources import load_source, score
    from ..fuse.surface import surfaces

    target_surfaces = surfaces(tokenizer)
    held = {d: spread(make_chunks(domain_corpus(f"stdlib/{d}/fuse", base.data.max_bytes).read("val"), tokenizer,
                                  limit, chars), n_chunks) for d in DOMAINS}
    sums: dict[str, dict[str, dict]] = {}
    for arm, run_dir in arm_dirs.items():
        model = genzoo.load(run_dir)
        sums[arm] = {d: nll_sums(model, [c.ids for c in held[d]], target_surfaces, base.batch_size) for d in DOMAINS}
    for name, run_dir in source_dirs.items():
        src = load_source(run_dir)
        sums[name] = {}
        for d in DOMAINS:
            scored = score(src, [c.text for c in held[d]], top_k=1)
            sums[name][d] = {"nll": sum(s.nll for s in scored), "tokens": sum(len(s.ids) - 1 for s in scored),
                             "chars": sum(s.chars for s in scored)}
    bpc = {d: {m: bits_per_char(sums[m][d]) for m in sums} for d in DOMAINS}
    bpc["union"] = {m: bits_per_char(merge(*sums[m].values())) for m in sums}
    return {"bits_per_char": bpc, "held_out_sequences": {d: len(held[d]) for d in DOMAINS},
            "held_out_chars": {d: sums["clm"][d]["chars"] for d in DOMAINS}}


def spread(items: list, n: int) -> list:
    """n items evenly spaced through the list (all of them when it is no longer)."""
    if len(items) <= n:
        return items
    return [items[i * len(items) // n] for i in range(n)]


def min_ce_choices(shards, domain_of: list[str]) -> dict:
    """Per domain of the training sequences: the share of sequences MinCE takes from each source."""
    counts = {d: [0] * shards.n_sources for d in DOMAINS}
    for start in range(0, shards.n, 256):
        rows = list(range(start, min(shards.n, start + 256)))
        ce = torch.stack([shards.get(f"src-{q}", "ce", rows) for q in range(shards.n_sources)], 1)  # (n, S)
        for i, q in zip(rows, ce.argmin(1).tolist()):
            counts[domain_of[i]][q] += 1
    return {d: {n: c / max(1, sum(counts[d])) for n, c in zip(SOURCES, counts[d])} for d in DOMAINS}


def gold_mass(shards) -> dict:
    """The probability the fused distribution puts on the gold next token, mean over the real positions of the
    training sequences, for each fusion (MinCE, AvgCE: what the fusion term pulls the target towards); and per
    source the mass its own distribution puts there over all positions (fallbacks count 1) and over its
    aligned ones (where the source's distribution is used)."""
    from ..fuse.fusion import FUSIONS

    align = shards.manifest["align"]
    fused = {m: 0.0 for m in ("min-ce", "avg-ce")}
    src_all = [0.0] * shards.n_sources
    src_aligned, n_aligned = [0.0] * shards.n_sources, [0] * shards.n_sources
    n_real = 0
    for start in range(0, shards.n, 256):
        rows = list(range(start, min(shards.n, start + 256)))
        b = shards.rows(rows)
        t = b["ids"].shape[2]
        gold = b["input_ids"][:, 1: t + 1]  # (B, T): the token each position predicts
        real = torch.arange(t)[None, :] < (b["length"] - 1)[:, None]  # (B, T)
        mass = (b["probs"] * (b["ids"] == gold[:, None, :, None])).sum(-1)  # (B, S, T)
        n_real += int(real.sum())
        for m in fused:
            w = FUSIONS.get(m)(b["ce"])  # (B, S)
            fused[m] += float(((w[:, :, None] * mass).sum(1) * real).sum())
        for q in range(shards.n_sources):
            ok = shards.get(f"src-{q}", f"aligned_{align}", rows).bool() & real  # (B, T)
            src_all[q] += float((mass[:, q] * real).sum())
            src_aligned[q] += float((mass[:, q] * ok).sum())
            n_aligned[q] += int(ok.sum())
    out = {m: v / max(n_real, 1) for m, v in fused.items()}
    for q, name in enumerate(SOURCES):
        out[name] = {"all": src_all[q] / max(n_real, 1), "aligned": src_aligned[q] / max(n_aligned[q], 1),
                     "aligned_share": n_aligned[q] / max(n_real, 1)}
    return out


def specialists(bpc: dict) -> dict:
    """Per source: its bits per character on each domain, whether it is the best source on its own domain and
    how much worse (bits/char) it is on the other domains than on its own."""
    out = {}
    for name, (_, own, _) in SOURCES.items():
        per = {d: bpc[d][name] for d in DOMAINS}
        best = min(SOURCES, key=lambda n: bpc[own][n])
        others = [per[d] for d in DOMAINS if d != own]
        out[name] = {"domain": own, "bits_per_char": per, "best_source_on_own_domain": best == name,
                     "other_domains_minus_own": sum(others) / len(others) - per[own]}
    return out


def _curve(path: Path) -> list[dict]:
    if not path.exists():
        return []
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{"step": r["step"], "val_bpc": r["val_bpc"]} for r in recs if "val_bpc" in r]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_bits(r: dict, path: Path) -> None:
    plt = _plt()
    groups = list(DOMAINS) + ["union"]
    models = list(ARMS) + list(SOURCES)
    fig, ax = plt.subplots(figsize=(9, 4), dpi=110)
    width = 0.8 / len(models)
    for k, m in enumerate(models):
        vals = [r["bits_per_char"][g][m] for g in groups]
        title = ARMS[m][1] if m in ARMS else f"source: {SOURCES[m][2]}"
        ax.bar([i + k * width for i in range(len(groups))], vals, width, label=title,
               hatch="" if m in ARMS else "//", alpha=1.0 if m in ARMS else 0.6)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))], [f"{g} (held out)" for g in groups])
    ax.set_ylabel("bits per character (lower is better)")
    ax.set_title("FuseLLM: targets and sources on each domain's held-out text", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def plot_alignment(r: dict, path: Path) -> None:
    plt = _plt()
    names = list(SOURCES) + ["mean"]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    for k, (m, label) in enumerate((("exact", "exact match"), ("mined", "MinED"))):
        ax.bar([i + 0.38 * k for i in range(len(names))], [100 * r["alignment"][n][m] for n in names], 0.38,
               label=label)
    ax.set_xticks([i + 0.19 for i in range(len(names))], names)
    ax.set_ylabel("target positions aligned (%)")
    ax.set_title("Alignment rate: share of target tokens with a non-fallback mapping", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def plot_curves(r: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    for arm, curve in r["curves"].items():
        ax.plot([p["step"] for p in curve], [p["val_bpc"] for p in curve], "o-", label=ARMS[arm][1])
    ax.set_xlabel("training step")
    ax.set_ylabel("held-out bits per character")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def report(r: dict, targets_md: str) -> str:
    bpc, s = r["bits_per_char"], r["setup"]
    rows = ["| model | " + " | ".join(DOMAINS) + " | union |", "|---" * (len(DOMAINS) + 2) + "|"]
    for m in list(ARMS) + list(SOURCES):
        title = ARMS[m][1] if m in ARMS else f"source {m} ({SOURCES[m][2]}, trained on {SOURCES[m][1]})"
        rows.append(f"| {title} | " + " | ".join(f"{bpc[g][m]:.3f}" for g in (*DOMAINS, "union")) + " |")
    al = r["alignment"]
    arows = ["| source | exact match | MinED | difference (points) |", "|---|---|---|---|"]
    for n in list(SOURCES) + ["mean"]:
        arows.append(f"| {n} | {100 * al[n]['exact']:.1f}% | {100 * al[n]['mined']:.1f}% | "
                     f"{100 * (al[n]['mined'] - al[n]['exact']):+.1f} |")
    crows = ["| sequences of | " + " | ".join(SOURCES) + " |", "|---" * (len(SOURCES) + 1) + "|"]
    for d, shares in r["min_ce_choice"].items():
        crows.append(f"| {d} | " + " | ".join(f"{100 * shares[n]:.0f}%" for n in SOURCES) + " |")
    srows = ["| source (trained on) | " + " | ".join(DOMAINS) + " | best source on its own domain | others - own |",
             "|---" * (len(DOMAINS) + 3) + "|"]
    for n, sp in r["specialists"].items():
        srows.append(f"| {n} ({sp['domain']}) | " + " | ".join(f"{sp['bits_per_char'][d]:.3f}" for d in DOMAINS)
                     + f" | {'yes' if sp['best_source_on_own_domain'] else 'no'} | "
                       f"{sp['other_domains_minus_own']:+.3f} |")
    g = r["gold_mass"]
    grows = ["| source | all positions | aligned positions | aligned share |", "|---|---|---|---|"]
    for n in SOURCES:
        grows.append(f"| {n} | {g[n]['all']:.3f} | {g[n]['aligned']:.3f} | {100 * g[n]['aligned_share']:.1f}% |")
    u = bpc["union"]
    verdict = "beats" if r["min_ce_beats_avg_ce"] else "does not beat"
    lines = [
        "# FuseLLM: knowledge fusion of language models with different tokenizers and architectures", "",
        f"Three sources, each trained only on the training files of its own standard-library domain (specialists); "
        f"a Llama-style target with a byte-level BPE of {s['target_vocab']} "
        f"trained for {s['target_steps']} steps (batch {s['batch_size']}) on {s['sequences']} sequences (at most "
        f"{s['sequence_tokens']} target tokens, {s['sequence_chars']} characters) of the three domains' fuse "
        f"files (each seen by its own domain's source, as the paper's sources know the kind of text they are fused "
        f"on), with lambda = {s['lambda']} and the sources' top-{s['top_k']} distributions aligned by MinED. "
        "Bits per character on each domain's held-out files, which no model has seen (sources on their own "
        "tokenization):", "",
        *rows, "",
        f"MinCE {verdict} AvgCE on the union of domains ({u['min-ce']:.4f} vs {u['avg-ce']:.4f} bits/char; the paper "
        f"finds MinCE better). MinCE vs CLM: {100 * (u['clm'] - u['min-ce']) / u['clm']:+.2f}% "
        f"({u['clm']:.4f} -> {u['min-ce']:.4f}); AvgCE vs CLM: {100 * (u['clm'] - u['avg-ce']) / u['clm']:+.2f}%.", "",
        "## The sources are specialists", "",
        "Each source's bits per character on every domain's held-out files (it was trained on its own domain "
        "only):", "", *srows, "",
        "## Gold mass", "",
        f"Probability the fused distribution puts on the gold next target token, mean over the training positions "
        f"(fallback positions put 1 there): MinCE {g['min-ce']:.3f}, AvgCE {g['avg-ce']:.3f}. Each source's own "
        "aligned distribution:", "", *grows, "",
        "## Alignment", "",
        "Share of target positions (those that predict a token) whose distribution comes from the source rather "
        "than the one-hot fallback:", "", *arows, "",
        "Which source MinCE takes (lowest cross-entropy per character on the sequence), by the domain of the "
        "training sequence:", "", *crows, "",
        "## Targets", "", targets_md, "",
        f"{machine_line(r)} Stages: {', '.join(f'{k} {v}' for k, v in s['timing_s'].items())}; "
        f"{s['cpu_s']:.0f} s of CPU time in this process.", "",
        "![bits per character](bits_per_char.png)", "", "![alignment](alignment.png)", "", "![curves](curves.png)", "",
    ]
    return "\n".join(lines)
