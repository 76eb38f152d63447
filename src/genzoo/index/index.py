"""`Index`: texts -> chunks -> embeddings -> a backend, with the model that embedded them recorded.

An index is a directory:
    index.json        the manifest: backend, kind and parameters, dimension, the model (name, weight
                      fingerprint, pooling), chunk window and overlap, the last measured recall
    rows.sqlite ...   the backend's files (faiss: SQLite rows + vector snapshot; qdrant: its local folder)

    from genzoo.index import Embedder, Index, read_source
    idx = Index.create("my.index", Embedder.load("all-MiniLM-L6-v2"), kind="hnsw")
    idx.add(read_source("docs/"))                      # chunked by 256-token windows overlapping by 32
    hits = idx.query("how do I open a file?", k=5, where={"source": "io.md"})
    idx.close()
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, ConfigError, InputError
from .backend import BACKENDS, Hit
from .embedder import Embedder
from .sources import Chunk, Chunker, Document, read_source

MANIFEST = "index.json"
FORMAT = "genzoo-index"
VERSION = 1


def _write_manifest(path: Path, manifest: dict) -> None:
    tmp = path / f".{MANIFEST}.tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(manifest, indent=1) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path / MANIFEST)


def read_manifest(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not (p / MANIFEST).is_file():
        raise CheckpointError(f"{p}: not a genzoo index (no {MANIFEST}); build one with `genzoo index build`")
    try:
        m = json.loads((p / MANIFEST).read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{p / MANIFEST}: not valid JSON ({e.msg})") from None
    if m.get("format") != FORMAT or m.get("version") != VERSION:
        raise CheckpointError(f"{p / MANIFEST}: format {m.get('format')!r} version {m.get('version')!r}; "
                              f"this genzoo reads {FORMAT!r} version {VERSION}")
    return m


class Index:
    def __init__(self, path: Path, manifest: dict, backend, embedder: Embedder | None = None, readonly=False):
        self.path, self.manifest, self.backend, self.readonly = Path(path), manifest, backend, readonly
        self._embedder = embedder
        self.dim = manifest["dim"]

    # ---- create / open ------------------------------------------------------------------------------
    @classmethod
    def create(cls, path, embedder: Embedder | None = None, dim: int | None = None, backend: str = "faiss",
               kind: str = "flat", chunk: int = 256, overlap: int = 32, url: str | None = None,
               collection: str | None = None, **params) -> "Index":
        """A new, empty index at `path` (which must not hold one). Without an embedder the index stores
        vectors you give it (`add_vectors`, `query_vectors`) of dimension `dim`."""
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ConfigError(f"{path} already exists; add to it with `genzoo index add`, or choose another --out")
        if embedder is None and (not isinstance(dim, int) or dim <= 0):
            raise ConfigError(f"dim={dim!r} is invalid: an index without a model needs a positive dimension")
        if not isinstance(chunk, int) or chunk <= 0 or not isinstance(overlap, int) or not 0 <= overlap < chunk:
            raise ConfigError(f"chunk={chunk!r}, overlap={overlap!r} are invalid: chunk > 0 and 0 <= overlap < chunk")
        if embedder is not None and chunk > embedder.max_tokens:
            raise ConfigError(f"chunk={chunk} is invalid: model {embedder.name!r} reads at most {embedder.max_tokens} "
                              "tokens per text")
        dim = embedder.dim if embedder is not None else dim
        opts = {"url": url, "collection": collection or "genzoo", "create": True} if backend == "qdrant" else {}
        make = BACKENDS.get(backend)
        path.mkdir(parents=True, exist_ok=True)
        b = make(path, dim, kind, params, **opts)
        manifest = {"format": FORMAT, "version": VERSION, "backend": backend, "kind": kind, "params": b.params,
                    "dim": dim, "model": embedder.identity if embedder is not None else None,
                    "chunk": chunk, "overlap": overlap, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if backend == "qdrant":
            manifest.update(url=url, collection=opts["collection"])
        _write_manifest(path, manifest)
        return cls(path, manifest, b, embedder)

    @classmethod
    def open(cls, path, embedder: Embedder | None = None, readonly: bool = False) -> "Index":
        """Reopen an index. A given embedder must be the model the index was built with."""
        path = Path(path)
        m = read_manifest(path)
        opts = {"url": m.get("url"), "collection": m.get("collection", "genzoo")} if m["backend"] == "qdrant" else {}
        b = BACKENDS.get(m["backend"])(path, m["dim"], m["kind"], m["params"], readonly=readonly, **opts)
        idx = cls(path, m, b, None, readonly)
        if embedder is not None:
            idx.check_model(embedder)
            idx._embedder = embedder
        return idx

    # ---- the model ------------------------------------------------------------------------------------
    def check_model(self, embedder: Embedder) -> None:
        """Refuse a model other than the one the index was built with (its fingerprint and dimension)."""
        stored = self.manifest["model"]
        if stored is None:
            raise InputError(f"{self.path} was built from vectors without a model: query it with query_vectors")
        if embedder.fingerprint != stored["fingerprint"] or embedder.dim != stored["dim"]:
            raise InputError(
                f"{self.path} was built with model {stored['name']!r} (fingerprint {stored['fingerprint']}, dim "
                f"{stored['dim']}, pooling {stored['pooling']}); model {embedder.name!r} has fingerprint "
                f"{embedder.fingerprint}, dim {embedder.dim}, pooling {embedder.pooling}: embeddings of different "
                "models are not comparable. Query with the index's model, or build a new index")

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            stored = self.manifest["model"]
            if stored is None:
                raise InputError(f"{self.path} was built from vectors without a model: query it with query_vectors")
            e = Embedder.load(stored["name"])
            self.check_model(e)
            self._embedder = e
        return self._embedder

    # ---- writes ------------------------------------------------------------------------------------
    def _writable(self):
        if self.readonly:
            raise ConfigError(f"{self.path} is open read-only")

    def chunk(self, docs: list[Document]) -> list[Chunk]:
        e = self.embedder
        return Chunker(e.tokenizer.tok, self.manifest["chunk"], self.manifest["overlap"], e.max_tokens)(docs)

    def add(self, docs: list[Document] | str | os.PathLike, upsert: bool = False, progress: bool = False) -> dict:
        """Chunk, embed and store documents (or the documents of a source path) in one write: all of them or,
        if anything fails, none. upsert=False refuses ids already in the index; upsert=True replaces them."""
        self._writable()
        docs = read_source(docs) if isinstance(docs, (str, os.PathLike)) else list(docs)
        if not docs:
            raise InputError("no documents to add (an empty corpus)")
        t0 = time.perf_counter()
        chunks = self.chunk(docs)
        if not chunks:
            raise InputError("the documents hold no tokens (an empty corpus)")
        vectors = self.embedder.embed([c.text for c in chunks], progress=progress)
        t1 = time.perf_counter()
        self.backend.write(chunks, vectors, "upsert" if upsert else "add")
        t2 = time.perf_counter()
        return {"documents": len(docs), "chunks": len(chunks), "embed_seconds": t1 - t0, "write_seconds": t2 - t1,
                "chunks_per_second": len(chunks) / max(t2 - t0, 1e-9)}

    def add_vectors(self, ids: list[str], vectors, texts: list[str] | None = None,
                    metadatas: list[dict] | None = None, upsert: bool = False) -> None:
        """Store precomputed vectors (one chunk per id) in one write."""
        self._writable()
        ids = [str(i) for i in ids]
        if len(set(ids)) != len(ids):
            raise InputError("ids must be unique within one write")
        texts = texts if texts is not None else [""] * len(ids)
        metadatas = metadatas if metadatas is not None else [{}] * len(ids)
        if not len(texts) == len(metadatas) == len(ids):
            raise InputError(f"{len(ids)} ids, {len(texts)} texts and {len(metadatas)} metadatas: one each per row")
        chunks = [Chunk(i, 0, t, dict(m)) for i, t, m in zip(ids, texts, metadatas)]
        self.backend.write(chunks, np.asarray(vectors, dtype=np.float32), "upsert" if upsert else "add")

    def delete(self, ids: list[str]) -> int:
        """Remove every chunk of the documents `ids`; the number of chunks removed."""
        self._writable()
        return self.backend.delete([str(i) for i in ids])

    # ---- queries -----------------------------------------------------------------------------------
    def query_vectors(self, vectors, k: int = 5, where: dict | None = None, exact: bool = False) -> list[list[Hit]]:
        return self.backend.search(vectors, k, where, exact)

    def query(self, text: str | list[str], k: int = 5, where: dict | None = None, exact: bool = False):
        """The top-k chunks for a text (a list of hits) or for each of several texts (a list of lists)."""
        texts = [text] if isinstance(text, str) else list(text)
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise InputError("a query text is empty")
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise InputError(f"k={k!r} is invalid: a positive number of results")
        hits = self.backend.search(self.embedder.embed(texts), k, where, exact)
        return hits[0] if isinstance(text, str) else hits

    def measure_recall(self, k: int = 10, queries: int = 200, seed: int = 0) -> dict:
        """Recall@k of this index's search against exact search, on `queries` points between two random stored
        vectors (normalise(a + b): off the stored points, inside the data's distribution)."""
        sample = self.backend.sample(2 * queries, seed)
        if len(sample) < 2:
            return {"k": k, "queries": 0, "recall": None}
        n = len(sample) // 2
        q = sample[:n] + sample[n:2 * n]
        q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        approx = self.backend.search(q, k)
        exact = self.backend.search(q, k, exact=True)
        found = [len({(h.id, h.chunk) for h in a} & {(h.id, h.chunk) for h in e}) / max(len(e), 1)
                 for a, e in zip(approx, exact)]
        result = {"k": k, "queries": n, "recall": float(np.mean(found))}
        if not self.readonly:
            self.manifest["recall"] = result
            _write_manifest(self.path, self.manifest)
        return result

    # ---- state -------------------------------------------------------------------------------------
    def info(self) -> dict:
        docs, chunks = self.backend.counts()
        return {"path": str(self.path), **{k: v for k, v in self.manifest.items() if k not in ("format", "version")},
                "documents": docs, "chunks": chunks, **{f"{self.backend.name}": self.backend.info()}}

    def flush(self) -> None:
        if not self.readonly:
            self.backend.flush()

    def close(self) -> None:
        self.flush()
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
