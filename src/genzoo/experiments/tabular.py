"""`genzoo experiment tabular`: deep models on tables against gradient boosting, and synthetic tables judged by
what a model learns from them.

1. Prediction: on each table (scikit-learn's wine, breast_cancer, diabetes, iris, and the generated `mixed`
   table), `seeds` random splits (80% train, 20% test); the FT-Transformer (`tabular-ft` recipe through the shared
   loop, 20% of the training rows held out to pick the best checkpoint) and scikit-learn's
   `HistGradientBoostingClassifier/Regressor` (the practical anchor: defaults, categorical columns as categories)
   learn the same training rows and are scored on the same test rows: accuracy, or RMSE (and R^2) for a
   regression table. "Within 2 points": accuracy in percentage points; R^2 x 100 for regression.
2. Generation: a TabDDPM (`tabular-ddpm` recipe) per table (split of seed 0) samples as many rows as the training
   split has. Machine-learning efficacy: gradient boosting trained on the synthetic rows and on the real ones,
   both tested on the real test rows (accuracy, R^2): the ratio synthetic / real. Per-column distance to the
   training rows: Wasserstein-1 over the column's standard deviation (numeric), total variation (categorical),
   beside the same distances of the real test rows (what real data scores). Privacy: synthetic rows equal to a
   training row (exact copies), and the distance to the closest training record (DCR, in the model's
   normalised space) against the test rows' DCR. The rows are drawn as `genzoo generate` draws them: rows equal to
   a training row (the run's training-rows.safetensors) are redrawn; the copies of the raw first draw are reported
   beside the copies left (counted independently, rows compared as text), and the target judges the copies left.

Writes report.md, prediction.png, generation.png and results.json.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from . import EXPERIMENTS
from .parallel import train_many
from .results import machine_line, target, targets_markdown, write_results

TARGET_TABLES = ("wine", "breast_cancer", "diabetes", "iris")  # the four of the FT-Transformer target
TABLES_ALL = (*TARGET_TABLES, "mixed")


def splits(df, seed: int, test: float = 0.2):
    order = np.random.default_rng(seed).permutation(len(df))
    n = round(len(df) * test)
    return df.iloc[order[n:]].reset_index(drop=True), df.iloc[order[:n]].reset_index(drop=True)


def boosting(train, test, target: str, task: str, seed: int, max_iter: int = 100) -> dict:
    """Gradient boosting (scikit-learn defaults; max_iter 100 is theirs) on the train rows, scored on the test rows;
    text and boolean columns as categories."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    def features(df):
        x = df.drop(columns=[target]).copy()
        for c in x.columns:
            if not (pd.api.types.is_numeric_dtype(x[c].dtype) and not pd.api.types.is_bool_dtype(x[c].dtype)):
                x[c] = x[c].astype(str).astype("category")
        return x

    both = features(pd.concat([train, test]))  # the same category codes in both
    x_tr, x_te = both.iloc[: len(train)], both.iloc[len(train):]
    if task == "classification":
        m = HistGradientBoostingClassifier(random_state=seed, categorical_features="from_dtype", max_iter=max_iter)
        m.fit(x_tr, train[target].astype(str))
        return score(test[target].astype(str).to_numpy(), m.predict(x_te), task)
    m = HistGradientBoostingRegressor(random_state=seed, categorical_features="from_dtype", max_iter=max_iter)
    m.fit(x_tr, train[target])
    return score(test[target].to_numpy(), m.predict(x_te), task)


def score(y, pred, task: str) -> dict:
    if task == "classification":
        return {"accuracy": float(np.mean(np.asarray(y).astype(str) == np.asarray(pred).astype(str)))}
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    mse = float(np.mean((y - pred) ** 2))
    return {"rmse": mse ** 0.5, "r2": 1 - mse / float(np.var(y))}


def points(s: dict) -> float:
    """The figure compared in points: accuracy or R^2, x 100."""
    return 100 * (s["accuracy"] if "accuracy" in s else s["r2"])


