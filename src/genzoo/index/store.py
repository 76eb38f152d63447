"""The embedded index's rows in SQLite (write-ahead log): the source of truth for texts, metadata and vectors.

Every write is one SQLite transaction that also bumps a generation counter, so a write is acknowledged
exactly when its transaction commits (WAL, synchronous=FULL): a process killed at any instant leaves the
rows of every acknowledged write and none of a write in flight. The vector search structure (faiss) is a
cache derived from these rows: a snapshot file stamped with the generation it holds, brought up to date on
open from the rows added (`added_gen`) and removed (`tombstones`) since.

Schema:
    meta(key, value)              generation, pruned_through (tombstones at or below it are gone)
    rows(row, doc, chunk, text, metadata, vector, added_gen)   row: never reused (AUTOINCREMENT)
    tombstones(row, gen)          rows deleted at generation gen
    snapshot(id=1, gen, file, dead)   the current faiss snapshot; dead: rows still in it but deleted
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from pathlib import Path

import numpy as np

from ..errors import InputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows(
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    doc TEXT NOT NULL, chunk INTEGER NOT NULL, text TEXT NOT NULL, metadata TEXT NOT NULL,
    vector BLOB NOT NULL, added_gen INTEGER NOT NULL, UNIQUE(doc, chunk));
CREATE INDEX IF NOT EXISTS rows_added ON rows(added_gen);
CREATE TABLE IF NOT EXISTS tombstones(row INTEGER NOT NULL, gen INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tombstones_gen ON tombstones(gen);
CREATE TABLE IF NOT EXISTS snapshot(id INTEGER PRIMARY KEY CHECK (id = 1), gen INTEGER NOT NULL,
    file TEXT NOT NULL, dead BLOB NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('generation', '0'), ('pruned_through', '0');
"""
KEY = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_VARS = 900  # SQLite's bound parameters per statement (999 in old builds)


def where_sql(where: dict | None) -> tuple[str, list]:
    """A metadata filter {key: value} (all must hold) -> an SQL condition and its parameters."""
    if not where:
        return "1", []
    parts, args = [], []
    for key, value in where.items():
        if not isinstance(key, str) or not KEY.match(key):
            raise InputError(f"filter key {key!r} is invalid: letters, digits, '_' and '-' only")
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            raise InputError(f"filter {key}={value!r} is invalid: a string, number, boolean or null")
        parts.append("json_extract(metadata, ?) IS ?")
        args += [f'$."{key}"', value]
    return " AND ".join(parts), args


def batched(items: list, n: int = MAX_VARS):
    for i in range(0, len(items), n):
        yield items[i:i + n]


class Store:
    def __init__(self, file: Path):
        self.file = file
        # autocommit mode: transactions are the explicit BEGIN ... COMMIT below
        self.db = sqlite3.connect(str(file), isolation_level=None, timeout=60, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns: acknowledged
        self.db.execute("PRAGMA busy_timeout=60000")
        with self.write():
            for stmt in SCHEMA.strip().split(";"):
                if stmt.strip():
                    self.db.execute(stmt)

    @contextlib.contextmanager
    def write(self):
        """A write transaction: BEGIN IMMEDIATE takes the write lock up front (one writer at a time)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @contextlib.contextmanager
    def read(self):
        """A read transaction: every statement inside sees one committed state (WAL snapshot isolation)."""
        self.db.execute("BEGIN")
        try:
            yield self.db
        finally:
            self.db.execute("COMMIT")

    def meta(self, key: str) -> int:
        return int(self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    def set_meta(self, key: str, value: int) -> None:
        self.db.execute("UPDATE meta SET value = ? WHERE key = ?", (str(value), key))

    # ---- rows --------------------------------------------------------------------------------------
    def existing_docs(self, docs: list[str]) -> list[str]:
        out = []
        for part in batched(docs):
            q = f"SELECT DISTINCT doc FROM rows WHERE doc IN ({','.join('?' * len(part))})"
            out += [r[0] for r in self.db.execute(q, part)]
        return out

    def delete_docs(self, docs: list[str], gen: int) -> list[int]:
        """Delete every chunk of `docs`, recording tombstones at `gen`; the deleted row numbers."""
        rows = []
        for part in batched(docs):
            marks = ",".join("?" * len(part))
            rows += [r[0] for r in self.db.execute(f"SELECT row FROM rows WHERE doc IN ({marks})", part)]
            self.db.execute(f"DELETE FROM rows WHERE doc IN ({marks})", part)
        self.db.executemany("INSERT INTO tombstones VALUES (?, ?)", [(r, gen) for r in rows])
        return rows

    def insert(self, chunks, vectors: np.ndarray, gen: int) -> np.ndarray:
        """Insert chunks with their vectors at `gen`; their new row numbers (int64)."""
        rows = np.empty(len(chunks), dtype=np.int64)
        for i, (c, v) in enumerate(zip(chunks, vectors)):
            cur = self.db.execute(
                "INSERT INTO rows(doc, chunk, text, metadata, vector, added_gen) VALUES (?, ?, ?, ?, ?, ?)",
                (c.doc, c.chunk, c.text, json.dumps(c.metadata, ensure_ascii=False),
                 np.ascontiguousarray(v, dtype=np.float32).tobytes(), gen))
            rows[i] = cur.lastrowid
        return rows

    def vectors(self, sql: str, args=(), dim: int = 0):
        """(row numbers (n,), vectors (n, dim)) of the rows a query selects as (row, vector)."""
        got = self.db.execute(sql, args).fetchall()
        rows = np.fromiter((r[0] for r in got), dtype=np.int64, count=len(got))
        vecs = np.frombuffer(b"".join(r[1] for r in got), dtype=np.float32).reshape(len(got), dim)
        return rows, vecs

    def fetch(self, rows: list[int]) -> dict[int, tuple]:
        """row -> (doc, chunk, text, metadata) for the rows that exist."""
        out = {}
        for part in batched([int(r) for r in rows]):
            q = f"SELECT row, doc, chunk, text, metadata FROM rows WHERE row IN ({','.join('?' * len(part))})"
            for r, doc, chunk, text, meta in self.db.execute(q, part):
                out[r] = (doc, chunk, text, json.loads(meta))
        return out

    def counts(self) -> tuple[int, int]:
        docs, chunks = self.db.execute("SELECT COUNT(DISTINCT doc), COUNT(*) FROM rows").fetchone()
        return int(docs), int(chunks)

    def close(self) -> None:
        self.db.close()
