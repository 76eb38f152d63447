"""Autoregressive generation: greedy, temperature, top-k, top-p, repetition penalty, min_new_tokens, eos and
stop strings, num_return_sequences, batches of prompts of different lengths (left padding; right padding is
converted), reproducible seeded sampling, streaming (a `streamer=` or the `stream()` iterator), an optional compiled
decoding step.

One decoding loop (`decode`) serves causal LMs (`GenerationMixin.generate`) and encoder-decoders
(`Seq2SeqLM.generate`); only the step differs. For a causal LM the prompt is prefilled in one forward pass
that writes a static KV cache; each new token then costs one forward of a single position through that
cache. Returns what `transformers` returns for the same call: the prompt (the decoder start token for
seq2seq) followed by the new tokens, finished rows filled with the pad token, stopping early once every row
has produced eos (or a stop string). Each step's scores go through transformers' logits processors in its order:
repetition penalty (Keskar et al. 2019, arXiv:1909.05858, eq. 1 as transformers implements it: a seen token's logit
is divided by the penalty when positive, multiplied when negative), min_new_tokens (eos masked), then, when
sampling, temperature, top-k and top-p.
"""

from __future__ import annotations

import functools
import types
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from .errors import InputError
from .modes import evaluating


def warp_logits(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Temperature, then top-k, then top-p (nucleus, Holtzman et al. 2020) filtering, in the order and
    with the tie rules of `transformers`' logits warpers. logits: (B, V) -> (B, V)."""
    if temperature != 1.0:
        logits = logits / temperature
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cum <= (1 - top_p)
        remove[..., -1] = False  # keep at least the most likely token
        logits = logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    return logits


def penalise_repeats(scores: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """transformers' RepetitionPenaltyLogitsProcessor: scores (B, V) of tokens already in the sequence (seen (B, V):
    the prompt's real tokens and the new ones) divided by `penalty` where positive, multiplied where negative."""
    return torch.where(seen, torch.where(scores < 0, scores * penalty, scores / penalty), scores)


def check_sampling(temperature: float, top_k: int | None, top_p: float | None, max_new_tokens: int) -> None:
    if not (isinstance(max_new_tokens, int) and max_new_tokens > 0):
        raise InputError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if not (isinstance(temperature, (int, float)) and 0 < temperature < float("inf")):
        raise InputError(f"temperature must be > 0 and finite, got {temperature!r} (greedy: do_sample=False)")
    if top_k is not None and not (isinstance(top_k, int) and top_k > 0):
        raise InputError(f"top_k must be a positive integer or None, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise InputError(f"top_p must be in (0, 1], got {top_p!r}")


def eos_ids(eos_token_id: int | list[int] | None, device) -> torch.Tensor:
    """The stop tokens as a (K,) tensor (K = 0: no stop token)."""
    ids = [] if eos_token_id is None else [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    return torch.tensor(ids, dtype=torch.long, device=device)


@dataclass
class Decoding:
    """What one generate call asks of the decoding loop, checked before any compute (`Decoding.make`)."""

    max_new_tokens: int = 20
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    min_new_tokens: int = 0
    num_return_sequences: int = 1
    eos_token_id: Any = None  # int, list of ints or None
    pad_token_id: int | None = None
    stop: Any = None  # stopping.StopStrings or None
    streamer: Any = None  # anything with put(tokens) and end(), as transformers' streamers
    seed: int | None = None
    generator: torch.Generator | None = None
    logits_processor: Any = None  # callable(input_ids (B, t), scores (B, V)) -> scores, as transformers' processors

    @classmethod
    def make(cls, max_new_tokens: int = 20, do_sample: bool = False, temperature: float = 1.0, top_k=None,
             top_p=None, repetition_penalty: float = 1.0, min_new_tokens: int = 0, num_return_sequences: int = 1,
             eos_token_id=None, pad_token_id=None, stop=None, tokenizer=None, streamer=None, seed=None,
             generator=None, logits_processor=None) -> "Decoding":
        from .stopping import StopStrings

        check_sampling(temperature, top_k, top_p, max_new_tokens)
        if not (isinstance(repetition_penalty, (int, float)) and repetition_penalty > 0):
            raise InputError(f"repetition_penalty must be a number > 0 (1.0: off), got {repetition_penalty!r}")
        if not (isinstance(min_new_tokens, int) and 0 <= min_new_tokens):
            raise InputError(f"min_new_tokens must be an integer >= 0, got {min_new_tokens!r}")
        if not (isinstance(num_return_sequences, int) and num_return_sequences >= 1):
            raise InputError(f"num_return_sequences must be a positive integer, got {num_return_sequences!r}")
        if streamer is not None and not (hasattr(streamer, "put") and hasattr(streamer, "end")):
            raise InputError(f"streamer must have put(tokens) and end() (as transformers' streamers); got "
                             f"{type(streamer).__name__}")
        if logits_processor is not None and not callable(logits_processor):
            raise InputError(f"logits_processor must be callable(input_ids, scores) -> scores; got "
                             f"{type(logits_processor).__name__}")
        stops = None
        if stop is not None:
            stops = stop if isinstance(stop, StopStrings) else StopStrings(stop, tokenizer)
        return cls(max_new_tokens, do_sample, temperature, top_k, top_p, float(repetition_penalty), min_new_tokens,
                   num_return_sequences, eos_token_id, pad_token_id, stops, streamer, seed, generator, logits_processor)

    def check_return_sequences(self, num_beams: int = 1) -> None:
        if self.num_return_sequences > 1 and not self.do_sample and num_beams == 1:
            raise InputError(f"num_return_sequences={self.num_return_sequences} with greedy decoding would return "
                             "identical rows; sample (do_sample=True) or use beam search (num_beams >= "
                             "num_return_sequences)")
        if num_beams > 1 and self.num_return_sequences > num_beams:
            raise InputError(f"num_return_sequences={self.num_return_sequences} must be <= num_beams={num_beams}")

    def rng(self, device) -> torch.Generator | None:
        if self.do_sample and self.generator is None and self.seed is not None:
            return torch.Generator(device=device).manual_seed(self.seed)
        return self.generator


def decode(step, logits: torch.Tensor, out: torch.Tensor, t: int, d: Decoding, eos: torch.Tensor, pad: int,
           generator=None, prompt_mask: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """The decoding loop, as a generator: yields each step's tokens (B,) and returns `out` up to the last position
    written (every row finished, or max_new_tokens reached); `drain` runs it to the end.

    logits (B, V): the scores for position t; out (B, t + max_new_tokens) holds the t tokens so far (the prompt);
    step(tok (B,)) runs the model on the chosen tokens and returns the scores that follow (B, V); prompt_mask (B, t):
    the prompt's real tokens (padding is not penalised as a repeat)."""
    b = out.shape[0]
    finished = torch.zeros(b, dtype=torch.bool, device=out.device)
    stopping = len(eos) > 0 or d.stop is not None
    seen = None
    if d.repetition_penalty != 1.0:  # (B, V): every token of the sequence so far, the prompt's padding left out
        v = logits.shape[-1]
        prompt = out[:, :t] if prompt_mask is None else out[:, :t].masked_fill(~prompt_mask.bool(), v)  # pad -> v
        seen = torch.zeros(b, v + 1, dtype=torch.bool, device=out.device).scatter_(1, prompt, True)[:, :v]
    if d.streamer is not None:
        d.streamer.put(out[:, :t].cpu())
    i = 0
    for i in range(d.max_new_tokens):
        scores = logits.float()
        if seen is not None:
            scores = penalise_repeats(scores, seen, d.repetition_penalty)
        if i < d.min_new_tokens and len(eos):
            scores = scores.index_fill(1, eos, float("-inf"))
        if d.logits_processor is not None:  # last of the processors, before the warpers (a grammar, say)
            scores = d.logits_processor(out[:, : t + i], scores)
        if d.do_sample:
            probs = warp_logits(scores, d.temperature, d.top_k, d.top_p).softmax(dim=-1)
            tok = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B,)
        else:
            tok = scores.argmax(dim=-1)  # (B,)
        if stopping:
            tok = torch.where(finished, torch.full_like(tok, pad), tok)
        out[:, t + i] = tok
        if len(eos):
            finished |= torch.isin(tok, eos)
        if d.stop is not None:
            finished |= d.stop(out[:, : t + i + 1], ~finished)
        if seen is not None:
            seen.scatter_(1, tok[:, None], True)
        if d.streamer is not None:
            d.streamer.put(tok.cpu())
        yield tok
        if (stopping and bool(finished.all())) or i == d.max_new_tokens - 1:
            break
        logits = step(tok)
    if d.streamer is not None:
        d.streamer.end()
    return out[:, : t + i + 1]


def drain(steps: Iterator[torch.Tensor]) -> torch.Tensor:
    """Run a decoding generator to its end; -> what it returns (the token ids)."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def iterate(steps: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
    """The tokens (B,) of a decoding generator as they come, each step run under `torch.inference_mode` (and the
    caller's code between steps outside it)."""
    while True:
        with torch.inference_mode():
            try:
                tok = next(steps)
            except StopIteration:
                return
        yield tok.clone()


def inference(fn):
    """Run `fn` under `torch.inference_mode` (no autograd bookkeeping: no version counters or view tracking per
    op, a visible share of a decoding step at batch 1) and clone the tensor it returns out of it, so callers get
    an ordinary tensor that a training step may use."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.inference_mode():
            out = fn(*args, **kwargs)
        return out.clone()

    return wrapper


def _call(model, *args, **kwargs):
    return model(*args, **kwargs)


_COMPILED: "weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, Callable]]" = weakref.WeakKeyDictionary()


def shape_bucket(model: torch.nn.Module, batch: int) -> tuple:
    """What a compiled decoding step is specialised on besides the lengths, which stay symbolic: batch 1 or more
    (torch.compile specialises 0/1 sizes), the parameters' dtype and device, and the autocast dtype in force."""
    p = next(model.parameters())
    amp = torch.get_autocast_dtype(p.device.type) if torch.is_autocast_enabled(p.device.type) else None
    return (1 if batch == 1 else "batch>1", p.dtype, p.device, amp)


def compiled_step(model: torch.nn.Module, batch: int) -> Callable:
    """`model(...)` through torch.compile (inductor), cached per model and shape bucket (`shape_bucket`): lengths are
    dynamic, so one compilation serves every prompt and cache length of a bucket. Each entry is a fresh copy of the
    step's code, so dynamo's guard cache (and its recompile limit, 8 by default) is per model and bucket rather
    than shared by every model of a process; an entry goes with its model (weak keys). Built on first use, so
    importing genzoo does not import the compiler."""
    per_model = _COMPILED.setdefault(model, {})
    key = shape_bucket(model, batch)
    if key not in per_model:
        code = _call.__code__.replace()  # a distinct code object: its own dynamo cache
        per_model[key] = torch.compile(types.FunctionType(code, _call.__globals__, "compiled_step"), dynamic=True)
    return functools.partial(per_model[key], model)


def to_left_padding(input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """A right-padded batch (each mask row ones then zeros) as the left-padded one (zeros then ones) that causal
    decoding needs; a left-padded or unpadded batch is returned as it is. A row with a hole (0 between 1s) or with
    no token at all is an InputError."""
    mask = attention_mask.long()
    n = mask.sum(-1)  # (B,) real tokens per row
    if bool((n == 0).any()):
        raise InputError(f"attention_mask row {int((n == 0).nonzero()[0])} has no real token")
    t = mask.shape[1]
    pos = torch.arange(t, device=mask.device)
    left = mask == (pos[None] >= t - n[:, None]).long()  # (B, T) the row is zeros then ones
    if bool(left.all()):
        return input_ids, attention_mask
    right = mask == (pos[None] < n[:, None]).long()
    bad = ~(left.all(-1) | right.all(-1))
    if bool(bad.any()):
        raise InputError(f"attention_mask row {int(bad.nonzero()[0])} has padding between real tokens; give left "
                         "or right padding")
    index = (pos[None] - (t - n[:, None])) % t  # (B, T) each row rolled right by its padding
    return input_ids.gather(1, index), attention_mask.gather(1, index)


class GenerationMixin:
    """Adds `generate` and `stream` to a causal LM that has `check_inputs`, `make_cache` and a cache-aware forward."""

    @inference
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        eos_token_id: int | list[int] | None = None,
        pad_token_id: int | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        compile: bool = False,
        repetition_penalty: float = 1.0,
        min_new_tokens: int = 0,
        num_return_sequences: int = 1,
        stop: str | list[str] | None = None,
        tokenizer=None,
        streamer=None,
        logits_processor=None,
    ) -> torch.Tensor:
        """input_ids (B, T), padded where attention_mask (B, T) is 0 -> (B * num_return_sequences, T + N),
        N <= max_new_tokens. Left padding is used as it is; a right-padded batch (what `Tokenizer.batch` returns by
        default) is converted to left padding first, so the rows come back left-padded.

        repetition_penalty: > 1 discourages tokens already in the sequence (transformers' processor).
        min_new_tokens: eos cannot end a row before this many new tokens.
        num_return_sequences: sampled continuations per prompt (rows i*n .. i*n+n-1 continue prompt i).
        stop: a string or list of strings that end a row once generated (transformers' `stop_strings`: the row
        stops at the token that completes the string, which may run past it); needs `tokenizer` (decode).
        streamer: put(tokens) is called with the prompt, then each step's tokens (B,); end() at the end
        (transformers' streamer protocol: `genzoo.streamers.TextStreamer` or transformers' own).
        logits_processor: callable(input_ids (B, t), scores (B, V)) -> scores, applied to each step's scores after
        the repetition penalty and min_new_tokens (transformers' LogitsProcessor protocol; a grammar that masks
        tokens, say).
        compile: run the single-token decoding step through torch.compile (`compiled_step`): elementwise ops
        fused into generated kernels, no Python between them. The first call with a model compiles it (tens of
        seconds on a 2-core CPU), later calls reuse it; the prompt's forward stays eager."""
        d = Decoding.make(max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_k=top_k,
                          top_p=top_p, repetition_penalty=repetition_penalty, min_new_tokens=min_new_tokens,
                          num_return_sequences=num_return_sequences, eos_token_id=eos_token_id,
                          pad_token_id=pad_token_id, stop=stop, tokenizer=tokenizer, streamer=streamer, seed=seed,
                          generator=generator, logits_processor=logits_processor)
        return drain(self.decoding(input_ids, attention_mask, d, compile))

    def stream(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, compile: bool = False,
               **options) -> Iterator[torch.Tensor]:
        """The new tokens (B,) one step at a time, as an iterator; options as `generate` (`Decoding.make`).
        Bad input raises here, before the first token."""
        return iterate(self.decoding(input_ids, attention_mask, Decoding.make(**options), compile))

    def decoding(self, input_ids, attention_mask, d: Decoding, compile: bool = False) -> Iterator[torch.Tensor]:
        """Check the inputs (now), then return the decoding generator (`generate.decode`), which prefills on its
        first step."""
        d.check_return_sequences()
        self.check_inputs(input_ids, attention_mask)
        if attention_mask is not None:
            input_ids, attention_mask = to_left_padding(input_ids, attention_mask)
        if d.num_return_sequences > 1:  # as transformers: each prompt repeated in place
            input_ids = input_ids.repeat_interleave(d.num_return_sequences, 0)
            attention_mask = None if attention_mask is None else attention_mask.repeat_interleave(
                d.num_return_sequences, 0)
        t = input_ids.shape[1]
        total = t + d.max_new_tokens
        if total > self.config.max_positions:
            raise InputError(
                f"prompt length {t} + max_new_tokens {d.max_new_tokens} = {total} exceeds "
                f"max_positions={self.config.max_positions}"
            )
        return self._decode(input_ids, attention_mask, d, compile)

    def _decode(self, input_ids, attention_mask, d: Decoding, compile: bool):
        b, t = input_ids.shape
        total = t + d.max_new_tokens
        device = input_ids.device
        eos = eos_ids(d.eos_token_id, device)
        pad = d.pad_token_id if d.pad_token_id is not None else (int(eos[0]) if len(eos) else 0)

        padded = attention_mask is not None and not bool(attention_mask.all())
        position_ids = None
        if padded:  # positions count real tokens only: a padded row sees what it would see alone
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
        with evaluating(self):
            cache = self.make_cache(b, total, key_valid=attention_mask if padded else None)
            out = input_ids.new_empty(b, total)
            out[:, :t] = input_ids
            logits = self(input_ids, position_ids=position_ids, cache=cache, logits_to_keep=1, check=False).logits
            model = compiled_step(self, b) if compile else self
            next_pos = position_ids[:, -1:] + 1 if padded else None  # (B, 1), advanced by each step

            def step(tok):  # (B,) -> (B, V)
                nonlocal next_pos
                logits = model(tok[:, None], position_ids=next_pos, cache=cache, logits_to_keep=1, check=False).logits
                if padded:
                    next_pos = next_pos + 1
                return logits[:, -1]

            return (yield from decode(step, logits[:, -1], out, t, d, eos, pad, d.rng(device), attention_mask))
