"""Source language models: any directory `genzoo.load` reads (a genzoo run, or a Hugging Face GPT-2 / Llama /
Mistral / Mixtral directory with its tokenizer.json) that holds a causal LM, and what FuseLLM asks of each:
its top-k next-token distribution at every position of a sequence and its cross-entropy on the sequence."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError
from ..rundir import resolve_checkpoint_dir
from .surface import special_ids, surfaces


@dataclass
class Source:
    path: Path  # the directory the weights and tokenizer were read from
    model: torch.nn.Module
    tokenizer: object  # genzoo.tokenizers.Tokenizer
    surfaces: list[str] = field(repr=False)
    special: set[int] = field(repr=False)

    @property
    def max_positions(self) -> int:
        return self.model.config.max_positions


def is_causal_lm(model) -> bool:
    """A causal stack with a language-model head: its logits at t are a next-token distribution."""
    return bool(getattr(model, "causal", False)) and hasattr(model, "lm_head")


def load_source(path: str | os.PathLike) -> Source:
    """Load a source and its tokenizer; a model that is not a causal LM is refused (ConfigError)."""
    import genzoo
    from ..tokenizers import Tokenizer

    directory = resolve_checkpoint_dir(path)
    model = genzoo.load(directory)
    if not is_causal_lm(model):
        raise ConfigError(f"source {str(path)!r} holds a {type(model).__name__}, not a causal language model "
                          "(FuseLLM fuses next-token distributions: a decoder with an LM head is needed)")
    tok = Tokenizer.from_dir(directory)
    if tok.vocab_size > model.config.vocab_size:
        raise ConfigError(f"source {str(path)!r}: its tokenizer has {tok.vocab_size} tokens, more than the model's "
                          f"vocab_size={model.config.vocab_size}")
    return Source(directory, model, tok, surfaces(tok), special_ids(tok))


def fingerprint(directory: Path) -> str:
    """sha256 of a model directory's config, tokenizer and weight files (what its distributions depend on)."""
    h = hashlib.sha256()
    for f in sorted(directory.iterdir()):
        if f.is_file() and (f.suffix in (".json", ".safetensors", ".bin") and f.name != "trainer_state.pt"):
            h.update(f.name.encode() + b"\0")
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


@dataclass
class Scored:
    """One source on one sequence."""

    ids: list[int]  # its tokens (cut to its max_positions)
    topk_ids: torch.Tensor  # (m, k) int64: the k most likely next tokens at each position
    topk_probs: torch.Tensor  # (m, k) float32: their probabilities under the full softmax
    nll: float  # sum of -log p(token t+1 | tokens <= t), nats
    chars: int  # characters those predicted tokens cover

    @property
    def ce_per_char(self) -> float:
        return self.nll / max(self.chars, 1)


@torch.no_grad()
def score(source: Source, texts: list[str], top_k: int, budget: int = 1 << 25) -> list[Scored]:
    """The source's top-k next-token distributions and cross-entropy on each text, in batches of rows whose
    (rows, T, V) logits stay under `budget` floats (memory-bounded whatever the vocabulary)."""
    vocab = source.model.config.vocab_size
    if not 0 < top_k <= vocab:
        raise ConfigError(f"top_k={top_k} is invalid for source {str(source.path)!r}: in 1..{vocab}")
    rows = [ids[: source.max_positions] for ids in source.tokenizer.encode_batch(texts)]
    out: list[Scored | None] = [None] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # similar lengths together: little padding
    start = 0
    while start < len(order):
        longest = max(1, len(rows[order[min(len(order) - 1, start)]]))
        n = max(1, budget // (longest * vocab))
        group = order[start: start + n]
        start += len(group)
        width = max(1, max(len(rows[i]) for i in group))
        ids = torch.zeros(len(group), width, dtype=torch.long)  # right padding: causal, so it changes nothing
        for r, i in enumerate(group):
            ids[r, : len(rows[i])] = torch.tensor(rows[i], dtype=torch.long)
        logp = torch.log_softmax(source.model(ids).logits.float(), dim=-1)  # (b, T, V)
        top_p, top_i = logp.topk(top_k, dim=-1)  # (b, T, k)
        gold = logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]  # (b, T-1): log p of each next token
        for r, i in enumerate(group):
            m = len(rows[i])
            chars = sum(len(source.surfaces[t]) for t in rows[i][1:])
            out[i] = Scored(rows[i], top_i[r, :m], top_p[r, :m].exp(), float(-gold[r, : m - 1].sum()), chars)
    return out
