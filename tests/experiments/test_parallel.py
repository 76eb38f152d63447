"""experiments.parallel: a graph of jobs runs each job after its dependencies, longest remaining chain first, in
spawned one-thread workers (or in this process); a failing job stops the graph and is named; the replayed
schedule's wall time is the list schedule computed by hand."""

import os
import time

import pytest
import torch

from genzoo.errors import ConfigError
from genzoo.experiments.parallel import Job, JobError, chain_priority, replay_schedule, run_graph


def _work(name: str, seconds: float = 0.05):
    """Busy for `seconds` of CPU (so the job has CPU time to measure); where it ran."""
    t = time.process_time()
    while time.process_time() - t < seconds:
        pass
    return name, os.getpid(), torch.get_num_threads()


def _fail(name: str):
    raise RuntimeError(f"{name} broke")


# x(1) -> z(2); x, y(4) -> w(3)
GRAPH = {"x": Job(_work, ("x",), cost=1), "y": Job(_work, ("y",), cost=4), "z": Job(_work, ("z",), cost=2),
         "w": Job(_work, ("w",), cost=3)}
DEPS = {"z": ["x"], "w": ["y", "x"]}


def test_chain_priority_by_hand():
    p = chain_priority({k: j.cost for k, j in GRAPH.items()}, {"x": (), "y": (), "z": ("x",), "w": ("y", "x")})
    assert p == {"x": 1 + 3, "y": 4 + 3, "z": 2, "w": 3}  # x: itself + w, the longer of the jobs waiting on it


@pytest.mark.parametrize("workers", [0, 1])
def test_one_at_a_time_order_respects_deps_longest_first(workers):
    g = run_graph(GRAPH, DEPS, workers=workers)
    assert g.order == ["y", "x", "w", "z"]  # y's chain 7, x's 4; then w (3) before z (2)
    assert {k: r[0] for k, r in g.results.items()} == {k: k for k in GRAPH}
    assert set(g.cpu_s) == set(GRAPH) and all(c >= 0.04 for c in g.cpu_s.values())
    for k, ds in DEPS.items():
        assert all(g.spans[k][0] >= g.spans[d][1] for d in ds)


def test_independent_jobs_longest_first_and_chains_before_short_leaves():
    jobs = {n: Job(_work, (n,), cost=c) for n, c in (("a", 1), ("b", 3), ("c", 2))}
    assert run_graph(jobs, workers=0).order == ["b", "c", "a"]
    # a short job that unlocks a long one goes before a longer job nothing waits on
    jobs = {"short": Job(_work, ("short",), cost=1), "long_after": Job(_work, ("long_after",), cost=10),
            "mid": Job(_work, ("mid",), cost=5)}
    assert run_graph(jobs, {"long_after": ["short"]}, workers=0).order == ["short", "long_after", "mid"]


def test_two_spawned_one_thread_workers():
    g = run_graph(GRAPH, DEPS, workers=2)
    assert set(g.results) == set(GRAPH)
    assert all(threads == 1 for _, _, threads in g.results.values())  # one thread per worker
    assert os.getpid() not in {pid for _, pid, _ in g.results.values()}  # not in this process
    assert g.order[:2] == ["y", "x"]  # the two longest chains start together
    for k, ds in DEPS.items():  # a job starts only after each of its dependencies ended
        assert all(g.spans[k][0] >= g.spans[d][1] for d in ds)
    assert g.wall_s >= max(end for _, end in g.spans.values())


@pytest.mark.parametrize("workers", [0, 2])
def test_failing_job_raises_with_its_name_and_its_dependents_never_run(workers):
    jobs = {"ok": Job(_work, ("ok",), cost=2), "bad": Job(_fail, ("bad",), cost=1),
            "after_bad": Job(_work, ("after_bad",), cost=1)}
    with pytest.raises(JobError, match=r"job 'bad' failed: RuntimeError: bad broke") as info:
        run_graph(jobs, {"after_bad": ["bad"]}, workers=workers)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_replay_schedule_by_hand():
    durations = {"a": 3.0, "b": 2.0, "c": 4.0, "d": 1.0}
    deps = {"c": ["a"], "d": ["b"]}
    # priorities a 3+4=7, b 2+1=3: a and b at 0; b ends at 2 -> d (c still waits on a) 2..3; a ends at 3 -> c 3..7
    wall, spans = replay_schedule(durations, deps, workers=2)
    assert wall == 7.0
    assert spans == {"a": (0.0, 3.0), "b": (0.0, 2.0), "d": (2.0, 3.0), "c": (3.0, 7.0)}
    assert replay_schedule(durations, deps, workers=1)[0] == 10.0  # one worker: the sum
    assert replay_schedule(durations, deps, workers=4)[0] == 7.0  # enough workers: the longest chain
    # the order comes from the costs the real run had: estimated short, x (5 s) starts last -> 1 + 5
    assert replay_schedule({"x": 5.0, "y": 1.0, "z": 1.0}, workers=2)[0] == 5.0
    assert replay_schedule({"x": 5.0, "y": 1.0, "z": 1.0}, workers=2, costs={"x": 0, "y": 2, "z": 1})[0] == 6.0


def test_graph_errors():
    with pytest.raises(ConfigError, match="dependency cycle"):
        run_graph({"a": Job(_work, ("a",)), "b": Job(_work, ("b",))}, {"a": ["b"], "b": ["a"]}, workers=0)
    with pytest.raises(ConfigError, match=r"job 'a' depends on unknown job\(s\) \['nope'\]"):
        replay_schedule({"a": 1.0}, {"a": ["nope"]})
    with pytest.raises(ConfigError, match="unknown job"):
        replay_schedule({"a": 1.0}, {"b": ["a"]})
    with pytest.raises(ConfigError, match="workers=-1"):
        run_graph({"a": Job(_work, ("a",))}, workers=-1)
    with pytest.raises(ConfigError, match="must be a parallel.Job"):
        run_graph({"a": (_work, ("a",))}, workers=0)
