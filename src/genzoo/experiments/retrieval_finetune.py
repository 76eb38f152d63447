"""`genzoo experiment retrieval-finetune`: does contrastive fine-tuning of the sentence encoder raise recall@10 on
the standard-library retrieval benchmark of `genzoo bench index`?

The benchmark (`genzoo.data.docstrings`): a query is a function's docstring first line, its one relevant document
that function's source without the docstring. The standard library's files are split by `stdlib_corpus` into
training and validation files; the encoder (all-MiniLM-L6-v2 by default) is fine-tuned with the `pairs` task
(in-batch-negatives InfoNCE, Oord et al. 2018, arXiv:1807.03748, eq. 4) on the pairs of the TRAINING files only,
written to a .jsonl the way a user's own pairs are (`--data`), and both encoders are measured through
`genzoo.index` (exact inner-product search, chunked documents) on the pairs of the VALIDATION files, which the
fine-tuning never saw.

Target (issue 27, item 5): recall@10 after fine-tuning > recall@10 before.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from . import EXPERIMENTS


def split_pairs(max_bytes: int | None, per_split: dict[str, int | None], seed: int = 0) -> dict[str, list]:
    """The benchmark's pairs of the corpus's training and validation files, each split's queries unique within
    it, sampled down to per_split[split] pairs (all when None)."""
    from ..data.docstrings import stdlib_pairs

    return {split: stdlib_pairs(per_split.get(split), seed=seed, max_bytes=max_bytes, split=split)
            for split in ("train", "val")}


def retrieval(model, pairs, tmp: Path, chunk: int, overlap: int) -> dict:
    """recall@1/@10 and MRR of `model` (a name or directory) on `pairs`, exact search through genzoo.index."""
    from ..bench.index import docs_of, rank_metrics
    from ..index import Document, Embedder, Index

    e = Embedder.load(model)
    idx = Index.create(tmp, e, chunk=chunk, overlap=overlap)
    idx.add([Document(p.id, p.document) for p in pairs])
    hits = idx.query_vectors(e.embed([p.query for p in pairs]), k=100)
    idx.close()
    return rank_metrics([docs_of(h) for h in hits], [p.id for p in pairs])


@EXPERIMENTS.register("retrieval-finetune")
def run(out: str, small: bool = False, model: str = "all-MiniLM-L6-v2", steps: int = 60,
        sets: tuple[str, ...] = ()) -> dict:
    """small: a few files, pairs and steps (the test suite's version); sets: extra recipe overrides."""
    from ..index.embedder import resolve_model
    from ..train import load_recipe, train
    from .results import machine_line, target, targets_markdown, write_results

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    max_bytes, per_split = (600_000, {"train": 96, "val": 48}) if small else (None, {"train": None, "val": 2000})
    steps = 4 if small else steps
    chunk, overlap = (128, 16) if small else (256, 32)
    pairs = split_pairs(max_bytes, per_split)
    if not pairs["train"] or not pairs["val"]:
        raise RuntimeError(f"too few benchmark pairs: {len(pairs['train'])} train, {len(pairs['val'])} val")
    data = out / "train_pairs.jsonl"
    data.write_text("".join(json.dumps({"query": p.query, "code": p.document}) + "\n" for p in pairs["train"]))

    base = resolve_model(model)
    with tempfile.TemporaryDirectory() as d:
        before = retrieval(base, pairs["val"], Path(d) / "base.index", chunk, overlap)
        recipe = load_recipe("minilm-pairs", [f"init={base}", f"data.source={data}", "data.input_column=query",
                                              "data.target_column=code", f"steps={steps}", "progress=false",
                                              f"eval_every={steps}", f"save_every={steps}",
                                              *(["batch_size=8", "data.block_size=64", "eval_batches=1"]
                                                if small else []), *sets])
        run_dir = out / "run"
        t = time.perf_counter()
        if not (run_dir / "model.safetensors").exists():
            train(recipe, run_dir)
        train_s = time.perf_counter() - t
        after = retrieval(run_dir, pairs["val"], Path(d) / "tuned.index", chunk, overlap)

    results = {"model": str(model), "steps": steps, "batch_size": recipe.batch_size, "lr": recipe.lr,
               "train_pairs": len(pairs["train"]), "eval_pairs": len(pairs["val"]), "chunk": chunk,
               "overlap": overlap, "train_seconds": round(train_s, 1), "before": before, "after": after}
    targets = {"recall@10 fine-tuned minus base (held-out files)":
               target(after["recall@10"] - before["recall@10"], "> 0")}
    written = write_results(out, results, targets, time.perf_counter() - t0)
    rows = "\n".join(f"| {k} | {before[k]:.3f} | {after[k]:.3f} |" for k in ("recall@1", "recall@10", "mrr"))
    (out / "report.md").write_text(
        f"# Contrastive fine-tuning raises retrieval recall\n\n{model} fine-tuned (task `pairs`, {steps} steps, "
        f"batch {recipe.batch_size}, lr {recipe.lr}) on {len(pairs['train'])} docstring -> code pairs of the standard "
        f"library's training files; measured through `genzoo.index` (exact search, chunks of {chunk} tokens, overlap "
        f"{overlap}) on {len(pairs['val'])} pairs of the held-out validation files.\n\n"
        f"| metric | base | fine-tuned |\n|---|---|---|\n{rows}\n\n{targets_markdown(targets)}\n\n"
        f"{machine_line(written)}\n")
    return written
