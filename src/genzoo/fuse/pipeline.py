"""`genzoo fuse`: FuseLLM end to end. The target recipe's training text is cut into sequences by the target's
tokenizer (trained on that text, as any language-model run), the sources' aligned top-k distributions over them
are precomputed once into OUT/topk (resumable), then the target trains under the shared loop (task "fuse") in
the run directory OUT, with exact resume."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError, InputError
from .chunks import Chunk, make_chunks
from .config import FuseConfig
from .shards import precompute
from .sources import load_source


TEXT_SUFFIXES = (".txt", ".md", ".rst", ".py")


def read_texts(path: str | os.PathLike) -> list[str]:
    """A text file, or the text files (.txt, .md, .rst, .py) under a directory in sorted order, as documents."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"--text {str(p)!r}: no such file or directory")
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in TEXT_SUFFIXES)
    return [f.read_text(encoding="utf-8", errors="replace") for f in files]


def target_text(recipe, run: Path, texts: list[str] | None = None):
    """The target's tokenizer (trained once into run/tokenizer.json) and its training text as sequences.
    texts: the documents to fuse on (default: the training split of the recipe's data.corpus)."""
    from ..tokenizers import TOKENIZER_TRAINERS
    from ..train.data import corpus_of, run_tokenizer
    from ..train.distributed import Dist
    from ..train.fuse_task import max_chars

    where = "the given text" if texts is not None else f"the training text of data.corpus={recipe.data.corpus!r}"
    texts = corpus_of(recipe.data).read("train") if texts is None else texts
    if not any(t.strip() for t in texts):
        raise InputError(f"{where} is empty ({len(texts)} documents, no non-blank character)")
    run.mkdir(parents=True, exist_ok=True)
    tokenizer = run_tokenizer(run, Dist(), lambda: TOKENIZER_TRAINERS[recipe.data.tokenizer](texts, recipe.data.vocab_size))
    cfg = FuseConfig.from_dict(recipe.fuse)
    return tokenizer, make_chunks(texts, tokenizer, recipe.data.block_size + 1, max_chars(recipe, cfg))


def prepare(sources: list[str | os.PathLike], recipe, out: str | os.PathLike, chunks: list[Chunk] | None = None,
            tokenizer=None, texts: list[str] | None = None) -> Path:
    """Precompute (or finish precomputing) the sources' distributions for `recipe` into out/topk and point the
    recipe's fuse.shards at it. Returns that directory. chunks and tokenizer: sequences already made; texts:
    documents to fuse on instead of the recipe's corpus."""
    if recipe.task != "fuse":
        raise ConfigError(f"recipe {recipe.name or '(unnamed)'!r} trains task {recipe.task!r}; genzoo fuse needs a "
                          "recipe of task 'fuse' (e.g. fusellm-target)")
    out = Path(out)
    if not sources:
        raise ConfigError("FuseLLM needs at least one source (--source DIR)")
    for path in sources:  # each source loads and is a causal LM, before the target's tokenizer is trained
        load_source(path)
    if chunks is None:
        tokenizer, chunks = target_text(recipe, out, texts)
    cfg = FuseConfig.from_dict(recipe.fuse)
    topk = out / "topk"
    precompute(sources, tokenizer, chunks, topk, top_k=cfg.top_k, align=cfg.align, shard_size=cfg.shard_size,
               max_len=recipe.data.block_size + 1, progress=recipe.progress)
    recipe.fuse = {**recipe.fuse, "shards": str(topk)}
    return topk


def fuse(sources: list[str | os.PathLike], recipe, out: str | os.PathLike, *, steps: int | None = None,
         resume: bool = False, text: str | os.PathLike | None = None) -> dict:
    """Precompute, then train the target into `out`; returns the trainer's result. text: a file or directory
    to fuse on instead of the recipe's corpus (validation stays on the corpus's held-out split)."""
    from ..train import train

    if not sources:
        raise ConfigError("genzoo fuse needs at least one source (--source DIR)")
    prepare(sources, recipe, out, texts=read_texts(text) if text is not None else None)
    return train(recipe, out, resume=resume, steps=steps)
