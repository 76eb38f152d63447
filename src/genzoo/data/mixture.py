"""Gato's training mixture (arXiv 2205.06175, sec. 2.3 and 3): every task's data as one token stream, windows of
the context length cut from it, and a batch drawn task by task with the mixture's weights.

- control tasks (`control.CONTROL`): expert episodes, tokenised and packed back to back; a window starts at a
  timestep. With probability `prompt_prob` (the paper's 25%) it begins with a prompt: whole timesteps of another
  episode of the same task, half of the time its end (goal conditioning), half of the time from anywhere;
- captioning: scikit-learn's 8 x 8 digits, each image's 4 x 4 patches then a caption naming the digit
  ("a handwritten seven"), packed back to back; a window starts at an image;
- text: the standard-library corpus as BPE ids; a window starts anywhere.

Batches are drawn from (seed, position) alone, so a resumed run draws the batches the uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..models.gato.sequence import Layout, Tokens, caption_tokens, episode_tokens, text_tokens
from ..registry import nearest
from .control import CONTROL, PROMPT_SEED, expert_episodes
from .digits import WORDS

TEXT_TASKS = ("text", "caption")
CAPTION_TEMPLATES = ("a handwritten {}", "the digit {}", "a picture of a {}", "this is a {}")
VAL_SEED = 3_000_000  # held-out expert episodes for the validation loss
# digits as ink in [0, 1] (0: blank paper) read as the pixel range [-1, 1], so that blank paper is 0 after the
# normalisation: a blank patch then embeds near zero instead of as a large vector shared by every blank patch, which
# drowned the few informative patches (captioning stalled at 71% with blank = -1)
DIGIT_RANGE = (-1.0, 1.0)


def digit_ink(images: torch.Tensor) -> torch.Tensor:
    """`digits.load_digits_split` images in [-1, 1] -> ink in [0, 1]."""
    return (images + 1.0) / 2.0


def task_names() -> list[str]:
    return [*TEXT_TASKS, *CONTROL.names()]


def check_mixture(weights: dict | None) -> dict[str, float]:
    """{task: weight} -> normalised weights of the tasks with weight > 0; unknown names or bad weights raise."""
    if not weights:
        raise ConfigError(f"data.mixture is empty; give a weight per task, tasks: {', '.join(task_names())}")
    for name, w in weights.items():
        if name not in task_names():
            raise ConfigError(f"data.mixture: unknown task {name!r}{nearest(str(name), task_names())}; "
                              f"tasks: {', '.join(task_names())}")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
            raise ConfigError(f"data.mixture.{name}={w!r} is invalid: a weight >= 0")
    total = float(sum(weights.values()))
    if total <= 0:
        raise ConfigError("data.mixture: the weights sum to 0")
    return {k: float(v) / total for k, v in weights.items() if v > 0}


@dataclass
class Stream:
    """A task's tokens back to back (N,), the positions a window may start at, and (control) each episode's
    [start, end) and its timestep length."""

    tokens: Tokens
    starts: torch.Tensor
    episodes: list[tuple[int, int]] | None = None
    step: int = 0

    def __len__(self) -> int:
        return len(self.tokens)

    def window(self, start: int, length: int) -> Tokens:
        return self.tokens.window(start, start + length)


class TextStream(Stream):
    """Text ids (N,), made into tokens one window at a time (a corpus would otherwise hold N x patch_dim zeros)."""

    def __init__(self, ids: torch.Tensor, layout: Layout):
        super().__init__(None, torch.arange(len(ids)))
        self.ids, self.layout = ids, layout

    def __len__(self) -> int:
        return len(self.ids)

    def window(self, start: int, length: int) -> Tokens:
        return text_tokens(self.ids[start:start + length], self.layout)


def control_stream(name: str, seeds, layout: Layout, wide_share: float = 0.0) -> Stream:
    """Expert episodes of a control task (executed with the task's `train_noise`, labelled with the expert's
    actions; a `wide_share` of them started from the task's wider initial states), tokenised and packed in seed
    order."""
    task = CONTROL.get(name)
    spec = task.spec
    step = spec.step_tokens(layout.patch)
    parts, bounds, at = [], [], 0
    for ep in expert_episodes(name, seeds, task.train_noise, wide_share):
        t = episode_tokens(torch.as_tensor(ep.observations), torch.as_tensor(ep.actions), spec, layout)
        parts.append(t)
        bounds.append((at, at + len(t)))
        at += len(t)
    tokens = Tokens.cat(parts)
    return Stream(tokens, torch.arange(0, len(tokens), step), bounds, step)


def caption_texts(labels: torch.Tensor, seed: int) -> list[str]:
    """A caption per digit label from `CAPTION_TEMPLATES`, drawn with `seed`."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(len(CAPTION_TEMPLATES), (len(labels),), generator=g)
    return [CAPTION_TEMPLATES[int(i)].format(WORDS[int(c)]) for i, c in zip(t, labels)]


def caption_stream(images: torch.Tensor, labels: torch.Tensor, tokenizer, layout: Layout, seed: int) -> Stream:
    """Digit images (N, 1, 8, 8) in [-1, 1] and their captions, packed: patches, caption, end-of-text, ..."""
    seqs = caption_tokens(digit_ink(images), tokenizer.encode_batch(caption_texts(labels, seed)), layout, DIGIT_RANGE,
                          tokenizer.eos_id)
    lengths = torch.tensor([len(s) for s in seqs])
    starts = torch.cumsum(lengths, 0) - lengths
    return Stream(Tokens.cat(seqs), starts)


def demonstration(name: str, layout: Layout, n_tokens: int, seed: int = PROMPT_SEED) -> Tokens:
    """The evaluation prompt: the last whole timesteps (at most n_tokens) of expert episodes of the task played
    from `seed` on (several when one is shorter), never trained on."""
    spec = CONTROL.get(name).spec
    step = spec.step_tokens(layout.patch)
    k = n_tokens // step
    if k < 1:
        raise ConfigError(f"a prompt of {n_tokens} tokens holds no timestep of {name} ({step} tokens)")
    parts, have, i = [], 0, 0
    while have < k:
        ep = expert_episodes(name, [seed + i])[0]
        parts.insert(0, episode_tokens(torch.as_tensor(ep.observations), torch.as_tensor(ep.actions), spec, layout))
        have += len(ep)
        i += 1
    t = Tokens.cat(parts)
    return t.window(len(t) - k * step, len(t))


class Mixture:
    """Windows of `block` tokens from each task's stream, drawn with the mixture's weights."""

    def __init__(self, weights: dict[str, float], streams: dict[str, Stream], block: int, *, prompt_prob: float = 0.25,
                 prompt_tokens: int | None = None, seed: int = 0):
        self.weights = check_mixture(weights)
        missing = [k for k in self.weights if k not in streams]
        if missing:
            raise ConfigError(f"no data for mixture tasks {missing}")
        self.names = list(self.weights)
        self.probs = torch.tensor([self.weights[k] for k in self.names], dtype=torch.float64)
        self.streams, self.block, self.seed = streams, block, seed
        self.prompt_prob = prompt_prob
        self.prompt_tokens = block // 4 if prompt_tokens is None else prompt_tokens
        for name in self.names:
            if len(streams[name]) < block:
                raise ConfigError(f"task {name!r} has {len(streams[name])} tokens, fewer than one window of "
                                  f"{block}")

    def batch(self, position: int, size: int) -> tuple[Tokens, list[str]]:
        """Global batch number `position`: (B, block) tokens and the task of each row."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + position)
        tasks = torch.multinomial(self.probs, size, replacement=True, generator=g)
        rows = [self.window(self.names[int(i)], g) for i in tasks]
        return Tokens.stack(rows), [self.names[int(i)] for i in tasks]

    def window(self, name: str, g: torch.Generator) -> Tokens:
        s = self.streams[name]
        prompt = None
        if s.episodes is not None and float(torch.rand((), generator=g)) < self.prompt_prob:
            prompt = self._prompt(s, g)
        rest = self.block - (len(prompt) if prompt is not None else 0)
        hi = int(torch.searchsorted(s.starts, len(s) - rest, right=True))  # starts with a full window
        start = int(s.starts[int(torch.randint(hi, (), generator=g))])
        body = s.window(start, rest)
        return body if prompt is None else Tokens.cat([prompt, body])

    def _prompt(self, s: Stream, g: torch.Generator) -> Tokens:
        """Whole timesteps of a random episode: its end, or (half of the time) from anywhere in it."""
        a, b = s.episodes[int(torch.randint(len(s.episodes), (), generator=g))]
        steps = (b - a) // s.step
        k = min(self.prompt_tokens // s.step, steps)
        first = steps - k if float(torch.rand((), generator=g)) < 0.5 else int(torch.randint(steps - k + 1, (),
                                                                                              generator=g))
        return s.window(a + first * s.step, k * s.step)


def validation_windows(stream: Stream, block: int, n: int) -> Tokens:
    """Up to n non-overlapping windows from the start of a (validation) stream, each starting where a window may."""
    rows, at = [], 0
    while len(rows) < n:
        i = int(torch.searchsorted(stream.starts, at))
        if i >= len(stream.starts) or int(stream.starts[i]) + block > len(stream):
            break
        start = int(stream.starts[i])
        rows.append(stream.window(start, block))
        at = start + block
    if not rows:
        raise ConfigError(f"a validation stream of {len(stream)} tokens holds no window of {block}")
    return Tokens.stack(rows)
