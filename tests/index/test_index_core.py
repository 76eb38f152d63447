"""genzoo.index on stored vectors (no model): exact search = brute force, persistence, upsert/delete, filters,
bad input; every semantic checked on the embedded faiss backend (each kind) and on Qdrant's local mode."""

import numpy as np
import pytest
import torch

from genzoo import ConfigError, InputError
from genzoo.index import Index

pytest.importorskip("faiss")
DIM = 16
BACKENDS = [("faiss", "flat"), ("faiss", "hnsw"), ("faiss", "ivf"), ("qdrant", "flat")]


def unit(n, seed=0, dim=DIM):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make(tmp_path, backend="faiss", kind="flat", n=300, **params):
    if backend == "qdrant":
        pytest.importorskip("qdrant_client")
    idx = Index.create(tmp_path / f"{backend}-{kind}", dim=DIM, backend=backend, kind=kind, **params)
    x = unit(n)
    idx.add_vectors([f"d{i}" for i in range(n)], x, texts=[f"text {i}" for i in range(n)],
                    metadatas=[{"parity": i % 2, "tag": "a" if i < 10 else "b", "big": i >= 250} for i in range(n)])
    return idx, x


def ids(hits):
    return [h.id for h in hits]


def test_exact_search_equals_brute_force_torch_topk(tmp_path):
    idx, x = make(tmp_path, n=500)
    q = unit(20, seed=1)
    want = torch.topk(torch.from_numpy(q) @ torch.from_numpy(x).T, k=7)
    got = idx.query_vectors(q, k=7)
    for hits, s, i in zip(got, want.values, want.indices):
        assert ids(hits) == [f"d{j}" for j in i.tolist()]
        np.testing.assert_allclose([h.score for h in hits], s.numpy(), atol=1e-5)
    for kind in ("hnsw", "ivf"):  # exact=True on an approximate index is exact too
        a, _ = make(tmp_path, kind=kind, n=500)
        assert [ids(h) for h in a.query_vectors(q, k=7, exact=True)] == [ids(h) for h in got]
        a.close()
    idx.close()


@pytest.mark.parametrize("backend,kind", BACKENDS)
def test_persistence_round_trip(tmp_path, backend, kind):
    idx, x = make(tmp_path, backend, kind)
    idx.delete(["d3"])
    q = unit(5, seed=2)
    before = [[(h.id, round(h.score, 5), h.text, h.metadata) for h in r] for r in idx.query_vectors(q, k=5)]
    path = idx.path
    idx.close()
    again = Index.open(path)
    after = [[(h.id, round(h.score, 5), h.text, h.metadata) for h in r] for r in again.query_vectors(q, k=5)]
    assert after == before
    assert again.info()["chunks"] == 299 and "d3" not in ids(again.query_vectors(x[3], k=3)[0])
    again.close()


@pytest.mark.parametrize("backend,kind", BACKENDS)
def test_upsert_and_delete_semantics(tmp_path, backend, kind):
    idx, x = make(tmp_path, backend, kind)
    with pytest.raises(InputError, match="already in the index.*'d5'"):
        idx.add_vectors(["new", "d5"], unit(2, seed=3))
    assert idx.backend.counts() == (300, 300)  # the refused write stored nothing, not even "new"
    v = unit(1, seed=4)
    idx.add_vectors(["d5"], v, texts=["replaced"], metadatas=[{"tag": "z"}], upsert=True)
    top = idx.query_vectors(v, k=1)[0][0]
    assert (top.id, top.text, top.metadata, round(top.score, 4)) == ("d5", "replaced", {"tag": "z"}, 1.0)
    assert ids(idx.query_vectors(x[5], k=300)[0]).count("d5") == 1  # the old vector is gone
    assert idx.delete(["d5", "d6", "nope"]) == 2
    assert idx.backend.counts() == (298, 298)
    assert not {"d5", "d6"} & set(ids(idx.query_vectors(x[5], k=300)[0]))
    idx.close()


@pytest.mark.parametrize("backend,kind", BACKENDS)
def test_filters(tmp_path, backend, kind):
    idx, x = make(tmp_path, backend, kind)
    q = unit(3, seed=5)
    for where, keep in (({"parity": 1}, lambda i: i % 2 == 1), ({"tag": "a"}, lambda i: i < 10),
                        ({"tag": "b", "parity": 0}, lambda i: i >= 10 and i % 2 == 0),
                        ({"big": True}, lambda i: i >= 250)):
        allowed = np.array([i for i in range(300) if keep(i)])
        scores = q @ x[allowed].T
        for hits, s in zip(idx.query_vectors(q, k=5, where=where), scores):  # a filter is searched exactly
            assert ids(hits) == [f"d{allowed[j]}" for j in np.argsort(-s)[:5]]
    assert idx.query_vectors(q, k=5, where={"tag": "none"}) == [[], [], []]
    with pytest.raises(InputError, match="filter key"):
        idx.query_vectors(q, k=5, where={"a.b": 1})
    idx.close()


