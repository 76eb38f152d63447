"""The model calls that are not decoding steps (embeddings, NER, classification, images, index queries) run on one
worker thread, in arrival order, so they never compete with each other for the model or the CPU. Jobs with the
same batch key whose inputs are lists (embeddings of one model) are run together, in one call, when they wait
together (dynamic batching), and their results are split back. At most `max_queue` jobs wait; more get
`QueueFull` (429)."""

from __future__ import annotations

import asyncio
import collections
import threading
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .scheduler import QueueFull, Unavailable


@dataclass
class _Job:
    fn: Callable
    items: list | None  # batchable inputs (fn(items) -> one result per item), or None (fn())
    key: Any
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


class Worker:
    def __init__(self, max_queue: int = 64, max_batch_items: int = 256):
        self.max_queue, self.max_batch_items = max_queue, max_batch_items
        self.jobs: collections.deque[_Job] = collections.deque()
        self.cond = threading.Condition()
        self.batches = 0  # calls run (a batch counts once)
        self.batched_jobs = 0  # jobs that shared a call with another
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="genzoo-worker", daemon=True)

    def start(self) -> "Worker":
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        with self.cond:
            self._stop = True
            self.cond.notify_all()
        self._thread.join(timeout)

    def call(self, fn: Callable, timeout: float | None = None):
        """Run fn() on the worker thread now and wait for it (startup work: opening an index)."""
        done, out = threading.Event(), {}

        def job(_):
            try:
                out["value"] = fn()
            except BaseException as e:  # handed back to the caller
                out["error"] = e
            done.set()

        with self.cond:
            self.jobs.append(_Job(job, None, None, None, None))
            self.cond.notify_all()
        done.wait(timeout)
        if "error" in out:
            raise out["error"]
        return out.get("value")

    async def run(self, fn: Callable, items: list | None = None, key: Any = None):
        """fn() (items None), or fn(items) -> a list with one result per item, batched with the waiting jobs of
        the same key."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self.cond:
            if self._stop or not self._thread.is_alive():
                raise Unavailable("the worker is not running")
            if len(self.jobs) >= self.max_queue:
                raise QueueFull(f"{len(self.jobs)} requests are waiting (max_queue={self.max_queue})")
            self.jobs.append(_Job(fn, items, key, loop, fut))
            self.cond.notify_all()
        return await fut

    def _take(self) -> list[_Job] | None:
        with self.cond:
            while not self._stop and not self.jobs:
                self.cond.wait()
            if self._stop:
                return None
            first = self.jobs.popleft()
            group = [first]
            if first.items is not None and first.key is not None:
                n = len(first.items)
                for job in list(self.jobs):
                    if job.key == first.key and job.items is not None and n + len(job.items) <= self.max_batch_items:
                        self.jobs.remove(job)
                        group.append(job)
                        n += len(job.items)
            return group

    def _run(self) -> None:
        while (group := self._take()) is not None:
            group = [j for j in group if j.future is None or not j.future.cancelled()]
            if not group:
                continue
            self.batches += 1
            self.batched_jobs += len(group) if len(group) > 1 else 0
            try:
                with torch.inference_mode():
                    if group[0].items is None:
                        results = [group[0].fn(None) if group[0].future is None else group[0].fn()]
                    else:
                        flat = [x for j in group for x in j.items]
                        out = group[0].fn(flat)
                        results, i = [], 0
                        for j in group:
                            results.append(out[i:i + len(j.items)])
                            i += len(j.items)
                for j, r in zip(group, results):
                    self._resolve(j, r, None)
            except Exception as e:  # handed to the requests (the route turns genzoo errors into 400)
                for j in group:
                    self._resolve(j, None, e)

    @staticmethod
    def _resolve(job: _Job, value, error) -> None:
        if job.future is None:
            return

        def set_it():
            if not job.future.done():
                job.future.set_exception(error) if error is not None else job.future.set_result(value)

        try:
            job.loop.call_soon_threadsafe(set_it)
        except RuntimeError:  # the event loop has closed (shutdown)
            pass
