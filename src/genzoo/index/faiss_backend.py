"""The embedded backend: rows in SQLite (`store.py`), vectors searched by faiss (Johnson et al., 2017,
arXiv:1702.08734).

Kinds (the vector structure):
    flat   exact inner-product search (`IndexFlatIP`): every vector scored, the reference for the others
    hnsw   hierarchical navigable small-world graph (Malkov & Yashunin, arXiv:1603.09320): params M,
           ef_construction, ef_search (the candidate list of a query; larger = higher recall, slower)
    ivf    inverted file over k-means cells (Jegou et al., 2011; faiss IndexIVFFlat): params nlist (cells,
           default 4 sqrt(n)), nprobe (cells visited per query); trained on the first write's vectors

Crash safety: SQLite holds every acknowledged row; the faiss structure is a snapshot file
`vectors-<generation>.npz` (the faiss index and its row numbers, `faiss_rows.py`), written to a temporary name
and renamed, then recorded in the snapshot table.
Opening loads the recorded snapshot and replays the rows added and deleted after its generation, or rebuilds
from the rows when the snapshot is missing or unreadable. Readers in other processes catch up the same way
before each query, so a reader sees every committed write and never half of one.
"""

from __future__ import annotations

import math
import os
import threading
import uuid
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..interop.files import fsync_dir
from . import faiss_rows
from .backend import BACKENDS, Backend, Hit, check_query, check_write, exact_topk
from .store import Store, where_sql

KINDS = {"flat": {}, "hnsw": {"M": 32, "ef_construction": 80, "ef_search": 64}, "ivf": {"nlist": None, "nprobe": 8}}
SUBSET_EXACT = 20_000  # a filter allowing at most this many rows is searched exactly over those rows
BLOCK = 65_536  # rows per block when scanning vectors from SQLite
COMPACT_DEAD = 0.25  # an HNSW graph with this fraction of deleted vectors is rebuilt on flush


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ConfigError("the faiss index backend needs faiss-cpu: pip install 'genzoo[index]'") from None
    return faiss


def kind_params(kind: str, params: dict) -> dict:
    if kind not in KINDS:
        raise ConfigError(f"index kind {kind!r} is invalid: one of {', '.join(KINDS)}")
    unknown = set(params) - set(KINDS[kind])
    if unknown:
        raise ConfigError(f"index kind {kind!r} has no parameter {sorted(unknown)[0]!r}; "
                          f"its parameters: {', '.join(KINDS[kind]) or 'none'}")
    out = {**KINDS[kind], **{k: v for k, v in params.items() if v is not None}}
    for k, v in out.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
            raise ConfigError(f"index parameter {k}={v!r} is invalid: a positive integer")
    return out