def test_approximate_recall_is_measured(tmp_path):
    idx, _ = make(tmp_path, kind="hnsw", n=1000)
    r = idx.measure_recall(k=10, queries=100)
    assert r["queries"] == 100 and 0.9 <= r["recall"] <= 1.0
    assert Index.open(idx.path).manifest["recall"] == r  # stored for `genzoo index info`
    idx.close()


def test_bad_input(tmp_path):
    idx, _ = make(tmp_path)
    with pytest.raises(InputError, match=r"query of shape \(2, 8\) is invalid: the index holds 16-dimensional"):
        idx.query_vectors(np.zeros((2, 8), np.float32), k=3)
    for k in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="k=.* is invalid: a positive number"):
            idx.query_vectors(unit(1), k=k)
    with pytest.raises(InputError, match=r"vectors of shape \(2, 15\) are invalid"):
        idx.add_vectors(["p", "q"], np.zeros((2, 15), np.float32))
    with pytest.raises(InputError, match="NaN"):
        idx.add_vectors(["p"], np.full((1, DIM), np.nan, np.float32))
    with pytest.raises(InputError, match="built from vectors without a model"):
        idx.query("some text")
    with pytest.raises(ConfigError, match="already exists"):
        Index.create(idx.path, dim=DIM)
    with pytest.raises(ConfigError, match="index kind 'hnsww' is invalid"):
        Index.create(tmp_path / "x", dim=DIM, kind="hnsww")
    with pytest.raises(ConfigError, match="has no parameter 'nprobe'"):
        Index.create(tmp_path / "y", dim=DIM, kind="hnsw", nprobe=3)
    with pytest.raises(ConfigError, match="unknown index backend 'qdrnat'"):
        Index.create(tmp_path / "z", dim=DIM, backend="qdrnat")
    idx.close()


def test_reopen_after_lost_or_corrupt_snapshot(tmp_path):
    """The faiss file is a cache: a missing, truncated or stale snapshot is rebuilt from the SQLite rows."""
    idx, x = make(tmp_path, kind="hnsw")
    path = idx.path
    idx.close()
    snap = next(path.glob("vectors-*.npz"))
    want = ids(Index.open(path, readonly=True).query_vectors(x[7], k=4)[0])
    snap.write_bytes(snap.read_bytes()[:100])  # truncated
    assert ids(Index.open(path, readonly=True).query_vectors(x[7], k=4)[0]) == want
    snap.unlink()  # missing
    again = Index.open(path)
    assert ids(again.query_vectors(x[7], k=4)[0]) == want
    again.add_vectors(["late"], x[7:8] * 1.0)  # committed, never snapshotted (as after a kill)
    again.backend.store.close()
    third = Index.open(path)
    assert ids(third.query_vectors(x[7], k=2)[0]) in (["d7", "late"], ["late", "d7"])
    third.close()


def test_hnsw_deletes_are_excluded_then_compacted(tmp_path):
    idx, x = make(tmp_path, kind="hnsw")
    gone = [f"d{i}" for i in range(100)]
    idx.delete(gone)
    assert not set(gone) & set(ids(idx.query_vectors(x[:20], k=10)[0]))
    assert idx.backend.info()["deleted_awaiting_compaction"] == 100
    idx.flush()  # a third of the graph is deleted: rebuilt without them
    assert idx.backend.info()["deleted_awaiting_compaction"] == 0 and idx.backend.index.ntotal == 200
    idx.close()


def test_ivf_is_trained_by_its_first_write(tmp_path):
    idx = Index.create(tmp_path / "ivf", dim=DIM, kind="ivf", nprobe=2)
    idx.close()  # empty and untrained: nothing to snapshot
    idx = Index.open(tmp_path / "ivf")
    assert idx.query_vectors(unit(1), k=3) == [[]]
    x = unit(800)
    idx.add_vectors([f"d{i}" for i in range(800)], x)
    assert idx.backend.index.inner.nlist == 20 and idx.query_vectors(x[9], k=1)[0][0].id == "d9"  # 800 // 39 cells
    idx.close()
