"""The tasks behind LENS and SPAE (`genzoo.models.vl`), under the shared training loop:

- `text-qa`: the frozen LM-to-be, a decoder trained on text only: LENS-layout questions about digits given in words
  (`data.digit_qa`), and in-context episodes over random words (`models.vl.incontext`). No image, no image token.
- `image-captions`: the LENS captioner, an image-prefixed decoder trained on digits with template captions.
- `image-vqa`: the image-trained baseline, the same decoder size as the LM, trained on (image, question) -> answer.
- `spae`: SPAE on digits; the codebook is the frozen LM's embedding table (`vl.lm`), the semantic loss's relevant
  words come from a frozen CLIP (`vl.clip`).

Every example is drawn from its own seeded generator (text) or from the seeded per-epoch order of the digits
(images), so `position` is the whole data state and resume is exact.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from ..data.digit_qa import LABEL_WORDS, QUESTIONS, SEMANTIC_WORDS, content_words, qa_example, related_words
from ..data.digits import TRAIN_TEMPLATES, class_forms
from ..errors import ConfigError
from ..modes import evaluating
from ..tokenizers import pad_rows
from .data import run_tokenizer
from .distributed import Dist
from .recipe import Recipe
from .tasks import TASKS, DigitsTask, ExampleTask, autocast, build_from_recipe


@dataclass
class VLSettings:
    """The recipe's `vl` section."""

    qa: float = 0.5  # text-qa: the share of LENS-layout questions; the rest in-context episodes
    classify: float = 0.25  # text-qa: the share of in-context classification episodes (generation: the rest)
    qa_attribute_right: float | None = None  # text-qa: data.digit_qa.text_context's share of right attributes
    copy: float = 0.0  # text-qa: the share of copy episodes (a span of words repeated; induction's warm-up)
    copy_first: int = 0  # text-qa: the first steps draw copy episodes only (induction forms first; `TextQA.example`)
    classify_next: int = 0  # text-qa: the steps after those draw classification episodes only, then the mixture
    layout: str = "label-first"  # text-qa: models.vl.incontext.CLASSIFY_LAYOUTS, the classification episodes' layout
    length_group: int = 8  # text-qa: global batches drawn together and sorted by length (1: no sorting; `next_batch`)
    lm: str | None = None  # spae: the frozen LM whose embedding table is the codebook (run or HF directory)
    clip: str | None = None  # spae: the frozen CLIP giving the relevant words (needed when semantic_weight > 0)
    semantic_top_k: int = 2  # spae: K_I, the words CLIP finds most relevant to an image
    semantic_words: str = "clip-captions"  # spae: data.digit_qa.SEMANTIC_WORDS, the words CLIP ranks for K_I

    @classmethod
    def of(cls, recipe: Recipe) -> "VLSettings":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(recipe.vl) - names)
        if unknown:
            raise ConfigError(f"unknown recipe key(s) vl.{unknown[0]}; vl keys: {', '.join(sorted(names))}")
        s = cls(**recipe.vl)
        if not (0 <= s.qa <= 1 and 0 <= s.classify <= 1 and 0 <= s.copy <= 1 and s.qa + s.classify + s.copy <= 1):
            raise ConfigError(f"vl.qa={s.qa}, vl.classify={s.classify} and vl.copy={s.copy} must be shares in [0, 1] "
                              "summing to <= 1")
        for name, least, unit in (("copy_first", 0, "steps"), ("classify_next", 0, "steps"),
                                  ("length_group", 1, "global batches")):
            v = getattr(s, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < least:
                raise ConfigError(f"vl.{name}={v!r} must be a number of {unit} >= {least}")
        if s.qa_attribute_right is not None and not 0 <= s.qa_attribute_right <= 1:
            raise ConfigError(f"vl.qa_attribute_right={s.qa_attribute_right} must be a share in [0, 1] (or null)")
        from ..models.vl.incontext import CLASSIFY_LAYOUTS

        CLASSIFY_LAYOUTS.get(s.layout)
        if not (isinstance(s.semantic_top_k, int) and s.semantic_top_k > 0):
            raise ConfigError(f"vl.semantic_top_k={s.semantic_top_k!r} must be a positive integer")
        SEMANTIC_WORDS.get(s.semantic_words)
        return s


def word_tokenizer_of(run: Path, d: Dist):
    from ..data.digit_qa import word_tokenizer

    return run_tokenizer(run, d, word_tokenizer)


def collate(examples: list[tuple[list[int], int | list[int]]], pad: int):
    """(ids, number of target tokens at the end, or the target positions) -> ids (B, T), mask (B, T), labels (B, T):
    -100 but on targets."""
    ids, mask = pad_rows([e for e, _ in examples], pad)
    labels = torch.full_like(ids, -100)
    for i, (e, n) in enumerate(examples):
        at = torch.tensor(n, dtype=torch.long) if isinstance(n, list) else torch.arange(len(e) - n, len(e))
        labels[i, at] = ids[i, at]
    return ids, mask, labels


@TASKS.register("text-qa")
class TextQA(ExampleTask):
    """A causal LM on text only: LENS-layout digit questions and in-context episodes over random words."""

    units = "seq"
    loss_label = "cross-entropy of the answers (nats/token)"

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        from ..models.vl.incontext import PromptWords

        self.settings = VLSettings.of(recipe)
        self.tokenizer = word_tokenizer_of(run, d)
        tok = self.tokenizer.tok
        self.words = PromptWords.of(self.tokenizer)
        self.pool = [tok.token_to_id(w) for w in content_words()]
        self.labels = [tok.token_to_id(w) for w in LABEL_WORDS]

    def example(self, i: int, split: str) -> tuple[list[int], int | list[int], str]:
        """-> (ids, number of target tokens at the end or the target positions, kind) of example i of a split
        ("train" / "val").

        The training examples of the first `vl.copy_first` steps are copy episodes only: induction heads form in a
        phase change after enough copying (Olsson et al. 2022, arXiv 2209.11895, sec. 3), which a mixed curriculum
        of 1,500 steps never reached, and without copying the in-context episodes stay at choosing some label of
        the episode. The `vl.classify_next` steps after it draw classification episodes only (in `vl.layout`), so
        the episode format is learned on top of the copying before the mixture; after the phases the mixture's
        `copy` share keeps the circuit (it is forgotten otherwise).
        Measured (lens-lm shape, issue 24): copying forms at steps 310-520 in batches of mixed lengths
        (`vl.length_group=1`), and had not by 1,700 in length-sorted ones. The binding the episodes need after it
        (the query's own label, not any label of the episode) is the fragile step: it formed in 1 of 19 lens-lm runs
        (seeds, beta2, lr schedule, precision, depth and copy length varied) and in 3 of 9 probes outside the trainer;
        mixed with QA from its start it never formed; once formed it survived 800 steps of the QA mixture."""
        from ..models.vl.incontext import CLASSIFY_LAYOUTS, copy_episode, generation_episode

        rng = random.Random(f"{self.recipe.seed}/{split}/{i}")
        u, s, w = rng.random(), self.settings, self.words
        step = i // self.global_batch if split == "train" else None
        if step is not None and step < s.copy_first:
            kind = "copy"
        elif step is not None and step < s.copy_first + s.classify_next:
            kind = "classify"
        else:  # the mixture
            kind = ("qa" if u < s.qa else "classify" if u < s.qa + s.classify
                    else "copy" if u < s.qa + s.classify + s.copy else "generate")
        if kind == "qa":
            prompt, answer = qa_example(rng, s.qa_attribute_right)
            target = self.tokenizer.encode(answer) + [w.bos]
            return [w.bos] + self.tokenizer.encode(prompt) + target, len(target), kind
        if kind == "classify":
            return (*CLASSIFY_LAYOUTS.get(s.layout).episode(rng, w, self.pool, self.labels), kind)
        if kind == "copy":
            return (*copy_episode(rng, w, self.pool), kind)
        prompt, target = generation_episode(rng, w, self.pool, self.labels)
        return prompt + target, len(target), kind

    def build_model(self):
        fixed = {"vocab_size": self.tokenizer.vocab_size, "bos_token_id": self.words.bos,
                 "eos_token_id": self.words.bos, "pad_token_id": self.words.bos}
        return build_from_recipe(self.recipe, **fixed)

    def next_batch(self):
        """Examples position .. position + global batch of the length-sorted group of `vl.length_group` global
        batches the position falls in; this rank's slice of them.

        Sorting pads little (a copy step runs ~1.7x faster with groups of 8), but batches of equal-length copy
        episodes delay the induction phase change: lens-lm's shape copied 96% of tokens after 1,600 unsorted steps
        and 10% after 1,700 sorted ones (groups of 8, with or without shuffling their order; issue 24)."""
        g, group = self.global_batch, self.settings.length_group
        step = self.position // g
        first = (step // group) * group * g
        if getattr(self, "_group", (None,))[0] != first:
            examples = [self.example(i, "train")[:2] for i in range(first, first + group * g)]
            self._group = (first, sorted(examples, key=lambda e: len(e[0])))
        k = step % group
        batch = self._group[1][k * g: (k + 1) * g]
        self.position += g
        b = self.recipe.batch_size
        ids, mask, labels = collate(batch[self.d.rank * b: (self.d.rank + 1) * b], self.words.bos)
        dev = self.d.device
        return ids.to(dev), mask.to(dev), labels.to(dev)

    def loss(self, model, batch, amp):
        ids, mask, labels = batch
        with autocast(ids.device, amp):
            return model(ids, attention_mask=mask, labels=labels).loss

    @torch.no_grad()
    def validate(self, model, amp):
        """Loss on held-out examples, and per kind how often every target token is the argmax (teacher forced)."""
        n = self.recipe.eval_batches * self.recipe.batch_size
        examples = [self.example(i, "val") for i in range(n)]
        hits: dict[str, list[float]] = {}
        total = 0.0
        with evaluating(model) as net:
            for start in range(0, n, self.recipe.batch_size):
                chunk = examples[start: start + self.recipe.batch_size]
                ids, mask, labels = (t.to(self.d.device) for t in collate([e[:2] for e in chunk], self.words.bos))
                out = net(ids, attention_mask=mask, labels=labels)
                total += out.loss.item() * len(chunk)
                pred = out.logits[:, :-1].argmax(-1)  # (B, T-1) predicts position t+1
                for row, (_, _, kind) in enumerate(chunk):
                    want = labels[row, 1:]
                    keep = want != -100
                    hits.setdefault(kind, []).append(float(bool((pred[row][keep] == want[keep]).all())))
        return {"val_loss": total / n, **{f"{k}_acc": sum(v) / len(v) for k, v in sorted(hits.items())}}

    def save_files(self, directory):
        self.tokenizer.save(directory)


class ImageText(DigitsTask):
    """An image-prefixed decoder on the digits; `text(label, rng)` -> (text ids, target tokens at the end)."""

    loss_label = "cross-entropy of the text (nats/token)"

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        self.tokenizer = word_tokenizer_of(run, d)
        self.bos = self.tokenizer.eos_id

    def build_model(self):
        return build_from_recipe(self.recipe, vocab_size=self.tokenizer.vocab_size, bos_token_id=self.bos,
                                 eos_token_id=self.bos, pad_token_id=self.bos, image_size=8, channels=1)

    def text(self, label: int, rng: random.Random) -> tuple[list[int], int]:
        raise NotImplementedError

    def next_batch(self):
        batch, mine, start = self.take(len(self.train_x))
        rng = random.Random(f"{self.recipe.seed}/{start}")  # drawn for the global batch, then sliced
        texts = [self.text(int(c), rng) for c in self.train_y[batch]]
        idx = batch[mine]
        ids, mask, labels = collate(texts[mine], self.bos)
        dev = self.d.device
        return self.train_x[idx].to(dev), ids.to(dev), mask.to(dev), labels.to(dev)

    def loss(self, model, batch, amp):
        x, ids, mask, labels = batch
        with autocast(x.device, amp):
            return model(x, ids, attention_mask=mask, labels=labels).loss

    def save_files(self, directory):
        self.tokenizer.save(directory)


@TASKS.register("image-captions")
class ImageCaptions(ImageText):
    """Captions from the digits' training templates, naming the digit by word or numeral."""

    def text(self, label, rng):
        caption = rng.choice(TRAIN_TEMPLATES).format(rng.choice(class_forms(label)))
        ids = self.tokenizer.encode(caption) + [self.bos]
        return [self.bos] + ids, len(ids)

    @torch.no_grad()
    def validate(self, model, amp):
        """Caption loss on held-out images; how often the greedy caption names the right digit (and no other)."""
        rng = random.Random(0)
        x, y = self.val_x.to(self.d.device), self.val_y
        ids, mask, labels = (t.to(self.d.device) for t in collate([self.text(int(c), rng) for c in y], self.bos))
        with evaluating(model) as net:
            loss = net(x, ids, attention_mask=mask, labels=labels).loss.item()
            out = net.generate(x, max_new_tokens=10)
        names = [caption_digits(self.tokenizer.decode(r.tolist()[1:])) for r in out]
        acc = sum(n == {int(c)} for n, c in zip(names, y)) / len(y)
        return {"val_loss": loss, "caption_acc": acc}


def caption_digits(text: str) -> set[int]:
    """The digits a caption names (by word or numeral)."""
    words = set(text.split())
    return {c for c in range(10) if words & related_words(c)}


@TASKS.register("image-vqa")
class ImageVQA(ImageText):
    """The image-trained baseline: "Question: ... Short answer:" after the image, the short answer as target."""

    def qa(self, label: int, question: int) -> tuple[list[int], int]:
        q, answer = QUESTIONS[question]
        target = self.tokenizer.encode(answer(label)) + [self.bos]
        return [self.bos] + self.tokenizer.encode(vqa_prompt(q)) + target, len(target)

    def text(self, label, rng):
        return self.qa(label, rng.randrange(len(QUESTIONS)))

    @torch.no_grad()
    def validate(self, model, amp):
        """Answer loss and accuracy (greedy first token) on every held-out image with every question."""
        x, y = self.val_x.to(self.d.device), self.val_y
        total, hits, n = 0.0, 0, 0
        with evaluating(model) as net:
            for q in range(len(QUESTIONS)):
                ids, mask, labels = (t.to(self.d.device) for t in collate([self.qa(int(c), q) for c in y], self.bos))
                out = net(x, ids, attention_mask=mask, labels=labels)
                total += out.loss.item()
                first = (labels != -100).int().argmax(1)  # (B,) the answer's first position
                pred = out.logits[torch.arange(len(y)), first - 1].argmax(-1)
                hits += int((pred == labels[torch.arange(len(y)), first]).sum())
                n += len(y)
        return {"val_loss": total / len(QUESTIONS), "vqa_acc": hits / n}


def vqa_prompt(question: str) -> str:
    """What the baseline reads after the image (LENS's question and answer cue, without the vision text)."""
    return f"Question: {question} Short answer:"

