"""The fusion tasks on the digit world (`data.digit_fusion`): scikit-learn's digits with captions, questions and
answers, and text-only sentences about the same numbers.

- ``digit-text``: the digit world's text LM (a decoder) on the text-only sentences: late fusion's pretrained LM.
- ``early-fusion``: one decoder from scratch on interleaved sequences (`models.fusion.sequence`): caption -> image,
  image -> caption, image + question -> answer, text only, and image only (every training image, paired or not).
- ``late-fusion``: a frozen CLIP image tower (parts.vision: a clip-digits run) and the frozen digit-text LM
  (parts.lm) joined by a trained bridge, on image -> caption and image + question -> answer.

`data.paired_percent` is the share of training images (of each class) that come with text; the others are
unpaired (early fusion still models them as images). Every task draws its examples from a seeded generator per
global position, so a resumed run sees exactly what the uninterrupted one would have.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.digit_fusion import CAPTIONS, QUESTIONS, all_texts, answer, paired_subset, question_text, text_facts
from ..data.digits import WORDS, load_digits_split
from ..errors import ConfigError
from ..modes import evaluating
from ..tokenizers import Tokenizer, pad_rows, train_bpe
from .data import run_tokenizer
from .distributed import Dist
from .recipe import Recipe
from .tasks import TASKS, ExampleTask, autocast, build_from_recipe

MARKERS = ("<boi>", "<eoi>", "[PAD]")


def digit_tokenizer(run: Path, d: Dist, vocab_size: int) -> Tokenizer:
    """The digit world's byte-level BPE (with the image markers and a pad token), trained once per run."""
    return run_tokenizer(run, d, lambda: train_bpe(all_texts() * 4, vocab_size, min_frequency=1,
                                                   special_tokens=MARKERS))


def part_dir(recipe: Recipe, name: str, what: str) -> Path:
    """The run directory of a pretrained part (recipe.parts[name]), checked to exist."""
    from ..rundir import resolve_checkpoint_dir

    if name not in recipe.parts:
        raise ConfigError(f"task {recipe.task!r} needs parts.{name}: {what} (--set parts.{name}=DIR)")
    return resolve_checkpoint_dir(recipe.parts[name])


class DigitWorldTask(ExampleTask):
    """Examples drawn per global position from a seeded generator (the data state is the position alone)."""

    units = "seq"
    # task -> sampling weight; subclasses choose
    mixture: dict[str, float] = {}

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        if recipe.data.corpus != "digits":
            raise ConfigError(f"task {recipe.task!r} trains on data.corpus='digits', got {recipe.data.corpus!r}")
        p = recipe.data.paired_percent
        if not (isinstance(p, (int, float)) and 0 < p <= 100):
            raise ConfigError(f"recipe field data.paired_percent={p!r} is invalid: in (0, 100]")
        self.train_x, self.train_y, self.val_x, self.val_y = load_digits_split(recipe.data.val_percent)
        self.paired = paired_subset(self.train_y, p, seed=recipe.seed)
        self.facts = text_facts()
        self.names = list(self.mixture)
        self.weights = torch.tensor([self.mixture[n] for n in self.names])

    def draw_examples(self, n: int, position: int) -> list[tuple[str, int]]:
        """n (task, index) pairs for the batch starting at `position`; index: a training image (paired ones for
        paired tasks) or a text-only sentence."""
        g = torch.Generator().manual_seed(self.recipe.seed * 7919 + position)
        tasks = torch.multinomial(self.weights, n, replacement=True, generator=g).tolist()
        u = torch.rand(n, generator=g).tolist()
        out = []
        for t, r in zip(tasks, u):
            name = self.names[t]
            if name == "text":
                out.append((name, int(r * len(self.facts))))
            elif name == "image":
                out.append((name, int(r * len(self.train_x))))
            else:
                out.append((name, int(self.paired[int(r * len(self.paired))])))
        return out

    def next_examples(self):
        start = self.position
        self.position += self.global_batch
        examples = self.draw_examples(self.global_batch, start)
        b = self.recipe.batch_size
        return examples[self.d.rank * b:(self.d.rank + 1) * b]

    def save_files(self, directory):
        self.tokenizer.save(directory)


def text_example(task: str, digit: int, g: torch.Generator | None = None) -> tuple[str, str]:
    """(prompt text, target text) of a paired text task about `digit` (the image comes before the prompt)."""
    if task == "caption":
        i = 0 if g is None else int(torch.randint(len(CAPTIONS), (1,), generator=g))
        return "caption:", " " + CAPTIONS[i].format(WORDS[digit])
    return question_text(QUESTIONS[task]), " " + answer(task, digit)


@TASKS.register("digit-text")
class DigitTextLM(DigitWorldTask):
    """The digit world's text LM: next-token prediction on the text-only sentences (every token has loss)."""

    mixture = {"text": 1.0}

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        self.tokenizer = digit_tokenizer(run, d, recipe.data.vocab_size)

    def build_model(self):
        t = self.tokenizer
        return build_from_recipe(self.recipe, vocab_size=t.vocab_size, bos_token_id=t.eos_id, eos_token_id=t.eos_id,
                                 pad_token_id=t.pad_id)

    def batch_of(self, texts: list[str]):
        eos = self.tokenizer.eos_id
        rows = [[eos, *ids, eos] for ids in self.tokenizer.encode_batch(texts)]
        ids, mask = pad_rows(rows, self.tokenizer.pad_id)
        labels = ids.masked_fill(mask == 0, -100)
        return ids.to(self.d.device), mask.to(self.d.device), labels.to(self.d.device)

    def next_batch(self):
        return self.batch_of([self.facts[i] for _, i in self.next_examples()])

    def loss(self, model, batch, amp):
        ids, mask, labels = batch
        with autocast(ids.device, amp):
            return model(ids, attention_mask=mask, labels=labels, check=False).loss

    @torch.no_grad()
    def validate(self, model, amp):
        with evaluating(model) as net:
            return {"val_loss": self.loss(net, self.batch_of(self.facts), amp).item()}
