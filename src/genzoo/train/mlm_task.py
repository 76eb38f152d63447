"""Masked language modelling (Devlin et al., "BERT", 2019, sec. 3.1) on the standard-library corpus: a
fraction `data.mask_prob` of the tokens of each block is chosen; of those, 80% become [MASK], 10% a
random token, 10% stay; the loss is the cross-entropy on the chosen tokens only. The choice is drawn from
a generator seeded by (seed, data position) for the global batch, so resume and data parallelism see the
same masks."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data import PackedBlocks
from ..errors import ConfigError
from ..modes import evaluating
from .distributed import Dist
from .recipe import Recipe
from .tasks import TASKS, LanguageModelling, autocast, build_from_recipe, check_block_size, validation_blocks

SPECIALS = ("[PAD]", "[MASK]", "[CLS]", "[SEP]")


def mask_tokens(ids: torch.Tensor, prob: float, mask_id: int, vocab: int, g: torch.Generator):
    """-> (inputs, labels): labels are -100 where nothing is predicted."""
    chosen = torch.rand(ids.shape, generator=g) < prob
    labels = ids.masked_fill(~chosen, -100)
    r = torch.rand(ids.shape, generator=g)
    inputs = ids.clone()
    inputs[chosen & (r < 0.8)] = mask_id
    swap = chosen & (r >= 0.8) & (r < 0.9)
    inputs[swap] = torch.randint(vocab, ids.shape, generator=g)[swap]
    return inputs, labels


@TASKS.register("mlm")
class MaskedLanguageModelling(LanguageModelling):
    loss_label = "cross-entropy (nats/masked token)"
    """The language-modelling corpus and tokenizer (with [PAD] [MASK] [CLS] [SEP]), masked instead of shifted."""

    special_tokens = SPECIALS
    init_genres = ("encoder",)

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        if not 0 < recipe.data.mask_prob < 1:
            raise ConfigError(f"data.mask_prob={recipe.data.mask_prob} is invalid: must be in (0, 1)")
        super().__init__(recipe, run, d)
        self.mask_id = self.tokenizer.tok.token_to_id("[MASK]")
        if self.mask_id is None:
            raise ConfigError("task 'mlm': the tokenizer has no [MASK] token")

    def make_data(self, tokens: torch.Tensor) -> PackedBlocks:
        # blocks of block_size; every rank reads the whole global batch, to draw the same masks, and keeps its slice
        r = self.recipe
        return PackedBlocks(tokens, r.data.block_size - 1, batch_size=r.batch_size * self.d.world_size, seed=r.seed)

    def build_model(self):
        if self.recipe.init is not None:  # a BertModel directory gets a fresh masked-LM head in place of its pooler
            from .finetune import init_model

            return check_block_size(init_model(self.recipe, ("encoder",), mlm_head=True, pooler=False), self.recipe)
        return build_from_recipe(self.recipe, vocab_size=self.tokenizer.vocab_size, pad_token_id=self.tokenizer.pad_id,
                                 max_positions=self.recipe.data.block_size, pooler=False, mlm_head=True)

    def _masked(self, blocks: torch.Tensor, seed: int):
        g = torch.Generator().manual_seed(seed)
        inputs, labels = mask_tokens(blocks, self.recipe.data.mask_prob, self.mask_id, self.tokenizer.vocab_size, g)
        return inputs, labels

    def next_batch(self):
        position = self.data.position
        inputs, labels = self._masked(self.data.next_batch(), self.recipe.seed * 7919 + position)
        b = self.recipe.batch_size
        part = slice(self.d.rank * b, (self.d.rank + 1) * b)
        return inputs[part].to(self.d.device), labels[part].to(self.d.device)

    def loss(self, model, batch, amp):
        inputs, labels = batch
        with autocast(inputs.device, amp):
            return model(inputs, labels=labels).loss

    @torch.no_grad()
    def validate(self, model, amp):
        data, n = validation_blocks(self.val_tokens, self.recipe.data.block_size - 1, self.recipe)
        total = 0.0
        with evaluating(model) as net:
            for i in range(n):
                inputs, labels = self._masked(data.next_batch(), 12345 + i)
                total += net(inputs.to(self.d.device), labels=labels.to(self.d.device)).loss.item()
        return {"val_mlm_loss": total / n}
