"""`genzoo bench index`: retrieval quality and speed of genzoo.index, no download.

1. Real retrieval: the standard library as the corpus (`genzoo.data.docstrings`): each query is a function's
   docstring first line, its one relevant document that function's source without the docstring. All-MiniLM-L6-v2
   through genzoo.index (chunks of 256 tokens, overlap 32; a document ranks by its best chunk): exact search,
   HNSW at three ef_search and IVF at three nprobe settings, and BM25 (bm25s, Lucene variant) on the same chunks
   as the classic anchor. Recall@1, recall@10, MRR@100, recall@10 of each approximate index against exact
   search, index build throughput (chunks/s, embedding included), query latency p50/p99 (embedding + search,
   and search alone), bytes per vector on disk.
2. Scale: 100k and 1M unit vectors of dimension 384, exact (IndexFlatIP) vs approximate (IVF; HNSW up to
   `hnsw_max` vectors, since building a 1M graph takes many minutes on two cores): single-query latency and
   recall@10 side by side. Two kinds of data: random Gaussian directions, the worst case for every
   approximate index (no clusters: a query's neighbours are barely closer than anything else), and vectors
   clustered like real embeddings (each one a real stdlib chunk embedding plus Gaussian noise, renormalised),
   queried by the real docstring embeddings. Target: >= 10x faster than exact with recall@10 >= 0.95 at 1M on
   the clustered data.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from . import BENCHMARKS
from .common import machine


def rank_metrics(ranked: list[list[str]], relevant: list[str]) -> dict:
    """recall@1, recall@10 and MRR (over the ranked lists given) of one relevant document per query."""
    ranks = [r.index(t) + 1 if t in r else None for r, t in zip(ranked, relevant)]
    n = len(ranks)
    return {"recall@1": sum(r == 1 for r in ranks) / n, "recall@10": sum(r is not None and r <= 10 for r in ranks) / n,
            "mrr": sum(1 / r for r in ranks if r) / n}


def docs_of(hits) -> list[str]:
    """A ranked list of chunk hits -> its ranked distinct documents (a document ranks by its best chunk)."""
    return list(dict.fromkeys(h.id for h in hits))


@contextlib.contextmanager
def one_thread():
    """Single-query search timed on one thread, as ann-benchmarks does: a query is too small to share, and an
    OpenMP parallel region per query waits for a descheduled thread on a loaded machine (tens of ms). faiss and
    torch share the OpenMP runtime here, so the thread count is restored afterwards."""
    import faiss
    import torch

    n = torch.get_num_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(n)
        torch.set_num_threads(n)


def latencies(fn, items, warmup: int = 3) -> dict:
    """Per-call p50 / p99 in ms, after `warmup` untimed calls (OpenMP threads of the previous step still
    spinning would otherwise be timed)."""
    for x in items[:warmup]:
        fn(x)
    t = []
    for x in items:
        s = time.perf_counter()
        fn(x)
        t.append(time.perf_counter() - s)
    return {"p50_ms": 1e3 * float(np.percentile(t, 50)), "p99_ms": 1e3 * float(np.percentile(t, 99))}


def timed_search(fn, items) -> dict:
    with one_thread():
        return latencies(fn, items)


def overlap_at(a, b, k=10) -> float:
    return float(np.mean([len(set(x[:k]) & set(y[:k])) / max(len(set(y[:k])), 1) for x, y in zip(a, b)]))


def stdlib_retrieval(pairs: int | None, chunk: int, overlap: int, latency_queries: int, tmp: Path,
                     corpus_bytes: int | None = None, model: str = "all-MiniLM-L6-v2") -> tuple[dict, dict]:
    import bm25s

    from ..data.docstrings import stdlib_pairs
    from ..index import Document, Embedder, Index

    data = stdlib_pairs(pairs, max_bytes=corpus_bytes)
    queries, relevant = [p.query for p in data], [p.id for p in data]
    e = Embedder.load(model)
    flat = Index.create(tmp / "flat.index", e, chunk=chunk, overlap=overlap)
    t = time.perf_counter()
    stats = flat.add([Document(p.id, p.document) for p in data])
    flat.flush()
    build_s = time.perf_counter() - t
    chunks = flat.chunk([Document(p.id, p.document) for p in data])
    n = len(chunks)
    qv = e.embed(queries)
    # every stored vector in the order of `chunks`, for the approximate indexes
    order = flat.backend.store.db.execute("SELECT doc, chunk FROM rows ORDER BY row").fetchall()
    rows_sorted = flat.backend.store.vectors("SELECT row, vector FROM rows ORDER BY row", (), e.dim)[1]
    by_key = {(d, c): i for i, (d, c) in enumerate(order)}
    vecs = rows_sorted[[by_key[(c.doc, c.chunk)] for c in chunks]]
    print(f"  corpus: {len(data)} stdlib functions -> {n} chunks of <= {chunk} tokens (overlap {overlap}); "
          f"{len(queries)} queries")
    out = {"functions": len(data), "chunks": n, "build_chunks_per_s": n / build_s, "build_s": build_s,
           "embed_s": stats["embed_seconds"], "methods": {}}

    exact_hits = flat.query_vectors(qv, k=100)
    exact_docs = [docs_of(h) for h in exact_hits]
    lat_q = queries[:latency_queries]
    out["latency"] = {"embed+search": latencies(lambda q: flat.query(q, k=10), lat_q),
                      "search": timed_search(lambda v: flat.query_vectors(v, k=10), qv[:latency_queries])}
    size = sum(p.stat().st_size for p in (tmp / "flat.index").iterdir())
    out["methods"]["exact (flat)"] = {**rank_metrics(exact_docs, relevant), "bytes_per_vector": size / n,
                                      "search_p50_ms": out["latency"]["search"]["p50_ms"],
                                      "search_p99_ms": out["latency"]["search"]["p99_ms"]}
    exact_chunks = [[(h.id, h.chunk) for h in hs] for hs in exact_hits]

    for kind, knob, settings in (("hnsw", "ef_search", (16, 64, 256)), ("ivf", "nprobe", (1, 4, 16))):
        idx = Index.create(tmp / f"{kind}.index", dim=e.dim, kind=kind)
        t = time.perf_counter()
        idx.backend.write(chunks, vecs, "add")
        idx.flush()
        built = time.perf_counter() - t
        size = sum(p.stat().st_size for p in (tmp / f"{kind}.index").iterdir())
        faiss_bytes = sum(p.stat().st_size for p in (tmp / f"{kind}.index").glob("vectors-*.npz"))
        for s in settings:
            idx.backend.params[knob] = s
            hits = idx.query_vectors(qv, k=100)
            lat = timed_search(lambda v: idx.query_vectors(v, k=10), qv[:latency_queries])
            out["methods"][f"{kind} {knob}={s}"] = {
                **rank_metrics([docs_of(h) for h in hits], relevant),
                "recall@10_vs_exact": overlap_at([[(h.id, h.chunk) for h in hs] for hs in hits], exact_chunks),
                "search_p50_ms": lat["p50_ms"], "search_p99_ms": lat["p99_ms"], "bytes_per_vector": size / n,
                "faiss_bytes_per_vector": faiss_bytes / n, "structure_build_s": built}
        idx.close()

    texts = [c.text for c in chunks]
    t = time.perf_counter()
    bm = bm25s.BM25()
    bm.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    bm_build = time.perf_counter() - t
    res, _ = bm.retrieve(bm25s.tokenize(queries, stopwords="en", show_progress=False), k=min(100, n),
                         show_progress=False)
    bm_docs = [list(dict.fromkeys(chunks[j].doc for j in row)) for row in res]
    lat = latencies(lambda q: bm.retrieve(bm25s.tokenize([q], stopwords="en", show_progress=False), k=10,
                                          show_progress=False), lat_q)
    out["methods"]["BM25 (bm25s)"] = {**rank_metrics(bm_docs, relevant), "build_s": bm_build,
                                      "search_p50_ms": lat["p50_ms"], "search_p99_ms": lat["p99_ms"]}
    flat.close()
    return out, {"vectors": vecs, "queries": qv}


def scale(n: int, dim: int, data: str, real: dict | None, queries: int, hnsw_max: int, seed: int = 0) -> dict:
    """Exact vs approximate search over n unit vectors: single-query latency and recall@10."""
    import faiss

    rng = np.random.default_rng(seed)
    if data == "random":
        x = rng.standard_normal((n, dim), dtype=np.float32)
        q = rng.standard_normal((queries, dim), dtype=np.float32)
    else:  # around real embeddings: a real chunk vector + noise (per-dimension std 0.03, about 0.6 in norm)
        centres = real["vectors"]
        x = centres[rng.integers(0, len(centres), n)]
        x += rng.standard_normal((n, dim), dtype=np.float32) * np.float32(0.03)
        q = real["queries"][rng.permutation(len(real["queries"]))[:queries]].copy()
    faiss.normalize_L2(x)
    faiss.normalize_L2(q)
    exact = faiss.IndexFlatIP(dim)
    exact.add(x)
    _, truth = exact.search(q, 10)
    lat = timed_search(lambda v: exact.search(v[None], 10), q)
    out = {"n": n, "data": data, "exact": {"p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"]}, "approx": {}}
    del exact

    nlist = int(math.sqrt(n))
    t = time.perf_counter()
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(x[rng.permutation(n)[: 64 * nlist]])
    ivf.add(x)
    built = time.perf_counter() - t
    for nprobe in (4, 16, 64):
        ivf.nprobe = nprobe
        _, got = ivf.search(q, 10)
        lat = timed_search(lambda v: ivf.search(v[None], 10), q)
        out["approx"][f"ivf nlist={nlist} nprobe={nprobe}"] = {
            "recall@10": overlap_at(got.tolist(), truth.tolist()), **lat,
            "speedup": out["exact"]["p50_ms"] / lat["p50_ms"], "build_s": built}
    del ivf
    if n <= hnsw_max:
        t = time.perf_counter()
        h = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        h.hnsw.efConstruction = 80
        h.add(x)
        built = time.perf_counter() - t
        for ef in (16, 64, 256):
            h.hnsw.efSearch = ef
            _, got = h.search(q, 10)
            lat = timed_search(lambda v: h.search(v[None], 10), q)
            out["approx"][f"hnsw M=32 ef_search={ef}"] = {
                "recall@10": overlap_at(got.tolist(), truth.tolist()), **lat,
                "speedup": out["exact"]["p50_ms"] / lat["p50_ms"], "build_s": built}
    return out


@BENCHMARKS.register("index")
def run(pairs: int | None = 2000, chunk: int = 256, overlap: int = 32, sizes=(100_000, 1_000_000),
        queries: int = 200, latency_queries: int = 100, hnsw_max: int = 100_000, out: str | None = None,
        corpus_bytes: int | None = None, model: str = "all-MiniLM-L6-v2", data=("random", "clustered")) -> dict:
    """model: the encoder to measure (a directory, e.g. a fine-tuned all-MiniLM-L6-v2, or the default)."""
    load = os.getloadavg()[0]
    print(f"index: {machine()}; load average {load:.2f}")
    results = {"machine": machine(), "load_average_start": load}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        print(f"1. stdlib retrieval: docstring first line -> its function, {model} via genzoo.index")
        real, vectors = stdlib_retrieval(pairs, chunk, overlap, latency_queries, Path(d), corpus_bytes, model)
    results["stdlib"] = real
    print(f"  build: {real['build_chunks_per_s']:.1f} chunks/s (embedding included, {real['build_s']:.0f} s); "
          f"query p50/p99: embed+search {real['latency']['embed+search']['p50_ms']:.1f}/"
          f"{real['latency']['embed+search']['p99_ms']:.1f} ms, search {real['latency']['search']['p50_ms']:.2f}/"
          f"{real['latency']['search']['p99_ms']:.2f} ms")
    print(f"  {'method':26s} {'R@1':>6s} {'R@10':>6s} {'MRR':>6s} {'R@10 vs exact':>14s} {'p50 ms':>8s} "
          f"{'bytes/vec':>10s}")
    for name, m in real["methods"].items():
        print(f"  {name:26s} {m['recall@1']:6.3f} {m['recall@10']:6.3f} {m['mrr']:6.3f} "
              f"{m.get('recall@10_vs_exact', float('nan')):14.3f} {m.get('search_p50_ms', float('nan')):8.3f} "
              f"{m.get('bytes_per_vector', float('nan')):10.0f}")
    print("2. scale: exact (IndexFlatIP) vs approximate, single-query latency (one thread), recall@10 against exact")
    results["scale"] = []
    for kind in data:
        for n in sizes:
            r = scale(n, vectors["vectors"].shape[1], kind, vectors, queries, hnsw_max)
            results["scale"].append(r)
            print(f"  {kind:9s} n={n:>9,d}  exact p50 {r['exact']['p50_ms']:.2f} ms")
            for name, a in r["approx"].items():
                print(f"    {name:28s} recall@10 {a['recall@10']:.3f}  p50 {a['p50_ms']:.3f} ms  "
                      f"speed-up {a['speedup']:6.1f}x  (built in {a['build_s']:.0f} s)")
    big = [r for r in results["scale"] if r["data"] == "clustered" and r["n"] == max(sizes, default=0)]
    ok = [(k, a) for r in big for k, a in r["approx"].items() if a["speedup"] >= 10 and a["recall@10"] >= 0.95]
    results["target"] = {"rule": f">= 10x faster than exact with recall@10 >= 0.95 at n={max(sizes, default=0):,} "
                                 "(clustered)",
                         "met": bool(ok), "by": [k for k, _ in ok]}
    print(f"  target {results['target']['rule']}: {'met by ' + ', '.join(results['target']['by']) if ok else 'MISSED'}"
          "\n  (random Gaussian directions are the worst case for approximate search: no clusters to exploit)")
    results["seconds"] = time.perf_counter() - t0
    results["load_average_end"] = os.getloadavg()[0]
    print(f"index: {results['seconds']:.0f} s; load average {results['load_average_end']:.2f} at the end")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(results, indent=1, default=float) + "\n")
    return results
