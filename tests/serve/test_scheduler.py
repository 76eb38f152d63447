"""Continuous batching (genzoo.serve.scheduler): requests that join and leave a running batch decode to the tokens
`model.generate` gives each prompt alone (greedy and seeded sampling, repetition penalty, min_new_tokens, eos), for
rotary (Llama), learned (GPT-2) and sliding-window (Mistral) positions, through the cache's shifts and
compactions; cancelled requests free their rows; limits refuse before any compute."""

import threading
import time

import pytest
import torch

import genzoo
from genzoo.errors import InputError
from genzoo.serve.sampling import Sampling, TextState
from genzoo.serve.scheduler import QueueFull, Request, Scheduler, Unavailable
from genzoo.serve.slots import Slots
from genzoo.nn import StaticKVCache
from genzoo.tokenizers import Tokenizer

from .conftest import collect, tiny_lm_dir

PROMPTS = ["the cab", "Hello there, ab cd", "x", "a longer prompt: abcdefghij klmno", "q?"]
# (scheduler sampling, generate options): greedy, seeded sampling with top-k / top-p, penalties and eos
CASES = [
    (dict(temperature=0), dict()),
    (dict(temperature=0.8, top_k=20, seed=3), dict(do_sample=True, temperature=0.8, top_k=20, seed=3)),
    (dict(temperature=0, repetition_penalty=1.5, min_tokens=4, eos=[1]),
     dict(repetition_penalty=1.5, min_new_tokens=4, eos_token_id=1)),
    (dict(temperature=1.0, top_p=0.9, seed=7), dict(do_sample=True, top_p=0.9, seed=7)),
]


class Events:
    def __init__(self):
        self.items, self.done = [], threading.Event()

    def __call__(self, event):
        self.items.append(event)
        if event[0] in ("done", "error"):
            self.done.set()


def submit(sched, tok, prompt, **sampling):
    ev = Events()
    req = Request(tok.encode(prompt), Sampling(**sampling), ev)
    sched.submit(req)
    return req, ev


def drive(sched, arrivals: dict, steps: int = 400) -> None:
    """Run the scheduler's loop on this thread, step by step: arrivals[i] are queued before step i (a fixed
    schedule of joins, so the test does not depend on timing)."""
    with torch.inference_mode():
        for i in range(steps):
            for req in arrivals.get(i, []):
                sched.check(req.prompt, req.sampling)
                sched.pending.append(req)
            sched._drop_cancelled()
            sched._admit()
            if sched.rows:
                sched._step()
            elif not sched.pending and i > max(arrivals):
                return


@pytest.mark.parametrize("arch", ["llama", "gpt2", "mistral"])
def test_batched_rows_decode_as_each_alone(tmp_path, arch):
    d = tiny_lm_dir(tmp_path, arch)
    model, tok = genzoo.load(d), Tokenizer.load(d)
    model.eval()
    # 3 rows, a 56-slot cache, a request every 3 steps: rows join mid-flight, a longer prompt shifts the batch
    # right, a request that would pass the cache's end compacts it, one waits until rows finish
    sched = Scheduler(model, tok, max_batch=3, max_len=56)
    sched.slots = Slots(model.make_cache(3, 56))
    jobs, arrivals = [], {}
    for i in range(14):
        prompt = PROMPTS[i % len(PROMPTS)]
        new = 4 + (7 * i) % 21
        ours, theirs = CASES[i % len(CASES)]
        ev = Events()
        req = Request(tok.encode(prompt), Sampling(max_tokens=new, **ours), ev)
        arrivals.setdefault(3 * i, []).append(req)
        jobs.append((prompt, new, theirs, ev))
    drive(sched, arrivals)
    for prompt, new, theirs, ev in jobs:
        assert ev.done.is_set(), "a request did not finish"
        text, last = collect(ev.items)
        ids = torch.tensor([tok.encode(prompt)])
        want = model.generate(ids, max_new_tokens=new, **theirs)[0, ids.shape[1]:].tolist()
        want = [t for t in want if t != 1]  # eos ends the text and is not in it
        assert text == tok.decode(want, skip_special_tokens=True), (prompt, theirs)
        assert last[0] == "done" and last[1] in ("length", "stop")
    stats = sched.stats
    assert stats.finished == 14 and stats.peak_batch == 3
    assert stats.row_steps > 1.5 * stats.steps  # rows shared decoding steps
    assert stats.shifts > 0 and stats.compactions > 0, stats  # both layout moves ran


