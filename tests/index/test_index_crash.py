"""Crash safety and concurrency of the embedded index: a SIGKILL during an add leaves an index that opens
with exactly the acknowledged rows (plus, at most, the whole write in flight: never part of one); a reader
in another process during a writer sees every acknowledged write and never half of one."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from genzoo.index import Index
from tests.train.common import env

pytest.importorskip("faiss")
DIM, BATCH = 16, 100

WRITER = """
import sys, time, numpy as np
from genzoo.index import Index
idx = Index.open(sys.argv[1])
first, count, pause = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
for b in range(first, first + count):
    v = np.random.default_rng(b).standard_normal(({BATCH}, {DIM})).astype(np.float32)
    idx.add_vectors([f"b{{b}}-{{i}}" for i in range({BATCH})], v / np.linalg.norm(v, axis=1, keepdims=True),
                    metadatas=[{{"batch": b}}] * {BATCH})
    if b % 5 == 4:  # an upsert (delete + insert in one write) of the previous batch, same rows
        w = np.random.default_rng(b - 1).standard_normal(({BATCH}, {DIM})).astype(np.float32)
        idx.add_vectors([f"b{{b - 1}}-{{i}}" for i in range({BATCH})], w / np.linalg.norm(w, axis=1, keepdims=True),
                        metadatas=[{{"batch": b - 1, "v": 2}}] * {BATCH}, upsert=True)
    print(b, flush=True)  # acknowledged: add_vectors returned
    if b % 2:
        idx.flush()  # snapshot writes are killed too
    time.sleep(pause)
idx.close()
""".format(BATCH=BATCH, DIM=DIM)


def batch_vectors(b):
    v = np.random.default_rng(b).standard_normal((BATCH, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def writer(path, first, count, pause=0.0):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(first), str(count), str(pause)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())


def check_consistent(path, acked: list[int], next_batch: int):
    """Opens; holds every acknowledged batch whole, and the in-flight batch whole or not at all."""
    idx = Index.open(path)
    batches = {int(h.metadata["batch"]) for h in idx.query_vectors(np.ones((1, DIM), np.float32), k=10**6)[0]}
    assert set(acked) <= batches <= set(acked) | {next_batch}, (acked, sorted(batches))
    docs, chunks = idx.backend.counts()
    assert chunks == BATCH * len(batches)  # no partial batch
    info = idx.backend.info()  # the search structure matches the rows (HNSW keeps upserted-away vectors as dead)
    assert info["vectors_in_structure"] - info["deleted_awaiting_compaction"] == chunks
    for b in batches:  # each row is found by its own vector
        assert idx.query_vectors(batch_vectors(b)[7], k=1)[0][0].id == f"b{b}-7"
    idx.close()
    return sorted(batches)


@pytest.mark.slow
def test_sigkill_during_add_keeps_exactly_the_acknowledged_rows(tmp_path):
    path = tmp_path / "crash.index"
    Index.create(path, dim=DIM, kind="hnsw").close()
    rng = np.random.default_rng(0)
    have: list[int] = []
    for trial in range(3):
        first = max(have, default=-1) + 1
        p = writer(path, first, 1000)
        acked = []
        target = int(rng.integers(2, 6))
        while len(acked) < target:
            line = p.stdout.readline()
            assert line, p.stderr.read()
            acked.append(int(line))
        time.sleep(float(rng.uniform(0, 0.05)))  # land somewhere inside the next add or flush
        os.kill(p.pid, signal.SIGKILL)
        rest = p.stdout.read()  # acknowledgements printed before the kill landed
        p.wait()
        acked += [int(x) for x in rest.split()]
        have = check_consistent(path, have + acked, max(acked) + 1)


@pytest.mark.slow
def test_reader_during_writer_sees_whole_acknowledged_writes(tmp_path):
    path = tmp_path / "rw.index"
    Index.create(path, dim=DIM).close()
    p = writer(path, 0, 20, pause=0.02)
    acked: list[int] = []
    reader_thread = threading.Thread(target=lambda: acked.extend(int(x) for x in p.stdout))
    reader_thread.start()
    idx = Index.open(path, readonly=True)
    seen, last = 0, 0
    while p.poll() is None or seen < 20 * BATCH:
        known = list(acked)  # acknowledged before this query started
        _, chunks = idx.backend.counts()
        assert chunks % BATCH == 0 and chunks >= last  # whole writes only, never going back
        last = chunks
        if known:
            b = known[-1]
            assert idx.query_vectors(batch_vectors(b)[3], k=1)[0][0].id == f"b{b}-3"
        seen = chunks
        time.sleep(0.005)
        if p.poll() is not None and seen < 20 * BATCH:
            assert p.returncode == 0, p.stderr.read()
    reader_thread.join()
    assert acked == list(range(20)) and seen == 20 * BATCH
    idx.close()
