"""The digit world of the fusion experiments: scikit-learn's 8x8 digits with the texts that go with them (captions,
questions and answers), and text-only sentences about the same numbers.

Paired tasks (an image and text):
- ``caption``: image -> "a handwritten seven";
- ``draw``: "draw a seven" -> image (text -> image);
- ``digit``, ``parity``, ``plus3``: image + question -> answer ("what digit is this?" -> "seven", "is it even?" ->
  "no", "what is 3 plus this digit?" -> "ten").
Text-only (unpaired) sentences state the same facts about number words ("question: is seven even? answer: no"),
so that a model can learn parity and addition from text and the digit's identity from images.
"""

from __future__ import annotations

import torch

from .digits import WORDS

NUMBER_WORDS = WORDS + ["ten", "eleven", "twelve"]
QUESTIONS = {"digit": "what digit is this?", "parity": "is it even?", "plus3": "what is 3 plus this digit?"}
CAPTIONS = ["a handwritten {}", "the digit {}", "a picture of a {}", "this is a {}"]
DRAW = "draw a {}"
VQA_TASKS = tuple(QUESTIONS)
PAIRED_TASKS = ("caption", "draw", *VQA_TASKS)


def answer(task: str, digit: int) -> str:
    """The answer word of a question task about `digit`."""
    if task == "digit":
        return WORDS[digit]
    if task == "parity":
        return "yes" if digit % 2 == 0 else "no"
    if task == "plus3":
        return NUMBER_WORDS[3 + digit]
    raise KeyError(task)


def question_text(question: str) -> str:
    return f"question: {question} answer:"


def text_facts() -> list[str]:
    """Every text-only sentence: the questions about number words, the captions and draw requests as text."""
    out = []
    for d, w in enumerate(WORDS):
        out += [f"{question_text(f'is {w} even?')} {answer('parity', d)}",
                f"{question_text(f'what is 3 plus {w}?')} {answer('plus3', d)}",
                f"{question_text(f'what digit is {w}?')} {w}",
                *(f"caption: {c.format(w)}" for c in CAPTIONS), DRAW.format(w)]
    return out


def all_texts() -> list[str]:
    """Every text of the digit world (for training its tokenizer)."""
    return text_facts() + [question_text(q) for q in QUESTIONS.values()] + NUMBER_WORDS + ["caption:"]


def parse_number(text: str) -> int | None:
    """The first number word in `text` (NUMBER_WORDS index), or None."""
    for word in text.replace("?", " ").replace(".", " ").split():
        if word in NUMBER_WORDS:
            return NUMBER_WORDS.index(word)
    return None


def parse_answer(task: str, text: str):
    """A generated answer as comparable to `answer(task, digit)`: the first word for parity, a number otherwise."""
    if task == "parity":
        words = text.split()
        return words[0] if words else ""
    n = parse_number(text)
    return None if n is None else NUMBER_WORDS[n]


def paired_subset(labels: torch.Tensor, percent: float, seed: int = 0) -> torch.Tensor:
    """Indices of the training images that come with text: `percent` of each class (at least one per class)."""
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(10):
        idx = (labels == c).nonzero().squeeze(1)
        n = max(1, round(len(idx) * percent / 100))
        keep.append(idx[torch.randperm(len(idx), generator=g)[:n]])
    return torch.cat(keep).sort().values