@BACKENDS.register("faiss")
class FaissBackend(Backend):
    name = "faiss"

    def __init__(self, path: Path, dim: int, kind: str = "flat", params: dict | None = None, readonly: bool = False):
        self.faiss = _faiss()
        self.path, self.dim, self.kind, self.readonly = Path(path), int(dim), kind, readonly
        self.params = kind_params(kind, params or {})
        self.store = Store(self.path / "rows.sqlite")
        self.lock = threading.RLock()
        with self.lock, self.store.read():
            self._load()

    # ---- the faiss structure -----------------------------------------------------------------------
    def _new(self, train: np.ndarray | None = None):
        f, d = self.faiss, self.dim
        if self.kind == "flat":
            return faiss_rows.RowMapped(f, f.IndexFlatIP(d))
        if self.kind == "hnsw":
            inner = f.IndexHNSWFlat(d, self.params["M"], f.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.params["ef_construction"]
            return faiss_rows.RowMapped(f, inner)
        if train is None or len(train) == 0:
            return None  # ivf: created when the first vectors arrive, trained on them
        nlist = self.params["nlist"] or max(1, int(4 * math.sqrt(len(train))))
        nlist = max(1, min(nlist, len(train) // 39 or 1))  # faiss wants >= 39 training points per cell
        ivf = f.IndexIVFFlat(f.IndexFlatIP(d), d, nlist, f.METRIC_INNER_PRODUCT)
        ivf.train(train)
        return faiss_rows.Native(f, ivf)

    def _add(self, rows: np.ndarray, vecs: np.ndarray) -> None:
        if len(rows) == 0:
            return
        if self.index is None:
            self.index = self._new(vecs)
        self.index.add(rows, vecs)

    def _remove(self, rows) -> None:
        rows = np.asarray(list(rows), dtype=np.int64)
        if len(rows) == 0 or self.index is None:
            return
        if self.kind == "hnsw":  # faiss HNSW cannot remove: excluded from results, compacted on flush
            self.dead.update(self.index.ids[self.index.positions(rows)].tolist())  # the rows it holds
        else:
            self.index.remove(rows)

    def _rebuild(self) -> None:
        """The structure from every row at the current generation (inside a read or write transaction)."""
        rows, vecs = self.store.vectors("SELECT row, vector FROM rows ORDER BY row", (), self.dim)
        self.index, self.dead = self._new(vecs), set()
        self._add(rows, vecs)
        self.gen = self.store.meta("generation")

    def _load(self) -> None:
        """The recorded snapshot and the writes after it, or a rebuild from the rows."""
        snap = self.store.db.execute("SELECT gen, file, dead FROM snapshot WHERE id = 1").fetchone()
        self.index, self.dead, self.gen, self.snapshot_gen = None, set(), -1, 0
        if snap is not None and snap[0] >= self.store.meta("pruned_through"):
            try:
                self.index = faiss_rows.load(self.faiss, self.path / snap[1], self.kind)
                self.dead = set(np.frombuffer(snap[2], dtype=np.int64).tolist())
                self.gen = self.snapshot_gen = snap[0]
            except Exception:  # noqa: BLE001  missing, truncated or damaged: a cache, rebuilt from the rows below
                self.index = None
        if self.gen < 0:
            self._rebuild()
        self._sync()

    def _sync(self) -> None:
        """Replay the writes committed since self.gen (inside a transaction, so they are one state)."""
        gen = self.store.meta("generation")
        if gen == self.gen:
            return
        if self.gen < self.store.meta("pruned_through"):  # the tombstones we need are gone: reload
            self._load()
            return
        gone = [r for (r,) in self.store.db.execute("SELECT row FROM tombstones WHERE gen > ?", (self.gen,))]
        self._remove(gone)
        rows, vecs = self.store.vectors("SELECT row, vector FROM rows WHERE added_gen > ? ORDER BY row",
                                        (self.gen,), self.dim)
        self._add(rows, vecs)
        self.gen = gen

    # ---- writes ------------------------------------------------------------------------------------
    def write(self, chunks: list, vectors: np.ndarray, mode: str) -> None:
        from ..errors import InputError

        vectors = check_write(chunks, vectors, self.dim, mode)
        docs = list(dict.fromkeys(c.doc for c in chunks))
        with self.lock:
            with self.store.write():
                self._sync()
                gen = self.gen + 1
                existing = self.store.existing_docs(docs)
                if existing and mode == "add":
                    raise InputError(f"{len(existing)} document id(s) already in the index, e.g. {existing[0]!r}: "
                                     "use upsert (genzoo index add --upsert) to replace them")
                gone = self.store.delete_docs(existing, gen)
                rows = self.store.insert(chunks, vectors, gen)
                self.store.set_meta("generation", gen)
            # committed: acknowledged. The in-memory structure follows.
            self._remove(gone)
            self._add(rows, vectors)
            self.gen = gen

    def delete(self, docs: list[str]) -> int:
        with self.lock:
            with self.store.write():
                self._sync()
                gen = self.gen + 1
                gone = self.store.delete_docs(list(docs), gen)
                if gone:
                    self.store.set_meta("generation", gen)
            if gone:
                self._remove(gone)
                self.gen = gen
            return len(gone)

    # ---- search ------------------------------------------------------------------------------------
    def _params(self, sel, k: int, scale: float = 1.0):
        f = self.faiss
        if self.kind == "hnsw":
            return f.SearchParametersHNSW(efSearch=int(min(max(self.params["ef_search"], k) * scale, 4096)), sel=sel)
        if self.kind == "ivf":
            return f.SearchParametersIVF(nprobe=int(min(self.params["nprobe"] * scale, self.index.inner.nlist)),
                                         sel=sel)
        return f.SearchParameters(sel=sel) if sel is not None else None

    def search(self, queries, k, where=None, exact=False):
        q = check_query(queries, k, self.dim)
        cond, args = where_sql(where)
        with self.lock, self.store.read():
            self._sync()
            if self.index is None or self.index.ntotal == 0:
                return [[] for _ in q]
            if where or (exact and self.kind != "flat"):
                allowed = np.array([r for (r,) in self.store.db.execute(f"SELECT row FROM rows WHERE {cond}", args)],
                                   dtype=np.int64)
                if len(allowed) <= SUBSET_EXACT or (exact and self.kind != "flat"):
                    blocks = self._blocks(cond, args)
                    scores, rows = exact_topk(blocks, q, k)
                else:
                    sel = self.index.selector(allowed)
                    scale = math.sqrt(self.index.ntotal / max(len(allowed), 1))
                    scores, rows = self.index.search(q, k, params=self._params(sel, k, scale))
            else:
                sel = None
                if self.dead:
                    batch = self.index.selector(np.fromiter(self.dead, dtype=np.int64))
                    sel = self.faiss.IDSelectorNot(batch)
                scores, rows = self.index.search(q, k, params=self._params(sel, k))
            found = self.store.fetch(sorted({int(r) for r in rows.ravel() if r >= 0}))
        return [[Hit(*found[int(r)][:2], float(s), *found[int(r)][2:]) for s, r in zip(srow, rrow)
                 if r >= 0 and int(r) in found] for srow, rrow in zip(scores, rows)]

    def _blocks(self, cond: str, args: list):
        last = -1
        while True:
            rows, vecs = self.store.vectors(
                f"SELECT row, vector FROM rows WHERE row > ? AND {cond} ORDER BY row LIMIT {BLOCK}",
                [last, *args], self.dim)
            if len(rows) == 0:
                return
            yield rows, vecs
            last = int(rows[-1])

    # ---- persistence -------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write the structure as the snapshot of its generation (new file, renamed), then record it."""
        if self.readonly:
            return
        with self.lock:
            if self.index is None or self.gen == self.snapshot_gen:  # nothing new (or an untrained, empty ivf)
                return
            if self.kind == "hnsw" and self.index is not None and len(self.dead) > COMPACT_DEAD * self.index.ntotal:
                with self.store.read():
                    self._rebuild()
            name = f"vectors-{self.gen}.npz"
            tmp = self.path / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
            faiss_rows.save(self.index, tmp)
            os.replace(tmp, self.path / name)
            fsync_dir(self.path)
            dead = np.fromiter(self.dead, dtype=np.int64).tobytes()
            with self.store.write():
                current = self.store.db.execute("SELECT gen FROM snapshot WHERE id = 1").fetchone()
                if current is None or current[0] < self.gen:
                    self.store.db.execute("INSERT OR REPLACE INTO snapshot VALUES (1, ?, ?, ?)", (self.gen, name, dead))
                    self.store.db.execute("DELETE FROM tombstones WHERE gen <= ?", (self.gen,))
                    self.store.set_meta("pruned_through", self.gen)
                keep = self.store.db.execute("SELECT gen FROM snapshot WHERE id = 1").fetchone()[0]
            self.snapshot_gen = self.gen
            for p in self.path.glob("vectors-*.npz"):  # older snapshots; never a newer one being recorded
                g = p.stem.split("-", 1)[1]
                if g.isdigit() and int(g) < keep:
                    p.unlink(missing_ok=True)

    def sample(self, n, seed=0):
        with self.lock, self.store.read():
            rows = np.array([r for (r,) in self.store.db.execute("SELECT row FROM rows")], dtype=np.int64)
            pick = np.random.default_rng(seed).permutation(rows)[:n].tolist()
            got = {}
            for i in range(0, len(pick), 900):
                part = pick[i:i + 900]
                r, v = self.store.vectors(f"SELECT row, vector FROM rows WHERE row IN ({','.join('?' * len(part))})",
                                          part, self.dim)
                got.update(zip(r.tolist(), v))
        return np.stack([got[r] for r in pick]) if pick else np.empty((0, self.dim), dtype=np.float32)

    def counts(self):
        with self.lock, self.store.read():
            return self.store.counts()

    def info(self) -> dict:
        with self.lock, self.store.read():
            self._sync()
        files = {p.name: p.stat().st_size for p in self.path.iterdir() if p.is_file()}
        return {"kind": self.kind, "params": self.params, "generation": self.gen, "snapshot": self.snapshot_gen,
                "vectors_in_structure": 0 if self.index is None else int(self.index.ntotal),
                "deleted_awaiting_compaction": len(self.dead), "bytes_on_disk": sum(files.values()), "files": files}

    def close(self) -> None:
        with self.lock:
            self.store.close()
