"""Training many small runs for an experiment through the shared loop, side by side in worker processes of one
thread each (small models: two one-thread processes on two cores beat one two-thread process), or in this process
(workers=0, the test suite). A run whose final model exists is not trained again.

- `train_many`: independent training runs, longest first.
- `run_graph`: jobs with dependencies (a tokenizer before the runs that use it), a list scheduler: whenever a worker
  is free it takes the ready job with the longest remaining chain (its expected cost plus the longest chain of jobs
  waiting on it; for independent jobs simply the longest job first). Graham (1969), "Bounds on multiprocessing
  timing anomalies", bounds any such list schedule at <= (2 - 1/m) x the optimum on m workers.
- `replay_schedule`: the same scheduler replayed on measured durations (CPU seconds of each job, one thread): the
  wall time the graph takes on idle cores, to report beside the wall time measured on a loaded machine.

Workers are *spawned* (a fresh interpreter each; forking a process that holds torch's thread pools is unsafe), so a
script that calls these with workers > 0 must guard its entry point with ``if __name__ == "__main__":`` (the
spawned interpreters import the script's module; `python -m genzoo` has the guard).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Mapping

import torch

from ..errors import ConfigError, GenzooError


class JobError(GenzooError):
    """A job of `run_graph` raised; the message names the job (the original error is its __cause__)."""


def _one_thread():
    torch.set_num_threads(1)


def train_run(job: tuple[str, list[str], str, int | None]) -> tuple[list[dict], float]:
    """(recipe name, --set overrides, run directory, steps) -> (its metrics.jsonl records, CPU seconds spent)."""
    from ..train import load_recipe, train

    recipe_name, sets, out, steps = job
    out = Path(out)
    cpu = time.process_time()
    if not (out / "model.safetensors").exists():
        train(load_recipe(recipe_name, ["progress=false", *sets]), out, steps=steps)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return records, time.process_time() - cpu


def train_many(jobs: dict, workers: int) -> tuple[dict, dict]:
    """jobs {key: (recipe, sets, out, steps)}, longest first -> ({key: records}, {key: CPU seconds})."""
    if workers > 0:
        with ProcessPoolExecutor(max_workers=workers, initializer=_one_thread) as pool:
            futures = {k: pool.submit(train_run, (r, list(s), str(o), st)) for k, (r, s, o, st) in jobs.items()}
            done = {k: f.result() for k, f in futures.items()}
    else:
        done = {k: train_run((r, list(s), str(o), st)) for k, (r, s, o, st) in jobs.items()}
    return {k: v[0] for k, v in done.items()}, {k: round(v[1], 1) for k, v in done.items()}


# ---- dependency graphs ----
@dataclass(frozen=True)
class Job:
    """One node of a graph: `fn(*args)`, run in a worker process (so fn is a module-level function and args are
    picklable). cost: its expected duration in any unit, the same for every job of a graph (only the launch order
    depends on it)."""

    fn: Callable[..., Any]
    args: tuple = ()
    cost: float = 1.0


@dataclass
class GraphRun:
    """What `run_graph` measured: each job's result, its CPU seconds (in its own process, so one thread when
    workers > 0), the launch order, each job's (start, end) in wall seconds from the graph's start, the wall time,
    the costs the order came from, and each worker's start-up CPU seconds (interpreter, imports; {} in-process)."""

    results: dict
    cpu_s: dict
    order: list
    spans: dict
    wall_s: float
    workers: int
    costs: dict = field(default_factory=dict)
    startup_cpu_s: dict = field(default_factory=dict)


def _check_graph(keys: Iterable[Hashable], deps: Mapping[Hashable, Iterable[Hashable]]) -> dict[Hashable, tuple]:
    """deps completed with () for every key; unknown names and cycles are ConfigErrors."""
    keys = list(keys)
    known = set(keys)
    unknown = [k for k in deps if k not in known]
    if unknown:
        raise ConfigError(f"graph: dependencies given for unknown job(s) {unknown}; jobs: {keys}")
    full = {k: tuple(deps.get(k, ())) for k in keys}
    for k, ds in full.items():
        missing = [d for d in ds if d not in known]
        if missing:
            raise ConfigError(f"graph: job {k!r} depends on unknown job(s) {missing}; jobs: {keys}")
    state: dict = {}  # 1: on the current path, 2: done

    def visit(k, path):
        if state.get(k) == 2:
            return
        if state.get(k) == 1:
            raise ConfigError(f"graph: dependency cycle {' -> '.join(map(repr, [*path, k]))}")
        state[k] = 1
        for d in full[k]:
            visit(d, [*path, k])
        state[k] = 2

    for k in keys:
        visit(k, [])
    return full


def chain_priority(costs: Mapping[Hashable, float], deps: Mapping[Hashable, tuple]) -> dict[Hashable, float]:
    """Each job's cost plus the longest chain of jobs that (transitively) wait on it: the list scheduler's
    priority (HLFET, "highest level first"). With no dependencies it is the job's own cost."""
    waiting = {k: [j for j, ds in deps.items() if k in ds] for k in costs}
    level: dict = {}

    def lvl(k):
        if k not in level:
            level[k] = costs[k] + max((lvl(j) for j in waiting[k]), default=0.0)
        return level[k]

    return {k: lvl(k) for k in costs}