def best_checkpoint_model(run: Path, records: list[dict], task: str):
    """The checkpoint with the best validation figure (early stopping on the held-out training rows)."""
    import genzoo

    key, sign = ("val_accuracy", -1) if task == "classification" else ("val_rmse", 1)
    evals = [r for r in records if key in r and r["step"] > 0]
    best = min(evals, key=lambda r: (sign * r[key], r.get("val_loss", 0.0)))
    ckpt = run / "checkpoints" / f"step-{best['step']:08d}"
    return genzoo.load(ckpt if ckpt.exists() else run), best["step"]


def column_distances(real, other, schema) -> dict:
    """Mean Wasserstein-1 / std over numeric columns and mean total variation over categorical ones."""
    from scipy.stats import wasserstein_distance

    w = [wasserstein_distance(real[c.name], other[c.name]) / (real[c.name].std() or 1.0) for c in schema.numeric]
    tv = []
    for c in schema.categorical + ([schema.target] if schema.task == "classification" else []):
        p = real[c.name].astype(str).value_counts(normalize=True)
        q = other[c.name].astype(str).value_counts(normalize=True)
        tv.append(0.5 * float(p.sub(q, fill_value=0).abs().sum()))
    return {"wasserstein": float(np.mean(w)) if w else float("nan"), "total_variation": float(np.mean(tv)) if tv
            else float("nan")}


def privacy(train, synth, test, schema) -> dict:
    """Exact copies of training rows, and the median distance to the closest training record (normal scores and
    one-hot categories) of the synthetic rows and of the real test rows."""
    def space(df):
        enc = schema.encode(df, with_target=False)
        onehot = [np.eye(len(c.categories))[enc["categorical"][:, j]] for j, c in enumerate(schema.categorical)]
        return torch.from_numpy(np.concatenate([enc["numeric"], *onehot], 1).astype(np.float32))

    tr = space(train)
    dcr = {name: torch.cdist(space(df), tr).min(1).values for name, df in (("synthetic", synth), ("test", test))}
    rows = {tuple(r) for r in train.astype(str).itertuples(index=False)}
    copies = sum(tuple(r) in rows for r in synth.astype(str).itertuples(index=False))
    return {"exact_copies": int(copies), "dcr_synthetic_median": float(dcr["synthetic"].median()),
            "dcr_test_median": float(dcr["test"].median())}


