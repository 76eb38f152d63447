"""Training the target LM of FuseLLM (Wan et al. 2024, arXiv 2401.10491, eq. 5) under the shared loop.

The data are the sequences of a precomputed directory (`genzoo.fuse.shards`): the target tokens of each sequence
and every source's aligned top-k next-token distribution and cross-entropy. A batch is consecutive sequences of a
seeded order per epoch (`ExampleTask`: the position is the whole data state, so resume is exact). The loss is
lambda * CLM + (1 - lambda) * CE(target, fused), the fusion function (`fuse.method`) choosing the weights per
sequence; `fuse.method=none` trains on the same sequences with the CLM loss alone (the baseline).
Validation: the CLM loss per token and the bits per character on eval_batches x batch_size sequences spread
over the recipe's held-out text, cut into sequences the same way.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ConfigError
from ..fuse.chunks import make_chunks
from ..fuse.config import FuseConfig
from ..fuse.evaluate import bits_per_char, nll_sums
from ..fuse.fusion import FUSIONS, fused_distribution, fusion_loss, no_fusion
from ..fuse.shards import FusionShards
from ..fuse.surface import surfaces
from ..tokenizers import Tokenizer
from .data import corpus_of
from .distributed import Dist
from .recipe import Recipe
from .tasks import TASKS, ExampleTask, autocast, build_from_recipe


def max_chars(recipe: Recipe, cfg: FuseConfig) -> int:
    return cfg.max_chars or 4 * recipe.data.block_size


@TASKS.register("fuse")
class FuseLLM(ExampleTask):
    units = "seq"

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        self.cfg = FuseConfig.from_dict(recipe.fuse)
        if self.cfg.shards is None:
            raise ConfigError("task 'fuse' needs fuse.shards, the sources' precomputed distributions: run "
                              "`genzoo fuse --source DIR ... --target RECIPE --out DIR`, which writes and sets it")
        self.shards = FusionShards(self.cfg.shards)
        self.tokenizer = Tokenizer.from_dir(self.shards.dir)
        length = self.shards.manifest["max_len"]
        if length - 1 > recipe.data.block_size:
            raise ConfigError(f"{self.shards.dir} holds sequences of {length} tokens; data.block_size="
                              f"{recipe.data.block_size} must be at least {length - 1}")
        self.fusion = FUSIONS.get(self.cfg.method)
        self.surfaces = surfaces(self.tokenizer)
        val = corpus_of(recipe.data).read("val")
        chunks = make_chunks(val, self.tokenizer, recipe.data.block_size + 1, max_chars(recipe, self.cfg))
        n = recipe.eval_batches * recipe.batch_size  # spread over the held-out files, every domain of a union
        self.val_rows = [chunks[i * len(chunks) // n].ids for i in range(n)] if len(chunks) > n else \
            [c.ids for c in chunks]

    def build_model(self):
        tok = self.tokenizer
        return build_from_recipe(self.recipe, vocab_size=tok.vocab_size, bos_token_id=tok.eos_id,
                                 eos_token_id=tok.eos_id, max_positions=self.recipe.data.block_size)

    def next_batch(self):
        batch, mine, _ = self.take(self.shards.n)
        rows = self.shards.rows(batch[mine].tolist(), sources=self.fusion is not no_fusion)
        return {k: v.to(self.d.device) for k, v in rows.items()}

    def loss(self, model, batch, amp):
        return self.losses(model, batch, amp).loss

    def losses(self, model, batch, amp):
        ids = batch["input_ids"]  # (B, L)
        x = ids[:, :-1]  # (B, L-1)
        real = torch.arange(x.shape[1], device=ids.device)[None, :] < (batch["length"] - 1)[:, None]
        labels = ids[:, 1:].masked_fill(~real, -100)  # (B, L-1): the next token, -100 past the sequence
        with autocast(ids.device, amp):
            logits = model(x, check=False).logits  # (B, L-1, V)
        weights = self.fusion(batch.get("ce"), self.cfg.temperature)  # (B, S), or None without fusion
        if weights is None:
            return fusion_loss(logits, labels, 1.0)
        f_ids, f_probs = fused_distribution(batch["ids"], batch["probs"], weights)  # (B, L-1, S k)
        return fusion_loss(logits, labels, self.cfg.lam, f_ids, f_probs)

    @torch.no_grad()
    def validate(self, model, amp):
        sums = nll_sums(model, self.val_rows, self.surfaces, self.recipe.batch_size)
        return {"val_loss": sums["nll"] / max(sums["tokens"], 1), "val_bpc": bits_per_char(sums)}
