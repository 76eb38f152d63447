"""The training data of a language-model run: the corpus, its tokenizer (trained once per run and
reused from the run directory), and the token streams of both splits."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..data import stdlib_corpus
from ..data.domains import domain_corpus
from ..errors import ConfigError
from ..tokenizers import TOKENIZER_TRAINERS, Tokenizer
from .distributed import Dist
from .recipe import DataConfig


def token_stream(tokenizer: Tokenizer, texts: list[str]) -> torch.Tensor:
    """Documents joined by the end-of-text token, as one int64 tensor."""
    eos = tokenizer.eos_id
    out: list[int] = []
    for ids in tokenizer.encode_batch(texts):
        out.extend(ids)
        if eos is not None:
            out.append(eos)
    return torch.tensor(out, dtype=torch.long)


def run_tokenizer(run: Path, d: Dist, train) -> Tokenizer:
    """The run's tokenizer: trained once, by rank 0, with `train()` -> Tokenizer, saved as run/tokenizer.json,
    and read from there by every rank (and by a resumed run)."""
    if d.is_main and not (run / "tokenizer.json").exists():
        train().save(run)
    d.barrier()
    return Tokenizer.from_dir(run)


def corpus_of(cfg: DataConfig):
    """The recipe's corpus: the whole standard library, or a domain share of it (`genzoo.data.domains`)."""
    if cfg.corpus.startswith("stdlib/"):
        return domain_corpus(cfg.corpus, max_bytes=cfg.max_bytes)
    if cfg.corpus != "stdlib":
        raise ConfigError(f"data.corpus={cfg.corpus!r} is not known; known: stdlib, stdlib/DOMAIN[+DOMAIN...]/ROLE")
    return stdlib_corpus(max_bytes=cfg.max_bytes, val_percent=cfg.val_percent)


def prepare(cfg: DataConfig, run: Path, d: Dist, special_tokens: tuple[str, ...] = ()) -> tuple[Tokenizer, torch.Tensor, torch.Tensor]:
    corpus = corpus_of(cfg)
    train_texts = corpus.read("train")
    if d.is_main:
        (run / "data.json").write_text(json.dumps(corpus.manifest, indent=1) + "\n")
    trainer = TOKENIZER_TRAINERS[cfg.tokenizer]
    tokenizer = run_tokenizer(run, d, lambda: trainer(train_texts, cfg.vocab_size, special_tokens=special_tokens))
    return tokenizer, token_stream(tokenizer, train_texts), token_stream(tokenizer, corpus.read("val"))
