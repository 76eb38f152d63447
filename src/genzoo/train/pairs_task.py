"""Sentence embeddings fine-tuned on pairs (task "pairs"): a query and the text it should retrieve (the user's table:
data.input_column, data.target_column; or the standard library's functions: docstring summary -> code). The loss
is the symmetric InfoNCE of in-batch negatives (CLIP's loss, `models.clip.loss`; sentence-transformers'
MultipleNegativesRankingLoss is its query-to-text half) on the encoder's pooled, normalised embeddings, at a fixed
scale of 20 (sentence-transformers' default). Validation reports that loss and the retrieval of the held-out pairs:
recall@1, recall@5 and mean reciprocal rank of each query's own text among all held-out texts."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..models.clip.loss import clip_loss
from ..modes import evaluating
from ..tokenizers import pad_rows
from .distributed import Dist
from .recipe import Recipe
from .tasks import TASKS, ExampleTask, autocast

SCALE = 20.0


def unwrap(model):
    """The genzoo model under DDP (`.module`) or peft (`.get_base_model()`) wrappers, for its config and methods."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@TASKS.register("pairs")
class SentencePairs(ExampleTask):
    units = "pairs"

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        if recipe.init is None:
            raise ConfigError("task 'pairs' fine-tunes a pretrained encoder: give its directory as init (--init DIR)")
        from .finetune import init_tokenizer

        self.tokenizer = init_tokenizer(recipe, ("encoder",))
        c = recipe.data
        if c.source is not None:
            from ..data import open_source
            from ..data.sources import split_rows

            self.train_pairs, self.val_pairs = split_rows(open_source(c.source, c.glob),
                                                          [c.input_column, c.target_column],
                                                          ["input_column", "target_column"], c.val_percent)
        elif c.corpus == "stdlib-docstrings":
            from ..data import stdlib_corpus
            from ..data.transduction import docstring_pairs

            corpus = stdlib_corpus(max_bytes=c.max_bytes, val_percent=c.val_percent)
            self.train_pairs = docstring_pairs(corpus.read("train"))
            self.val_pairs = docstring_pairs(corpus.read("val"))
        else:
            raise ConfigError(f"task 'pairs' needs data.source (a table) or data.corpus='stdlib-docstrings', "
                              f"got {c.corpus!r}")
        self.val_pairs = self.val_pairs[: max(recipe.eval_batches * recipe.batch_size, 2)]

    def build_model(self):
        from .finetune import init_model

        return init_model(self.recipe, ("encoder",))

    def inputs(self, model, texts: list[str]):
        """Token ids and mask of texts as the model's `encode` tokenizes them (truncated to data.block_size)."""
        return unwrap(model).sentence_inputs(texts, self.tokenizer, max_len=self.recipe.data.block_size)

    def next_batch(self):
        batch, mine, _ = self.take(len(self.train_pairs))
        pairs = [self.train_pairs[int(i)] for i in batch[mine]]
        return [a for a, _ in pairs], [b for _, b in pairs]

    def embed(self, model, queries: list[str], texts: list[str], amp=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised embeddings of queries and texts, (B, D) each, from one forward pass over both (so DDP sees one
        call), pooled as the model pools."""
        net = unwrap(model)
        q, qm = self.inputs(model, queries)
        t, tm = self.inputs(model, texts)
        rows = [r[m.bool()].tolist() for r, m in zip(q, qm)] + [r[m.bool()].tolist() for r, m in zip(t, tm)]
        ids, mask = pad_rows(rows, self.tokenizer.pad_id)  # (2B, T): queries, then texts
        ids, mask = ids.to(self.d.device), mask.to(self.d.device)
        with autocast(ids.device, amp):
            h = model(ids, attention_mask=mask).last_hidden_state  # (2B, T, D)
        e = F.normalize(net.pool(h.float(), mask, normalize=False), dim=-1)
        return e[: len(queries)], e[len(queries):]

    def loss(self, model, batch, amp):
        q, t = self.embed(model, *batch, amp=amp)
        return clip_loss(q, t, torch.tensor(SCALE, device=q.device))

    @torch.no_grad()
    def validate(self, model, amp):
        qs, ts = [], []
        with evaluating(model) as net:
            for i in range(0, len(self.val_pairs), self.recipe.batch_size):
                chunk = self.val_pairs[i:i + self.recipe.batch_size]
                q, t = self.embed(net, [a for a, _ in chunk], [b for _, b in chunk], amp)
                qs.append(q)
                ts.append(t)
        q, t = torch.cat(qs), torch.cat(ts)
        return {"val_loss": clip_loss(q, t, torch.tensor(SCALE), distributed=False).item(), **retrieval(q, t)}


def retrieval(q: torch.Tensor, t: torch.Tensor) -> dict:
    """Recall@1, recall@5 and mean reciprocal rank of text i for query i among all texts (normalised (N, D) each)."""
    sims = q @ t.t()  # (N, N)
    rank = (sims > sims.diagonal()[:, None]).sum(1)  # (N,) texts scored above the right one
    return {"recall_at_1": (rank < 1).float().mean().item(), "recall_at_5": (rank < 5).float().mean().item(),
            "mrr": (1.0 / (rank + 1).float()).mean().item()}
