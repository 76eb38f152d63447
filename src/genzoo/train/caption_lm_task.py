"""Task "caption-lm": a small genzoo decoder trained on the shape captions of the training templates
(`data.shape_captions.all_captions`), the prompt synthesiser of the seed's RL practice (b) ("prompt synthesis via an
LLM", here a tiny LM that has only seen the caption templates; `models.diffusion.rl.prompts.synthesise_prompts`
keeps what it writes that no template list contains).

Each example is one caption framed by end-of-text tokens ([eos] caption [eos]), with the Point-E runs' caption
tokenizer (byte-level BPE over the training captions). Every token of a caption has loss; padding has none.
Validation: the loss on a fixed sample of the captions (the corpus is the whole template language, so there is no
unseen text to hold out; the synthesiser's novelty is measured on its output instead).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ConfigError
from ..modes import evaluating
from ..tokenizers import pad_rows
from .distributed import Dist
from .pointe_task import caption_tokenizer
from .recipe import Recipe
from .tasks import TASKS, ExampleTask, autocast, build_from_recipe


def frame(tokenizer, texts: list[str]) -> list[list[int]]:
    """Captions -> [eos, ids..., eos] rows (a trailing eos the tokenizer adds is not doubled)."""
    eos = tokenizer.eos_id
    rows = [ids[:-1] if ids and ids[-1] == eos else ids for ids in tokenizer.encode_batch(texts)]
    return [[eos, *r, eos] for r in rows]


@TASKS.register("caption-lm")
class CaptionLM(ExampleTask):
    units = "captions"

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        from ..data.shape_captions import all_captions

        if recipe.data.corpus not in ("stdlib", "shapes"):  # "stdlib" is the recipe default: the field is unused
            raise ConfigError(f"task 'caption-lm' trains on data.corpus='shapes', got {recipe.data.corpus!r}")
        self.captions = all_captions()
        self.tokenizer = caption_tokenizer(run, recipe.data.vocab_size, d)
        g = torch.Generator().manual_seed(recipe.seed + 1)
        self.val = [self.captions[i] for i in torch.randperm(len(self.captions), generator=g)[:256].tolist()]

    def build_model(self):
        t = self.tokenizer
        return build_from_recipe(self.recipe, vocab_size=t.vocab_size, bos_token_id=t.eos_id, eos_token_id=t.eos_id,
                                 pad_token_id=t.eos_id)

    def batch_of(self, texts: list[str]):
        rows = frame(self.tokenizer, texts)
        ids, mask = pad_rows(rows, self.tokenizer.eos_id)  # (B, T) each
        labels = ids.masked_fill(mask == 0, -100)
        dev = self.d.device
        return ids.to(dev), mask.to(dev), labels.to(dev)

    def next_batch(self):
        batch, mine, _ = self.take(len(self.captions))
        return self.batch_of([self.captions[i] for i in batch[mine].tolist()])

    def loss(self, model, batch, amp):
        ids, mask, labels = batch
        with autocast(ids.device, amp):
            return model(ids, attention_mask=mask, labels=labels, check=False).loss

    @torch.no_grad()
    def validate(self, model, amp):
        with evaluating(model) as net:
            return {"val_loss": self.loss(net, self.batch_of(self.val), amp).item()}