def test_scheduler_thread_serves_concurrent_requests(llama_dir):
    model, tok = genzoo.load(llama_dir), Tokenizer.load(llama_dir)
    sched = Scheduler(model, tok, max_batch=4, max_len=64).start()
    try:
        jobs = [(p, *submit(sched, tok, p, max_tokens=6 + i, temperature=0)) for i, p in enumerate(PROMPTS * 2)]
        for i, (prompt, req, ev) in enumerate(jobs):
            assert ev.done.wait(60)
            ids = torch.tensor([tok.encode(prompt)])
            want = model.generate(ids, max_new_tokens=6 + i)[0, ids.shape[1]:].tolist()
            assert collect(ev.items) == (tok.decode(want, skip_special_tokens=True), ("done", "length"))
        assert sched.stats.peak_batch > 1
    finally:
        sched.stop()
    assert not sched.alive


def test_slots_keep_each_rows_keys_through_moves():
    """place / shift / compact / remove move whole rows: each running row's cached positions and mask stay its own."""
    cache = StaticKVCache(2, 3, 1, 10, 2)
    s = Slots(cache)
    s.reset(4)

    def prompt_cache(p, value):
        c = StaticKVCache(2, 1, 1, p, 2)
        for buf in (*c.k, *c.v):
            buf.fill_(value)
        c.length = p
        return c

    s.place(prompt_cache(4, 1.0), 0, 4)  # row 0 at [0, 4)
    s.place(prompt_cache(2, 2.0), 0, 2)  # row 1 at [2, 4)
    assert s.start == [0, 2] and s.valid[1, :2].tolist() == [False, False] and bool(s.valid[1, 2:].all())
    s.shift(3)  # a 7-token prompt is coming
    assert s.length == 7 and s.start == [3, 5]
    assert torch.all(cache.k[1][0, :, 3:7] == 1) and torch.all(cache.k[1][1, :, 5:7] == 2)
    assert not s.valid[0, :3].any() and bool(s.valid[0, 3:].all())
    s.place(prompt_cache(7, 3.0), 0, 7)  # row 2 at [0, 7)
    s.remove(0)  # row 2 moves into row 0
    assert s.start == [0, 5] and torch.all(cache.v[0][0, :, :7] == 3) and bool(s.valid[0].all())
    s.remove(0)
    s.compact()  # only row 1 (start 5) is left
    assert s.start == [0] and s.length == 2 and torch.all(cache.k[0][0, :, :2] == 2)
    assert s.positions() is None and s.view().key_valid is None  # the unpadded fast path, as generate alone


def test_cancel_frees_the_row_and_limits_refuse(llama_dir):
    model, tok = genzoo.load(llama_dir), Tokenizer.load(llama_dir)
    sched = Scheduler(model, tok, max_batch=1, max_len=96, max_queue=1)
    with pytest.raises(Unavailable):  # not started
        submit(sched, tok, "the cab", max_tokens=4, temperature=0)
    sched.start()
    try:
        with pytest.raises(InputError, match="exceeds this server's context of 96"):
            submit(sched, tok, "the cab", max_tokens=95, temperature=0)
        with pytest.raises(InputError, match="outside the vocabulary"):
            sched.submit(Request([5, 500], Sampling(max_tokens=2), Events()))
        with pytest.raises(InputError, match="empty"):
            sched.submit(Request([], Sampling(max_tokens=2), Events()))
        with pytest.raises(InputError, match="top_p"):
            submit(sched, tok, "the cab", max_tokens=4, top_p=1.5)
        long, long_ev = submit(sched, tok, "the cab", max_tokens=90, temperature=0)
        deadline = time.monotonic() + 30
        while not (sched.rows and long.completion_tokens) and time.monotonic() < deadline:
            time.sleep(0.002)
        waiting, waiting_ev = submit(sched, tok, "x", max_tokens=3, temperature=0)  # max_batch 1: it waits
        with pytest.raises(QueueFull):
            submit(sched, tok, "y", max_tokens=3, temperature=0)
        long.cancel()
        assert waiting_ev.done.wait(30)  # the cancelled row made room
        assert collect(waiting_ev.items)[1] == ("done", "length")
        assert not long_ev.done.is_set() and long.completion_tokens < 90
        assert sched.stats.cancelled == 1 and not sched.rows and not sched.pending
    finally:
        sched.stop()


class Chars:
    """A tokenizer whose ids are characters (one token per character, 0xFFFD for an incomplete one)."""

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i) for i in ids)


def test_text_state_holds_back_stop_strings_and_cuts_them():
    text = TextState(Chars(), [ord("p")], stop=["END", "\n\n"])
    assert [text.add(ord(c)) for c in "ab E"] == ["a", "b", " ", ""]  # "E" could start "END": held back
    assert text.add(ord("x")) == "Ex"  # it did not
    assert [text.add(ord(c)) for c in "yEN"] == ["y", "", ""]
    assert text.add(ord("D")) == "" and text.stopped and text.text == "ab Exy"  # cut before the stop string
    plain = TextState(Chars(), [], stop=[])
    assert plain.add(0xFFFD) == "" and plain.add(ord("a")) == "\ufffda"  # an incomplete character waits
