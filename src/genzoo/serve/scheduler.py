"""Continuous batching of a causal LM's decoding steps (Yu et al. 2022, Orca: iteration-level scheduling): one
thread owns the model and a static KV cache of `max_batch` rows (`slots.Slots`); between two decoding steps it
admits waiting requests (their prompts prefilled together, left-padded, as `generate` prefills a batch) and drops
the finished and the cancelled ones, so a request never waits for another to finish, and a client that goes away
frees its row at the next step.

Requests come from any thread (`submit`), their events go back through a callback (`Request.emit`): ("text",
piece), then ("done", finish_reason) or ("error", message). Limits: at most `max_queue` requests wait (`QueueFull`
beyond: the server answers 429); a request needs prompt + max_tokens <= the cache's length (checked at submit).
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..errors import InputError
from .sampling import RowSampler, Sampling, TextState, choose_batch
from .slots import Slots


class QueueFull(Exception):
    """More requests wait than the scheduler's max_queue."""


class Unavailable(Exception):
    """The scheduler is stopped or broken."""


_ids = itertools.count()


@dataclass
class Request:
    prompt: list[int]
    sampling: Sampling
    emit: Callable[[tuple], None]  # called from the scheduler thread
    id: int = field(default_factory=lambda: next(_ids))
    cancelled: bool = False
    submitted: float = field(default_factory=time.perf_counter)
    # set while decoding
    completion_tokens: int = 0
    finish_reason: str | None = None

    def cancel(self) -> None:
        """The client has gone: the scheduler frees its row before the next step."""
        self.cancelled = True


@dataclass
class Stats:
    steps: int = 0  # decoding forwards (one per step of the whole batch)
    prefills: int = 0  # prompt forwards (one per admitted group)
    prompt_tokens: int = 0
    tokens: int = 0  # new tokens produced
    finished: int = 0
    cancelled: int = 0
    peak_batch: int = 0
    row_steps: int = 0  # sum over steps of the rows decoded (mean batch = row_steps / steps)
    shifts: int = 0  # the running rows moved right for a longer prompt
    compactions: int = 0  # the running rows moved left to reuse the slots before the earliest start

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["mean_batch"] = round(self.row_steps / self.steps, 3) if self.steps else 0.0
        return d


class _Row:
    def __init__(self, req: Request, sampler: RowSampler, text: TextState, first: int):
        self.req, self.sampler, self.text, self.last = req, sampler, text, first


