"""A faiss index whose vectors are named by the store's row numbers, saved as one file.

faiss's own `IndexIDMap2` does the naming, but its search translates the labels in an OpenMP parallel loop:
a parallel region per query, which on a loaded machine waits for a descheduled thread. Measured on a 2-core
AMD EPYC at load average 16: HNSW over 2,500 vectors, one query, 44 ms through IndexIDMap2, 0.04 ms without.
Here the positions -> rows translation is one numpy gather. Row numbers only grow (SQLite AUTOINCREMENT, and
rows are added in order), so `ids` is sorted and a row's position is a binary search.

IVF keeps its own ids (`add_with_ids`, no wrapper, no such loop) and is used as it is.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np


class RowMapped:
    """flat / hnsw: the faiss index holds vectors at positions 0..n-1; ids[position] = row number."""

    def __init__(self, faiss, inner, ids: np.ndarray | None = None):
        self.faiss, self.inner = faiss, inner
        self.ids = np.empty(0, dtype=np.int64) if ids is None else ids.astype(np.int64)

    @property
    def ntotal(self) -> int:
        return int(self.inner.ntotal)

    def add(self, rows: np.ndarray, vecs: np.ndarray) -> None:
        if len(self.ids) and rows[0] <= self.ids[-1]:
            raise RuntimeError(f"row {rows[0]} added after row {self.ids[-1]}: rows must be added in order")
        self.inner.add(vecs)
        self.ids = np.concatenate([self.ids, rows.astype(np.int64)])

    def positions(self, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        pos = np.searchsorted(self.ids, rows)
        held = pos < len(self.ids)
        held[held] = self.ids[pos[held]] == rows[held]
        return pos[held]

    def remove(self, rows) -> None:  # IndexFlat removes and closes the gap, in order
        pos = self.positions(rows)
        if len(pos):
            self.inner.remove_ids(self.faiss.IDSelectorBatch(pos))
            self.ids = np.delete(self.ids, pos)

    def selector(self, rows):
        return self.faiss.IDSelectorBatch(self.positions(rows))

    def search(self, q: np.ndarray, k: int, params=None) -> tuple[np.ndarray, np.ndarray]:
        scores, pos = self.inner.search(q, k, params=params)  # (Q, k) positions, -1 where fewer than k
        return scores, np.where(pos >= 0, self.ids[np.maximum(pos, 0)], -1)


class Native:
    """ivf: faiss stores the row numbers itself."""

    def __init__(self, faiss, inner, ids=None):
        self.faiss, self.inner = faiss, inner

    @property
    def ntotal(self) -> int:
        return int(self.inner.ntotal)

    def add(self, rows, vecs):
        self.inner.add_with_ids(vecs, rows)

    def remove(self, rows):
        self.inner.remove_ids(self.faiss.IDSelectorBatch(np.asarray(rows, dtype=np.int64)))

    def selector(self, rows):
        return self.faiss.IDSelectorBatch(np.asarray(rows, dtype=np.int64))

    def search(self, q, k, params=None):
        return self.inner.search(q, k, params=params)


def save(structure, file: Path) -> None:
    """One .npz file (faiss's serialised index + the row numbers), written whole and fsynced by the caller's
    rename protocol: the bytes go to `file` in one write."""
    buf = io.BytesIO()
    ids = getattr(structure, "ids", np.empty(0, dtype=np.int64))
    np.savez(buf, index=structure.faiss.serialize_index(structure.inner), ids=ids)
    with open(file, "wb") as f:
        f.write(buf.getbuffer())
        f.flush()
        os.fsync(f.fileno())


def load(faiss, file: Path, kind: str):
    with np.load(file, allow_pickle=False) as z:
        inner = faiss.deserialize_index(z["index"])
        ids = z["ids"]
    return (Native if kind == "ivf" else RowMapped)(faiss, inner, ids)