@EXPERIMENTS.register("tabular")
def run(out: str, seeds: int = 5, tables: tuple[str, ...] = TABLES_ALL, ft_steps: int = 400, ft_eval: int = 50,
        ddpm_steps: int = 3000, workers: int = 2, ft_sets: tuple[str, ...] = (), ddpm_sets: tuple[str, ...] = (),
        gb_max_iter: int = 100) -> dict:
    """gb_max_iter: boosting iterations (scikit-learn's default 100; the test suite shrinks it)."""
    import pandas as pd

    import genzoo
    from ..data.tables import TABLES
    from ..models.tabular import TableSchema, TrainingRows
    from ..models.tabular.copies import FILE as COPIES_FILE

    t0 = time.perf_counter()
    out = Path(out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    frames, jobs = {}, {}
    for name in tables:
        df, tgt = TABLES.get(name).load(), TABLES.get(name).target
        for seed in range(seeds):
            train, test = splits(df, seed)
            path = out / "data" / f"{name}-{seed}-train.csv"
            train.to_csv(path, index=False)
            frames[(name, seed)] = (train, test, tgt, path)
            common = [f"data.source={path.resolve()}", f"data.target={tgt}", f"seed={seed}"]
            jobs[("ft", name, seed)] = ("tabular-ft", [*common, f"eval_every={ft_eval}", f"save_every={ft_eval}",
                                                       f"keep_checkpoints={ft_steps // ft_eval + 1}", *ft_sets],
                                        out / "runs" / f"ft-{name}-{seed}", ft_steps)
        # the recipe's batch (256) exceeds wine's and iris's training rows: the largest power of two that fits
        rows = len(frames[(name, 0)][0]) * 95 // 100
        batch = min(256, 2 ** int(math.log2(rows)))
        jobs[("ddpm", name, 0)] = ("tabular-ddpm", [f"data.source={frames[(name, 0)][3].resolve()}",
                                                   f"data.target={tgt}", "data.val_percent=5", f"batch_size={batch}",
                                                   *ddpm_sets],
                                   out / "runs" / f"ddpm-{name}", ddpm_steps)
    jobs = dict(sorted(jobs.items(), key=lambda kv: kv[0][0] != "ddpm"))  # the longest runs first
    records, cpu = train_many(jobs, workers)
    train_seconds = time.perf_counter() - t0

    results = {"seeds": seeds, "prediction": {}, "generation": {}}
    for name in tables:
        per_seed = []
        for seed in range(seeds):
            train, test, tgt, _ = frames[(name, seed)]
            task = TableSchema.fit(train, tgt).task
            model, step = best_checkpoint_model(out / "runs" / f"ft-{name}-{seed}", records[("ft", name, seed)], task)
            per_seed.append({"ft": score(test[tgt].to_numpy(), model.predict(test), task),
                             "gb": boosting(train, test, tgt, task, seed, gb_max_iter), "ft_best_step": step})
        ft = statistics.mean(points(s["ft"]) for s in per_seed)
        gb = statistics.mean(points(s["gb"]) for s in per_seed)
        row = {"task": task, "seeds": per_seed, "ft_points": ft, "gb_points": gb, "gap_points": ft - gb,
               "within_2_points": ft >= gb - 2}
        if task == "regression":
            row["ft_rmse"] = statistics.mean(s["ft"]["rmse"] for s in per_seed)
            row["gb_rmse"] = statistics.mean(s["gb"]["rmse"] for s in per_seed)
        results["prediction"][name] = row

        train, test, tgt, _ = frames[(name, 0)]
        gen = genzoo.load(out / "runs" / f"ddpm-{name}")
        if (out / "runs" / f"ddpm-{name}" / COPIES_FILE).exists():
            known = TrainingRows.load(out / "runs" / f"ddpm-{name}")
        else:  # a run trained before runs kept the fingerprints (not trained again): those of its data file
            known = TrainingRows.fit(gen.schema, pd.read_csv(frames[(name, 0)][3]))
        t1 = time.perf_counter()
        synth = gen.sample_table(len(train), generator=torch.Generator().manual_seed(0), exclude=known)
        sample_seconds = time.perf_counter() - t1
        redraw = synth.attrs["copies"]
        task = gen.schema.task
        real_score = boosting(train, test, tgt, task, 0, gb_max_iter)
        synth_score = boosting(synth, test, tgt, task, 0, gb_max_iter)
        results["generation"][name] = {
            "task": task, "rows": len(synth), "sample_seconds": round(sample_seconds, 2),
            "real": real_score, "synthetic": synth_score, "efficacy": points(synth_score) / points(real_score),
            "distance_synthetic": column_distances(train, synth, gen.schema),
            "distance_test": column_distances(train, test, gen.schema),
            "raw_copies": redraw["first_draw"], "copies_redrawn": redraw["redrawn"],
            "copy_redraw_rounds": redraw["rounds"], **privacy(train, synth, test, gen.schema)}
    pred, gen = results["prediction"], results["generation"]
    within = sum(pred[t]["within_2_points"] for t in TARGET_TABLES if t in pred)
    efficacy = statistics.mean(g["efficacy"] for g in gen.values())
    targets = {
        "FT-Transformer within 2 points of gradient boosting (tables of 4)": target(within, ">= 3"),
        "synthetic ML efficacy (mean over tables, synthetic / real)": target(efficacy, ">= 0.9"),
        "exact copies of training rows (in what genzoo generate writes, copies redrawn)":
            target(sum(g["exact_copies"] for g in gen.values()), "== 0"),
    }
    results.update(train_seconds=round(train_seconds, 1), run_cpu_seconds={"/".join(map(str, k)): v
                                                                          for k, v in cpu.items()},
                   run_cpu_seconds_total=round(sum(cpu.values()), 1))
    plot(results, out)
    data = write_results(out, results, targets, time.perf_counter() - t0)
    (out / "report.md").write_text(report(data))
    return data


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..figures import save_figure

    pred, gen = results["prediction"], results["generation"]
    names = list(pred)
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    x = np.arange(len(names))
    for i, (key, label) in enumerate((("ft", "FT-Transformer"), ("gb", "gradient boosting"))):
        vals = [[points(s[key]) for s in pred[n]["seeds"]] for n in names]
        ax.bar(x + (i - 0.5) * 0.38, [np.mean(v) for v in vals], 0.38, yerr=[np.std(v) for v in vals], capsize=3,
               label=label)
    ax.set_xticks(x, [f"{n}\n({'R²' if pred[n]['task'] == 'regression' else 'accuracy'})" for n in names], fontsize=8)
    ax.set_ylabel("test score x 100 (mean ± sd over seeds)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, out / "prediction.png")

    names = list(gen)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=110)
    x = np.arange(len(names))
    a.bar(x - 0.2, [points(gen[n]["real"]) for n in names], 0.4, label="trained on real rows")
    a.bar(x + 0.2, [points(gen[n]["synthetic"]) for n in names], 0.4, label="trained on TabDDPM rows")
    a.set_xticks(x, names, fontsize=8)
    a.set_ylabel("gradient boosting, real test rows (x 100)")
    a.legend(fontsize=8)
    b.bar(x - 0.2, [gen[n]["dcr_test_median"] for n in names], 0.4, label="real test rows")
    b.bar(x + 0.2, [gen[n]["dcr_synthetic_median"] for n in names], 0.4, label="synthetic rows")
    b.set_xticks(x, names, fontsize=8)
    b.set_ylabel("median distance to the closest training row")
    b.legend(fontsize=8)
    for ax in (a, b):
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, out / "generation.png")