class Scheduler:
    def __init__(self, model, tokenizer, max_batch: int = 8, max_len: int | None = None, max_queue: int = 64,
                 max_prefill_tokens: int = 4096):
        self.model, self.tok = model, tokenizer
        self.max_batch, self.max_queue, self.max_prefill_tokens = max_batch, max_queue, max_prefill_tokens
        self.max_len = min(max_len or model.config.max_positions, model.config.max_positions)
        self.vocab = model.config.vocab_size
        self.device = next(model.parameters()).device
        self.pending: collections.deque[Request] = collections.deque()
        self.cond = threading.Condition()
        self.rows: list[_Row] = []
        self.slots: Slots | None = None
        self.stats = Stats()
        self.error: str | None = None
        self._stop = False
        self._thread: threading.Thread | None = None

    # ---- from any thread -----------------------------------------------------------------------------------
    def start(self) -> "Scheduler":
        self.model.eval()
        self.slots = Slots(self.model.make_cache(self.max_batch, self.max_len))
        self._thread = threading.Thread(target=self._run, name="genzoo-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        with self.cond:
            self._stop = True
            self.cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop

    def check(self, prompt: list[int], s: Sampling) -> None:
        """Refuse what can never run (before it is queued): empty prompt, ids out of range, too long."""
        if not prompt:
            raise InputError("the prompt is empty (no tokens)")
        bad = [t for t in prompt if not 0 <= t < self.vocab]
        if bad:
            raise InputError(f"prompt token ids {bad[:5]} are outside the vocabulary [0, {self.vocab})")
        s.check(self.vocab)
        if len(prompt) + s.max_tokens > self.max_len:
            raise InputError(f"prompt ({len(prompt)} tokens) + max_tokens ({s.max_tokens}) = "
                             f"{len(prompt) + s.max_tokens} exceeds this server's context of {self.max_len} tokens")

    def submit(self, req: Request) -> None:
        self.check(req.prompt, req.sampling)
        with self.cond:
            if not self.alive:
                raise Unavailable(self.error or "the decoding scheduler is not running")
            if len(self.pending) >= self.max_queue:
                raise QueueFull(f"{len(self.pending)} requests are waiting (max_queue={self.max_queue})")
            self.pending.append(req)
            self.cond.notify_all()

    def load(self) -> dict:
        return {"running": len(self.rows), "waiting": len(self.pending), "max_batch": self.max_batch,
                "max_queue": self.max_queue, "context": self.max_len}

    # ---- the scheduler thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            with torch.inference_mode():
                while True:
                    with self.cond:
                        while not self._stop and not self.pending and not self.rows:
                            self.cond.wait()
                        if self._stop:
                            break
                    self._drop_cancelled()
                    self._admit()
                    if self.rows:
                        self._step()
        except Exception as e:  # a bug or an out-of-memory: every request gets the error, new ones a 503
            self.error = f"decoding failed: {type(e).__name__}: {e}"
            for r in self.rows:
                r.req.emit(("error", self.error))
            self._stop = True
            for req in self._take_pending():
                req.emit(("error", self.error))
            raise
        for r in self.rows:
            r.req.emit(("error", "the server is shutting down"))
        for req in self._take_pending():
            req.emit(("error", "the server is shutting down"))

    def _take_pending(self) -> list[Request]:
        with self.cond:
            out = list(self.pending)
            self.pending.clear()
        return out

    def _drop_cancelled(self) -> None:
        for i in reversed(range(len(self.rows))):
            if self.rows[i].req.cancelled:
                self._finish(i, "cancelled")
        with self.cond:
            if any(r.cancelled for r in self.pending):
                gone = [r for r in self.pending if r.cancelled]
                self.pending = collections.deque(r for r in self.pending if not r.cancelled)
                self.stats.cancelled += len(gone)

    def _span(self, new: list[Request]) -> tuple[int, int]:
        """(earliest start, latest end) of the running rows and `new` once `new` has joined: a row needs its slots
        up to the last token it may write (start + prompt + max_tokens - 1)."""
        s = self.slots
        length = max([s.length if self.rows else 0] + [len(q.prompt) for q in new])
        shift = length - (s.length if self.rows else 0)  # a longer prompt moves the running rows right
        starts = [st + shift for st in s.start]
        ends = [st + len(r.req.prompt) + r.req.sampling.max_tokens - 1 for st, r in zip(starts, self.rows)]
        starts += [length - len(q.prompt) for q in new]
        ends += [length + q.sampling.max_tokens - 1 for q in new]
        return min(starts), max(ends)

    def _fits(self, new: list[Request]) -> bool:
        first, last = self._span(new)
        return last - first <= self.slots.max_len

    def _admit(self) -> None:
        group: list[Request] = []
        with self.cond:
            while self.pending and len(self.rows) + len(group) < self.max_batch:
                q = self.pending[0]
                tokens = max([len(x.prompt) for x in group + [q]]) * (len(group) + 1)
                if group and tokens > self.max_prefill_tokens:
                    break
                if not self._fits(group + [q]):
                    break  # first come, first served: it waits for rows to finish
                group.append(self.pending.popleft())
        if group:
            self._prefill(group)

    def _prefill(self, group: list[Request]) -> None:
        """One forward over the new prompts (left-padded, positions counting real tokens, as `generate` prefills
        a batch); their keys and values go into free rows of the shared cache; their first tokens are chosen."""
        s, model = self.slots, self.model
        p = max(len(q.prompt) for q in group)
        ids = torch.full((len(group), p), 0, dtype=torch.long, device=self.device)  # (G, P)
        mask = torch.zeros(len(group), p, dtype=torch.long, device=self.device)
        for i, q in enumerate(group):
            ids[i, p - len(q.prompt):] = torch.tensor(q.prompt, device=self.device)
            mask[i, p - len(q.prompt):] = 1
        padded = not bool(mask.all())
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0) if padded else None  # (G, P)
        cache = model.make_cache(len(group), p, key_valid=mask if padded else None)
        logits = model(ids, position_ids=position_ids, cache=cache, logits_to_keep=1, check=False).logits[:, -1]
        self.stats.prefills += 1
        self.stats.prompt_tokens += int(mask.sum())

        if not self.rows:
            s.reset(p)
        else:
            if self._span(group)[1] > s.max_len:
                s.compact()
                self.stats.compactions += 1
            if p > s.length:
                s.shift(p - s.length)
                self.stats.shifts += 1
        new = []
        for i, q in enumerate(group):
            s.place(cache, i, len(q.prompt))
            sampler = RowSampler(q.sampling, q.prompt, self.vocab, self.device)
            row = _Row(q, sampler, TextState(self.tok, q.prompt, q.sampling.stop), first=-1)
            self.rows.append(row)
            new.append(len(self.rows) - 1)
        tokens = choose_batch(logits, [self.rows[i].sampler for i in new])
        self._advance(new, tokens)

    def _step(self) -> None:
        s = self.slots  # admission keeps every row's last slot inside the cache (`_span`): no room check here
        n = len(self.rows)
        tok = torch.tensor([[r.last] for r in self.rows], device=self.device)  # (n, 1)
        view = s.view()
        logits = self.model(tok, position_ids=s.positions(), cache=view, logits_to_keep=1, check=False).logits
        s.cache.length = view.length
        self.stats.steps += 1
        self.stats.row_steps += n
        self.stats.peak_batch = max(self.stats.peak_batch, n)
        tokens = choose_batch(logits[:, -1], [r.sampler for r in self.rows])  # (n, V) -> n ids
        self._advance(list(range(n)), tokens)

    def _advance(self, which: list[int], tokens: list[int]) -> None:
        """Append each row's new token; send its text; finish rows on eos, a stop string or max_tokens."""
        done = []
        for i, t in zip(which, tokens):
            row = self.rows[i]
            req, s = row.req, row.sampler.s
            row.sampler.seen_token(t)
            req.completion_tokens += 1
            self.stats.tokens += 1
            row.last = t
            if t in s.eos:
                done.append((i, "stop"))
                continue
            piece = row.text.add(t)
            if piece:
                req.emit(("text", piece))
            if row.text.stopped:
                done.append((i, "stop"))
            elif req.completion_tokens >= s.max_tokens:
                done.append((i, "length"))
        for i, reason in sorted(done, reverse=True):
            self._finish(i, reason)

    def _finish(self, i: int, reason: str) -> None:
        row = self.rows[i]
        if reason != "cancelled":
            piece = row.text.flush()
            if piece:
                row.req.emit(("text", piece))
            row.req.finish_reason = reason
            row.req.emit(("done", reason))
            self.stats.finished += 1
        else:
            self.stats.cancelled += 1
        self.slots.remove(i)
        last = self.rows.pop()
        if i < len(self.rows):
            self.rows[i] = last
