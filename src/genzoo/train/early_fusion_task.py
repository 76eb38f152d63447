"""The early-fusion task (Gemini-style, arXiv 2312.11805): one decoder from scratch on interleaved sequences of the
digit world over a joint vocabulary of text ids and VQ image codes (the VQ tokenizer: parts.image_tokenizer, a
`vq-digits` run, frozen). Each batch mixes caption -> image ("draw a seven" <boi> codes <eoi>), image -> caption,
image + question -> answer, text-only sentences, and image-only sequences (any training image, paired or not);
the loss is on the generated part of each (`sequence.build`). Validation: the loss and the answer-token accuracy
(teacher forced) on the held-out images."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import PRESETS, to_dict
from ..data.digit_fusion import DRAW, VQA_TASKS
from ..data.digits import WORDS
from ..modes import evaluating
from ..tokenizers import pad_rows
from .distributed import Dist
from .fusion_task import DigitWorldTask, digit_tokenizer, part_dir, text_example
from .recipe import Recipe
from .tasks import TASKS, autocast


def early_sequence(task: str, codes: torch.Tensor | None, digit: int, fact: str | None,
                   g: torch.Generator | None = None):
    """The segments of one example (models.fusion.sequence.Segment list)."""
    from ..models.fusion.sequence import Segment

    if task == "text":
        return [Segment(text=fact, loss=True)]
    if task == "image":
        return [Segment(image=codes, loss=True)]
    if task == "draw":
        return [Segment(text=DRAW.format(WORDS[digit])), Segment(image=codes, loss=True)]
    prompt, target = text_example(task, digit, g)
    return [Segment(image=codes), Segment(text=prompt), Segment(text=target, loss=True)]


@TASKS.register("early-fusion")
class EarlyFusionTask(DigitWorldTask):
    mixture = {"caption": 1.0, "draw": 1.0, "digit": 1.0, "parity": 1.0, "plus3": 1.0, "text": 1.0, "image": 0.5}

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        import genzoo

        self.tokenizer = digit_tokenizer(run, d, recipe.data.vocab_size)
        self.vq = genzoo.load(part_dir(recipe, "image_tokenizer", "a VQ image tokenizer run (recipe vq-digits)"))
        self.train_codes = self.vq.encode(self.train_x)  # (N, h, w)
        self.val_codes = self.vq.encode(self.val_x)

    def build_model(self):
        from ..models.fusion.early import EarlyFusionLM

        t = self.tokenizer
        overrides = {k: v for k, v in self.recipe.model.items() if k != "preset"}
        overrides.update(text_vocab_size=t.vocab_size, boi_token_id=t.tok.token_to_id("<boi>"),
                         eoi_token_id=t.tok.token_to_id("<eoi>"), bos_token_id=t.eos_id, eos_token_id=t.eos_id,
                         pad_token_id=t.pad_id, vq=to_dict(self.vq.config))
        model = EarlyFusionLM(PRESETS.get(self.recipe.model["preset"]).make(**overrides))
        model.image_tokenizer.load_state_dict(self.vq.state_dict())
        return model

    def batch_of(self, examples, codes: torch.Tensor, labels: torch.Tensor, position: int):
        from ..models.fusion.sequence import JointVocab, build

        t = self.tokenizer
        vocab = JointVocab(t.vocab_size, self.vq.config.codebook_size, t.tok.token_to_id("<boi>"),
                           t.tok.token_to_id("<eoi>"), self.vq.config.n_tokens)
        g = torch.Generator().manual_seed(self.recipe.seed * 104729 + position)
        rows, targets = [], []
        for task, i in examples:
            fact = self.facts[i] if task == "text" else None
            segs = early_sequence(task, None if task == "text" else codes[i], int(labels[i]) if task != "text"
                                  else 0, fact, g)
            ids, lab = build(segs, vocab, t, bos=t.eos_id, eos=t.eos_id)
            rows.append(ids)
            targets.append(lab)
        ids, mask = pad_rows(rows, t.pad_id)
        lab, _ = pad_rows(targets, -100)
        dev = self.d.device
        return ids.to(dev), mask.to(dev), lab.to(dev)

    def next_batch(self):
        start = self.position
        return self.batch_of(self.next_examples(), self.train_codes, self.train_y, start)

    def loss(self, model, batch, amp):
        ids, mask, labels = batch
        with autocast(ids.device, amp):
            return model(ids, attention_mask=mask, labels=labels, check=False).loss

    @torch.no_grad()
    def validate(self, model, amp):
        """Loss and teacher-forced answer accuracy (every answer token right) of the question tasks on the held-out
        images."""
        n = len(self.val_x)
        examples = [(VQA_TASKS[i % len(VQA_TASKS)], i) for i in range(n)]
        ids, mask, labels = self.batch_of(examples, self.val_codes, self.val_y, 0)
        with evaluating(model) as net:
            out = net(ids, attention_mask=mask, labels=labels, check=False)
        return {"val_loss": out.loss.item(), "val_answer_acc": answer_accuracy(out.logits, labels)}


def answer_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of rows whose every labelled token is the argmax of the scores before it (teacher forced)."""
    pred = logits[:, :-1].argmax(-1)  # (B, T - 1) predicts labels[:, 1:]
    target = labels[:, 1:]
    ok = (pred == target) | (target == -100)
    return ok.all(dim=1).float().mean().item()
