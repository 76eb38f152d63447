"""Sequence-to-sequence training (T5): `data.corpus` "sort" or "reverse" (synthetic, character tokens) or
"stdlib-names" (function body -> name, byte-level BPE). Validation reports the loss and the exact-match
accuracy of greedy decoding on held-out pairs."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers

from ..data.transduction import ALPHABET, function_name_pairs, synthetic_pairs
from ..errors import ConfigError
from ..modes import evaluating
from ..tokenizers import EOS, Tokenizer, pad_rows, train_bpe
from .data import run_tokenizer
from .distributed import Dist
from .recipe import Recipe
from .tasks import TASKS, ExampleTask, autocast, build_from_recipe

CORPORA = ("sort", "reverse", "stdlib-names")  # or data.source: a table with data.input_column, data.target_column


def char_tokenizer() -> Tokenizer:
    """One token per character of the synthetic alphabet, plus [PAD] (id 0) and the end-of-text token (id 1)."""
    vocab = {"[PAD]": 0, EOS: 1, **{c: i + 2 for i, c in enumerate(ALPHABET)}}
    tok = HFTokenizer(models.WordLevel(vocab, unk_token=EOS))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.decoder = decoders.Fuse()
    return Tokenizer(tok, EOS, "[PAD]")


@TASKS.register("seq2seq")
class SequenceToSequence(ExampleTask):
    units = "pairs"

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        corpus = recipe.data.corpus
        if recipe.data.source is not None or recipe.init is not None:
            self.user_data(recipe, run, d)
            return
        if corpus not in CORPORA:
            raise ConfigError(f"task 'seq2seq' needs data.corpus in {CORPORA}, got {corpus!r}")
        if corpus == "stdlib-names":
            from ..data import stdlib_corpus

            c = stdlib_corpus(max_bytes=recipe.data.max_bytes, val_percent=recipe.data.val_percent)
            self.train_pairs, self.val_pairs = function_name_pairs(c.read("train")), function_name_pairs(c.read("val"))
            texts = [a for a, _ in self.train_pairs] + [b for _, b in self.train_pairs]
            self.tokenizer = run_tokenizer(run, d, lambda: train_bpe(texts, recipe.data.vocab_size,
                                                                     special_tokens=("[PAD]",)))
        else:
            self.train_pairs = synthetic_pairs(corpus, 50_000, recipe.seed)
            self.val_pairs = synthetic_pairs(corpus, 512, recipe.seed + 1)
            self.tokenizer = char_tokenizer()

    def user_data(self, recipe: Recipe, run: Path, d: Dist) -> None:
        """The pairs of the user's table (or of the built-in corpus) and the initial checkpoint's tokenizer (or a
        byte-level BPE trained on the training pairs)."""
        from ..data import open_source
        from ..data.sources import split_rows
        from .finetune import init_tokenizer

        c = recipe.data
        if c.source is not None:
            source = open_source(c.source, c.glob)
            self.train_pairs, self.val_pairs = split_rows(source, [c.input_column, c.target_column],
                                                          ["input_column", "target_column"], c.val_percent)
        elif c.corpus in ("sort", "reverse"):
            self.train_pairs = synthetic_pairs(c.corpus, 50_000, recipe.seed)
            self.val_pairs = synthetic_pairs(c.corpus, 512, recipe.seed + 1)
        else:
            raise ConfigError(f"task 'seq2seq' with init needs data.source or data.corpus in ('sort', 'reverse'), "
                              f"got {c.corpus!r}")
        texts = [a for a, _ in self.train_pairs] + [b for _, b in self.train_pairs]
        tok = init_tokenizer(recipe, ("seq2seq",))
        self.tokenizer = run_tokenizer(run, d, lambda: tok or train_bpe(texts, c.vocab_size,
                                                                        special_tokens=("[PAD]",)))
        if self.tokenizer.eos_id is None:
            raise ConfigError("task 'seq2seq': the tokenizer has no end-of-text token (tokenizer_config.json "
                              "eos_token)")

    def build_model(self):
        if self.recipe.init is not None:
            from .finetune import init_model

            return init_model(self.recipe, ("seq2seq",))
        tok = self.tokenizer
        return build_from_recipe(self.recipe, vocab_size=tok.vocab_size, pad_token_id=tok.pad_id,
                                 eos_token_id=tok.eos_id, decoder_start_token_id=tok.pad_id,
                                 max_positions=self.recipe.data.block_size)

    def encode(self, pairs):
        """-> input ids (B, T), attention mask (B, T), labels (B, T') ending with eos, -100 at padding."""
        limit = self.recipe.data.block_size
        src, mask = self.tokenizer.batch([a for a, _ in pairs], max_len=None)
        src, mask = src[:, :limit], mask[:, :limit]
        eos = self.tokenizer.eos_id
        targets = [ids[:-1] if ids and ids[-1] == eos else ids  # a T5 tokenizer appends </s> itself
                   for ids in self.tokenizer.encode_batch([b for _, b in pairs])]
        rows = [ids[: limit - 1] + [eos] for ids in targets]
        labels, _ = pad_rows(rows, -100)  # no target at padding
        return src, mask, labels

    def next_batch(self):
        batch, mine, _ = self.take(len(self.train_pairs))
        idx = batch[mine]
        return tuple(t.to(self.d.device) for t in self.encode([self.train_pairs[int(i)] for i in idx]))

    def loss(self, model, batch, amp):
        src, mask, labels = batch
        with autocast(src.device, amp):
            return model(src, attention_mask=mask, labels=labels).loss

    @torch.no_grad()
    def validate(self, model, amp):
        pairs = self.val_pairs[: self.recipe.eval_batches * self.recipe.batch_size]
        total, correct, batches = 0.0, 0, 0
        with evaluating(model) as net:
            for i in range(0, len(pairs), self.recipe.batch_size):
                chunk = pairs[i:i + self.recipe.batch_size]
                src, mask, labels = (t.to(self.d.device) for t in self.encode(chunk))
                total += net(src, attention_mask=mask, labels=labels).loss.item()
                batches += 1
                out = net.generate(src, attention_mask=mask, max_new_tokens=labels.shape[1] + 2)
                for row, (_, target) in zip(out.tolist(), chunk):
                    ids = [t for t in row[1:] if t not in (self.tokenizer.pad_id,)]
                    ids = ids[: ids.index(self.tokenizer.eos_id)] if self.tokenizer.eos_id in ids else ids
                    correct += self.tokenizer.decode(ids).strip() == target
        return {"val_loss": total / max(batches, 1), "exact_match": correct / max(len(pairs), 1)}
