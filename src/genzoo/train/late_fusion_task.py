"""The late-fusion task: a frozen CLIP image tower (parts.vision: a `clip-digits` run) and the frozen digit-world
text LM (parts.lm: a `digit-lm` run), joined by a trained bridge (`models.fusion.late`: LLaVA's projected prefix,
or Flamingo's gated cross-attention; optionally LoRA on the LM: model.lora_r). Trained on image -> caption and
image + question -> answer with the loss on the answer; the images with text are data.paired_percent of the
training images. Validation: the loss and the answer-token accuracy (teacher forced) on the held-out images."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import PRESETS
from ..data.digit_fusion import VQA_TASKS
from ..errors import ConfigError
from ..modes import evaluating
from ..tokenizers import Tokenizer, pad_rows
from .distributed import Dist
from .early_fusion_task import answer_accuracy
from .fusion_task import DigitWorldTask, part_dir, text_example
from .recipe import Recipe
from .tasks import TASKS, autocast


def prompt_rows(tok: Tokenizer, examples: list[tuple[str, int]], g=None):
    """(ids, labels) rows of [bos] prompt target [eos] for (task, digit) pairs; the loss on target and eos."""
    rows, labels = [], []
    for task, digit in examples:
        prompt, target = text_example(task, digit, g)
        p, t = tok.encode(prompt), tok.encode(target)
        rows.append([tok.eos_id, *p, *t, tok.eos_id])
        labels.append([-100] * (1 + len(p)) + t + [tok.eos_id])
    return rows, labels


@TASKS.register("late-fusion")
class LateFusionTask(DigitWorldTask):
    mixture = {"caption": 1.0, "digit": 1.0, "parity": 1.0, "plus3": 1.0}

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        if recipe.lora.r:
            raise ConfigError("task 'late-fusion' puts LoRA on the LM alone: set model.lora_r, not lora.r")
        self.vision_dir = part_dir(recipe, "vision", "a CLIP run (recipe clip-digits) whose image tower is used")
        self.lm_dir = part_dir(recipe, "lm", "a decoder LM run (recipe digit-lm)")
        self.tokenizer = Tokenizer.from_dir(self.lm_dir)

    def build_model(self):
        import genzoo
        from ..models.fusion.late import LateFusion

        overrides = {k: v for k, v in self.recipe.model.items() if k != "preset"}
        cfg = PRESETS.get(self.recipe.model["preset"]).make(**overrides)
        bridge = {f: getattr(cfg, f) for f in ("bridge", "projector", "xattn_heads", "xattn_d_ff", "lora_r",
                                               "lora_alpha", "lora_targets")}
        return LateFusion.from_parts(genzoo.load(self.vision_dir), genzoo.load(self.lm_dir), **bridge).train()

    def batch_of(self, examples, images, labels, position: int):
        g = torch.Generator().manual_seed(self.recipe.seed * 104729 + position)
        rows, targets = prompt_rows(self.tokenizer, [(t, int(labels[i])) for t, i in examples], g)
        ids, mask = pad_rows(rows, self.tokenizer.pad_id)
        lab, _ = pad_rows(targets, -100)
        idx = torch.tensor([i for _, i in examples])
        dev = self.d.device
        return images[idx].to(dev), ids.to(dev), mask.to(dev), lab.to(dev)

    def next_batch(self):
        start = self.position
        return self.batch_of(self.next_examples(), self.train_x, self.train_y, start)

    def loss(self, model, batch, amp):
        pixels, ids, mask, labels = batch
        with autocast(ids.device, amp):
            return model(pixels, ids, attention_mask=mask, labels=labels, check=False).loss

    @torch.no_grad()
    def validate(self, model, amp):
        n = len(self.val_x)
        examples = [(VQA_TASKS[i % len(VQA_TASKS)], i) for i in range(n)]
        pixels, ids, mask, labels = self.batch_of(examples, self.val_x, self.val_y, 0)
        with evaluating(model) as net:
            out = net(pixels, ids, attention_mask=mask, labels=labels, check=False)
        return {"val_loss": out.loss.item(), "val_answer_acc": answer_accuracy(out.logits, labels)}
