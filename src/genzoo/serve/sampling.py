"""One request's decoding inside a shared batch: its sampling options, the next token from its row of the batch's
scores, and its text as it grows (stop strings, incomplete characters held back).

The scores of a row go through the processors of `genzoo.generate` in the same order (`decode`): repetition
penalty, then eos masked before `min_tokens`, then, when sampling, temperature, top-k and top-p
(`generate.warp_logits`), and a draw from the request's own generator. With the same options and seed a request
decodes to the tokens `model.generate` gives that prompt alone, whatever else shares the batch. OpenAI's
presence / frequency penalties (logits - frequency * count - presence * [count > 0]) and `logit_bias` come after
the repetition penalty; at their defaults (0, none) they change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import InputError
from ..generate import penalise_repeats, warp_logits


@dataclass
class Sampling:
    """What a request asks of its decoding (validated by `check`, before it is queued)."""

    max_tokens: int = 16
    temperature: float = 1.0  # 0: greedy
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    min_tokens: int = 0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    eos: list[int] = field(default_factory=list)  # token ids that end the text (dropped from it)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def plain(self) -> bool:
        """Greedy with no score processing: the batch's argmax serves it."""
        return (self.greedy and self.repetition_penalty == 1.0 and not self.presence_penalty
                and not self.frequency_penalty and not self.logit_bias and not self.min_tokens)

    def check(self, vocab_size: int) -> None:
        if not (isinstance(self.max_tokens, int) and self.max_tokens >= 1):
            raise InputError(f"max_tokens must be an integer >= 1, got {self.max_tokens!r}")
        if not 0 <= self.temperature:
            raise InputError(f"temperature must be >= 0 (0: greedy), got {self.temperature!r}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.top_k is not None and self.top_k < 1:
            raise InputError(f"top_k must be >= 1, got {self.top_k!r}")
        if not self.repetition_penalty > 0:
            raise InputError(f"repetition_penalty must be > 0 (1: off), got {self.repetition_penalty!r}")
        if not 0 <= self.min_tokens <= self.max_tokens:
            raise InputError(f"min_tokens must be in [0, max_tokens={self.max_tokens}], got {self.min_tokens!r}")
        bad = [t for t in self.logit_bias if not 0 <= t < vocab_size]
        if bad:
            raise InputError(f"logit_bias: token ids {bad[:5]} are outside the vocabulary [0, {vocab_size})")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise InputError(f"stop: every stop string must be a non-empty string, got {self.stop!r}")


class RowSampler:
    """The per-request state the scores need: tokens seen (repetition penalty), counts (presence / frequency),
    new tokens so far, the generator."""

    def __init__(self, s: Sampling, prompt: list[int], vocab_size: int, device):
        self.s, self.n = s, 0
        self.eos = torch.tensor(s.eos, dtype=torch.long, device=device)
        self.seen = self.counts = self.bias = None
        if s.repetition_penalty != 1.0:  # (1, V): the prompt's tokens and every new one
            self.seen = torch.zeros(1, vocab_size, dtype=torch.bool, device=device)
            self.seen[0, prompt] = True
        if s.presence_penalty or s.frequency_penalty:
            self.counts = torch.zeros(1, vocab_size, device=device)
        if s.logit_bias:
            self.bias = torch.zeros(1, vocab_size, device=device)
            self.bias[0, list(s.logit_bias)] = torch.tensor(list(s.logit_bias.values()), device=device)
        self.generator = None
        if not s.greedy:
            self.generator = torch.Generator(device=device)
            if s.seed is not None:
                self.generator.manual_seed(s.seed)
            else:
                self.generator.seed()

    def choose(self, scores: torch.Tensor) -> int:
        """scores (1, V) float -> the next token id."""
        s = self.s
        if self.seen is not None:
            scores = penalise_repeats(scores, self.seen, s.repetition_penalty)
        if self.counts is not None:
            scores = scores - s.frequency_penalty * self.counts - s.presence_penalty * (self.counts > 0).float()
        if self.bias is not None:
            scores = scores + self.bias
        if self.n < s.min_tokens and len(self.eos):
            scores = scores.index_fill(1, self.eos, float("-inf"))
        if s.greedy:
            return int(scores.argmax(dim=-1))
        probs = warp_logits(scores, s.temperature, s.top_k, s.top_p).softmax(dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))

    def seen_token(self, token: int) -> None:
        self.n += 1
        if self.seen is not None:
            self.seen[0, token] = True
        if self.counts is not None:
            self.counts[0, token] += 1


def choose_batch(scores: torch.Tensor, samplers: list[RowSampler]) -> list[int]:
    """scores (n, V) -> the next token of each row: one argmax for the plain greedy rows, each other row by its
    own processors."""
    scores = scores.float()
    out = [0] * len(samplers)
    plain = [i for i, r in enumerate(samplers) if r.s.plain]
    if plain:
        for i, t in zip(plain, scores[plain].argmax(dim=-1).tolist()):
            out[i] = t
    for i, r in enumerate(samplers):
        if not r.s.plain:
            out[i] = r.choose(scores[i:i + 1])
    return out


class TextState:
    """The decoded text of a request's new tokens as they come: pieces to send, the stop strings found.

    Text is decoded after a few of the prompt's last tokens (`context`) and that prefix's text removed, so a
    tokenizer that drops the leading space of a first token (SentencePiece) writes the new text as it reads
    after the prompt. A piece ending in an incomplete character, or that could be the start of a stop string, is
    held back until the next tokens decide it; stop strings end the text before them (OpenAI's `stop`)."""

    def __init__(self, tokenizer, prompt: list[int], stop: list[str], context: int = 4):
        self.tok, self.stop = tokenizer, stop
        self.prefix = prompt[-context:]
        self.prefix_text = self._decode(self.prefix)
        self.ids: list[int] = []
        self.text = ""
        self.sent = 0
        self.hold = max((len(s) for s in stop), default=1) - 1  # a stop string found now starts at most this far
        self.stopped = False

    def _decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def add(self, token: int | None) -> str:
        """Add a new token (None: only re-read) -> the text that may be sent now."""
        if token is not None:
            self.ids.append(token)
        full = self._decode(self.prefix + self.ids)
        text = full[len(self.prefix_text):] if full.startswith(self.prefix_text) else self._decode(self.ids)
        if self.stop:
            search_from = max(0, len(self.text) - self.hold - 1)
            found = [k for s in self.stop if (k := text.find(s, search_from)) >= 0]
            if found:
                self.stopped = True
                text = text[:min(found)]
        self.text = text
        if self.stopped:
            return self.flush()
        safe = len(text) - self._held(text)
        if text.endswith("\ufffd"):
            safe = min(safe, len(text) - 1)
        if safe <= self.sent:
            return ""
        piece, self.sent = text[self.sent:safe], safe
        return piece

    def _held(self, text: str) -> int:
        """How many characters at the end of `text` could be the start of a stop string."""
        held = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(text)), held, -1):
                if text.endswith(s[:k]):
                    held = k
                    break
        return held

    def flush(self) -> str:
        """The rest of the text (the request has finished)."""
        piece, self.sent = self.text[self.sent:], len(self.text)
        return piece
