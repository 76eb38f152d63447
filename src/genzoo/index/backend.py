"""The small interface every index backend implements, and the registry that names them.

A backend stores chunks (document id, chunk number, text, metadata) with their vectors and answers
inner-product top-k queries with an optional metadata filter. Writes are by document: `write(..., "add")`
refuses documents that exist, `write(..., "upsert")` replaces every chunk of the documents it writes,
`delete` removes every chunk of the documents named.

    faiss   embedded (the default): rows in SQLite (WAL), vectors searched by faiss (exact flat, HNSW, IVF)
    qdrant  Qdrant through qdrant-client: local mode (a folder) or a server URL, the same code
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..registry import Registry

BACKENDS: Registry = Registry("index backend")


@dataclass
class Hit:
    id: str  # the document id
    chunk: int
    score: float  # inner product of unit vectors = cosine similarity
    text: str
    metadata: dict

    def to_dict(self) -> dict:
        return {"id": self.id, "chunk": self.chunk, "score": round(self.score, 6), "text": self.text,
                "metadata": self.metadata}


class Backend:
    """What an index backend provides (see the module docstring)."""

    name: str
    dim: int
    kind: str  # "flat" (exact) or an approximate kind

    def write(self, chunks: list, vectors: np.ndarray, mode: str) -> None:
        raise NotImplementedError

    def delete(self, docs: list[str]) -> int:
        raise NotImplementedError

    def search(self, queries: np.ndarray, k: int, where: dict | None = None, exact: bool = False) -> list[list[Hit]]:
        raise NotImplementedError

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """Up to n stored vectors (n, dim), chosen at random with `seed`."""
        raise NotImplementedError

    def counts(self) -> tuple[int, int]:
        """(documents, chunks)."""
        raise NotImplementedError

    def info(self) -> dict:
        return {}

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def check_write(chunks: list, vectors: np.ndarray, dim: int, mode: str) -> np.ndarray:
    """Validate a write before anything is stored; the vectors as contiguous float32 (n, dim)."""
    if mode not in ("add", "upsert"):
        raise InputError(f"write mode {mode!r} is invalid: 'add' or 'upsert'")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape != (len(chunks), dim):
        raise InputError(f"vectors of shape {tuple(vectors.shape)} are invalid: expected ({len(chunks)}, {dim}) "
                         f"(one {dim}-dimensional vector per chunk)")
    if not np.isfinite(vectors).all():
        raise InputError("vectors contain NaN or infinity")
    keys = {(c.doc, c.chunk) for c in chunks}
    if len(keys) != len(chunks):
        raise InputError("a write holds the same (document id, chunk) twice")
    return vectors


def check_query(queries: np.ndarray, k, dim: int) -> np.ndarray:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise InputError(f"k={k!r} is invalid: a positive number of results")
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q[None]
    if q.ndim != 2 or q.shape[1] != dim:
        raise InputError(f"query of shape {tuple(np.shape(queries))} is invalid: the index holds {dim}-dimensional "
                         f"vectors, expected (n, {dim})")
    return q


def exact_topk(blocks, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k over (rows (n,), vectors (n, D)) blocks: scores and rows (Q, k), best first,
    padded with -inf / -1 when fewer than k rows exist."""
    nq = len(queries)
    best_s = np.full((nq, 0), -np.inf, dtype=np.float32)
    best_r = np.full((nq, 0), -1, dtype=np.int64)
    for rows, vecs in blocks:
        if len(rows) == 0:
            continue
        s = queries @ vecs.T  # (Q, n)
        s = np.concatenate([best_s, s], axis=1)
        r = np.concatenate([best_r, np.broadcast_to(rows, (nq, len(rows)))], axis=1)
        if s.shape[1] > k:
            keep = np.argpartition(-s, k - 1, axis=1)[:, :k]
            s, r = np.take_along_axis(s, keep, 1), np.take_along_axis(r, keep, 1)
        best_s, best_r = s, r
    order = np.argsort(-best_s, axis=1, kind="stable")
    s, r = np.take_along_axis(best_s, order, 1), np.take_along_axis(best_r, order, 1)
    if s.shape[1] < k:
        s = np.pad(s, ((0, 0), (0, k - s.shape[1])), constant_values=-np.inf)
        r = np.pad(r, ((0, 0), (0, k - r.shape[1])), constant_values=-1)
    return s, r
