"""The training data of a language-model run: the corpus (the embedded standard library, or the user's
`data.source`), its tokenizer (trained once per run and reused from the run directory, or the initial checkpoint's),
and the token streams of both splits."""

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


def prepare(cfg: DataConfig, run: Path, d: Dist, special_tokens: tuple[str, ...] = (),
            tokenizer: Tokenizer | None = None) -> tuple[Tokenizer, torch.Tensor, torch.Tensor]:
    """-> (tokenizer, train tokens, validation tokens). tokenizer: the initial checkpoint's (else one is trained
    by the recipe's `data.tokenizer` trainer)."""
    if cfg.source is not None:
        return prepare_source(cfg, run, d, special_tokens, tokenizer)
    corpus = corpus_of(cfg)
    train_texts = corpus.read("train")
    if d.is_main:
        (run / "data.json").write_text(json.dumps(corpus.manifest, indent=1) + "\n")
    trainer = TOKENIZER_TRAINERS[cfg.tokenizer]
    tokenizer = run_tokenizer(run, d, lambda: tokenizer or trainer(train_texts, cfg.vocab_size,
                                                                   special_tokens=special_tokens))
    return tokenizer, token_stream(tokenizer, train_texts), token_stream(tokenizer, corpus.read("val"))


def source_manifest(cfg: DataConfig, source) -> dict:
    """What the token files were made from: the files and their hash, and the settings that change the tokens."""
    return {**source.manifest, "glob": cfg.glob, "text_column": cfg.text_column, "max_bytes": cfg.max_bytes,
            "val_percent": cfg.val_percent}


def prepare_source(cfg: DataConfig, run: Path, d: Dist, special_tokens: tuple[str, ...],
                   tokenizer: Tokenizer | None) -> tuple[Tokenizer, torch.Tensor, torch.Tensor]:
    """The user's text (`data.source`), tokenized once into run/data/{train,val}.bin by rank 0 and memory-mapped by
    every rank. A run resumed on changed data is refused (data.json records the source's hash)."""
    from ..data import open_source
    from ..data.sources import in_val
    from ..data.tokens import read_tokens, token_file, write_token_files
    from ..rundir import latest_checkpoint

    source = open_source(cfg.source, cfg.glob)
    source.check_columns([cfg.text_column], ["text_column"])
    directory = run / "data"
    if d.is_main:
        manifest = source_manifest(cfg, source)
        record = run / "data.json"
        old = json.loads(record.read_text()) if record.exists() else None
        fresh = old is not None and {k: v for k, v in old.items() if k != "tokens"} == manifest and \
            all(token_file(directory, s).exists() for s in ("train", "val"))
        if not fresh and old is not None and latest_checkpoint(run) is not None:
            raise ConfigError(f"data.source={cfg.source!r} changed since this run's checkpoints were written "
                              f"(sha256 {old.get('sha256', '?')[:12]} -> {manifest['sha256'][:12]}, or other "
                              "data settings); resume needs the same data: start a new --out")

        def train_texts():
            return (p.text for p in source.pieces(cfg.text_column, cfg.max_bytes)
                    if not in_val(p.key(source), cfg.val_percent))

        trainer = TOKENIZER_TRAINERS[cfg.tokenizer]
        tok = run_tokenizer(run, Dist(), lambda: tokenizer or trainer(train_texts(), cfg.vocab_size,
                                                                    special_tokens=special_tokens))
        if not fresh:
            record.unlink(missing_ok=True)
            counts = write_token_files(source, tok, directory, column=cfg.text_column, val_percent=cfg.val_percent,
                                       max_bytes=cfg.max_bytes)
            record.write_text(json.dumps({**manifest, "tokens": counts}, indent=1) + "\n")
    d.barrier()
    tok = Tokenizer.from_dir(run)
    return tok, read_tokens(directory, "train"), read_tokens(directory, "val")