def _next_ready(pending: list, done: set, deps: Mapping, priority: Mapping):
    """The pending job whose dependencies are all done with the highest priority (ties: the first given)."""
    ready = [k for k in pending if all(d in done for d in deps[k])]
    return max(ready, key=lambda k: priority[k]) if ready else None


def _take_ready(pending: list, done: set, deps: Mapping, priority: Mapping, free: int) -> list:
    """Up to `free` ready jobs, taken out of `pending` one at a time by `_next_ready`: the launches of the list
    schedule whenever workers are free (shared by `run_graph` and `replay_schedule`, so both order jobs alike)."""
    taken = []
    while pending and len(taken) < free:
        k = _next_ready(pending, done, deps, priority)
        if k is None:
            break
        pending.remove(k)
        taken.append(k)
    return taken


def _timed(fn, args):
    """fn(*args) -> (its result, its CPU seconds, this process's id, the CPU this process had spent before it: for
    a worker's first job, the worker's start-up)."""
    cpu = time.process_time()
    result = fn(*args)
    return result, time.process_time() - cpu, os.getpid(), cpu


def run_graph(jobs: Mapping[Hashable, Job], deps: Mapping[Hashable, Iterable[Hashable]] | None = None,
              workers: int = 2) -> GraphRun:
    """Run `jobs` {key: Job}, each after the jobs it depends on (deps {key: [keys]}), in `workers` spawned
    processes of one thread each (0: one after another in this process, in the same order). A free worker takes
    the ready job with the longest remaining chain (`chain_priority`). A job that raises stops the graph: the
    jobs not yet started are dropped, the running ones finish, then JobError names the failed job."""
    if not (isinstance(workers, int) and not isinstance(workers, bool) and workers >= 0):
        raise ConfigError(f"run_graph: workers={workers!r} is invalid: a non-negative integer (0: in this process)")
    for k, j in jobs.items():
        if not isinstance(j, Job):
            raise ConfigError(f"run_graph: job {k!r} must be a parallel.Job, got {type(j).__name__}")
    deps = _check_graph(jobs, deps or {})
    costs = {k: float(j.cost) for k, j in jobs.items()}
    priority = chain_priority(costs, deps)
    pending, done, order, spans, results, cpu, startup = list(jobs), set(), [], {}, {}, {}, {}
    t0 = time.perf_counter()

    def failed(k, exc):
        return JobError(f"run_graph: job {k!r} failed: {type(exc).__name__}: {exc}")

    if workers == 0:
        while pending:
            (k,) = _take_ready(pending, done, deps, priority, 1)  # the graph is acyclic: one is always ready
            order.append(k)
            start = time.perf_counter() - t0
            try:
                results[k], cpu[k], _, _ = _timed(jobs[k].fn, jobs[k].args)
            except Exception as exc:
                raise failed(k, exc) from exc
            spans[k] = (start, time.perf_counter() - t0)
            done.add(k)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_one_thread) as pool:
            running: dict = {}  # future -> key
            while pending or running:
                for k in _take_ready(pending, done, deps, priority, workers - len(running)):
                    order.append(k)
                    spans[k] = (time.perf_counter() - t0, None)
                    running[pool.submit(_timed, jobs[k].fn, jobs[k].args)] = k
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in finished:
                    k = running.pop(f)
                    spans[k] = (spans[k][0], time.perf_counter() - t0)
                    exc = f.exception()
                    if exc is not None:
                        pending.clear()  # nothing new starts; leaving the pool waits for the running jobs
                        raise failed(k, exc) from exc
                    results[k], cpu[k], pid, before = f.result()
                    startup[pid] = min(startup.get(pid, before), before)
                    done.add(k)
    return GraphRun(results=results, cpu_s=cpu, order=order, spans=spans, wall_s=time.perf_counter() - t0,
                    workers=workers, costs=costs, startup_cpu_s=startup)


def replay_schedule(durations: Mapping[Hashable, float], deps: Mapping[Hashable, Iterable[Hashable]] | None = None,
                    workers: int = 2, costs: Mapping[Hashable, float] | None = None) -> tuple[float, dict]:
    """The list schedule of `run_graph` replayed with known durations (e.g. each job's measured CPU seconds on one
    thread) on `workers` idle workers -> (makespan, {key: (start, end)}). costs: the estimates the real run chose
    its order by (default: the durations themselves)."""
    if not (isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1):
        raise ConfigError(f"replay_schedule: workers={workers!r} is invalid: a positive integer")
    deps = _check_graph(durations, deps or {})
    priority = chain_priority(dict(costs) if costs is not None else dict(durations), deps)
    pending, done, spans = list(durations), set(), {}
    running: dict = {}  # key -> end time
    now = 0.0
    while pending or running:
        for k in _take_ready(pending, done, deps, priority, workers - len(running)):
            running[k] = now + float(durations[k])
            spans[k] = (now, running[k])
        now = min(running.values())
        for k in [k for k, end in running.items() if end == now]:
            del running[k]
            done.add(k)
    return now, spans