def report(r: dict) -> str:
    lines = ["# Tabular models: FT-Transformer vs gradient boosting; TabDDPM synthetic tables", "",
             f"Prediction: {r['seeds']} random 80/20 splits per table, the same rows for both models; the score is "
             "accuracy x 100, or R^2 x 100 for diabetes (RMSE beside it).", "",
             "| table | FT-Transformer | gradient boosting | gap (points) | within 2 points |", "|---|---|---|---|---|"]
    for n, p in r["prediction"].items():
        extra = f" (RMSE {p['ft_rmse']:.1f} vs {p['gb_rmse']:.1f})" if p["task"] == "regression" else ""
        lines.append(f"| {n}{extra} | {p['ft_points']:.1f} | {p['gb_points']:.1f} | {p['gap_points']:+.1f} | "
                     f"{'yes' if p['within_2_points'] else 'no'} |")
    lines += ["", "Generation (TabDDPM, split of seed 0, as many synthetic rows as training rows):", "",
              "| table | GB on real | GB on synthetic | efficacy | Wasserstein/sd synth (test) | TV synth (test) | "
              "exact copies: raw sampler -> written | median DCR synth (test) |", "|---|---|---|---|---|---|---|---|"]
    for n, g in r["generation"].items():
        ds, dt = g["distance_synthetic"], g["distance_test"]
        lines.append(f"| {n} | {points(g['real']):.1f} | {points(g['synthetic']):.1f} | {g['efficacy']:.2f} | "
                     f"{ds['wasserstein']:.3f} ({dt['wasserstein']:.3f}) | {ds['total_variation']:.3f} "
                     f"({dt['total_variation']:.3f}) | {g['raw_copies']} of {g['rows']} -> {g['exact_copies']} | "
                     f"{g['dcr_synthetic_median']:.2f} "
                     f"({g['dcr_test_median']:.2f}) |")
    raw = sum(g["raw_copies"] for g in r["generation"].values())
    rows = sum(g["rows"] for g in r["generation"].values())
    lines += ["", "## Targets", "", targets_markdown(r["targets"]), "",
              f"Beside it, the raw sampler (before the copy check): {raw} exact copies of training rows in {rows} rows "
              "drawn (" + ", ".join(f"{n} {g['raw_copies']}" for n, g in r["generation"].items()) + "). `genzoo "
              "generate` redraws a row that copies one (with its class, up to 10 rounds; `--allow-copies` keeps "
              "them); the copies column above shows both, raw sampler -> rows written, the latter counted "
              "independently of the fingerprints (rows compared as text).", "",
              f"{machine_line(r)} Training {r['train_seconds']:.0f} s; the runs' CPU time "
              f"{r['run_cpu_seconds_total']:.0f} s, one thread each.", "",
              "Figures: prediction.png, generation.png.", ""]
    return "\n".join(lines)
