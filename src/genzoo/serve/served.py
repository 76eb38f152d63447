"""What a `genzoo serve` process serves: the model at a path (a Hugging Face directory, a genzoo run, a GGUF
file) or a vector index, and the routes it supports, found from what the model can do (its methods), never
from its name:

    completions, chat   a causal LM (`make_cache`) with its tokenizer; chat needs a chat template
    embeddings          an encoder (`encode`), or the model a served index was built with
    ner                 a span NER model (`predict_entities`, GLiNER)
    classify            CLIP zero-shot classification (`encode_image`)
    images              a diffusion model (`sample`)
    index               a genzoo vector index (`genzoo index build`), served alone or beside a model (--index)
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError, InputError

ROUTES = {  # capability -> the routes it opens
    "completions": ["/v1/completions"],
    "chat": ["/v1/chat/completions"],
    "embeddings": ["/v1/embeddings"],
    "ner": ["/v1/ner"],
    "classify": ["/v1/classify"],
    "images": ["/v1/images"],
    "index": ["/v1/index/query"],
}


@dataclass
class Served:
    name: str
    path: str
    model: torch.nn.Module | None = None
    tokenizer: object | None = None
    encoder: tuple | None = None  # (model with encode, its tokenizer)
    classifier: object | None = None  # a zero-shot-image-classification pipeline
    index_path: str | None = None
    index: object | None = None  # opened on the worker thread (`open_index`)
    capabilities: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return type(self.model).__name__ if self.model is not None else "Index"

    def routes(self) -> list[str]:
        return [r for c in self.capabilities for r in ROUTES[c]]

    def open_index(self) -> None:
        from ..index import Embedder, Index

        if self.index_path is None or self.index is not None:
            return
        embedder = None
        if self.encoder is not None:  # the served encoder, when it is the index's model (checked by open)
            model, tok = self.encoder
            try:
                embedder = Embedder(model, tok, name=self.name)
                Index.open(self.index_path, embedder, readonly=True).close()
            except InputError:
                embedder = None
        self.index = Index.open(self.index_path, embedder, readonly=True)
        self.index.embedder  # loads the index's own model now, not on the first query
        if self.encoder is None:
            e = self.index.embedder
            self.encoder = (e.model, e.tokenizer)
            self.capabilities.insert(0, "embeddings")


def _tokenizer(path):
    from ..tokenizers import Tokenizer

    try:
        return Tokenizer.load(path)
    except (CheckpointError, InputError, OSError, ValueError):
        return None


def load_served(path: str | os.PathLike, name: str | None = None, index: str | None = None, device: str = "cpu",
                dtype: torch.dtype | None = None) -> Served:
    """The model or index at `path`, and `index` beside it."""
    import genzoo
    from ..index.index import MANIFEST, read_manifest

    p = Path(path)
    name = name or (p.stem if p.suffix == ".gguf" else p.resolve().name)
    if p.is_dir() and (p / MANIFEST).is_file():  # an index alone: its model serves the embeddings
        read_manifest(p)
        return Served(name, str(p), index_path=str(p), capabilities=["index"])
    if index is not None:
        read_manifest(index)
    model = genzoo.load(p, device=device, **({"dtype": dtype} if dtype is not None else {})).eval()
    tok = _tokenizer(p)
    s = Served(name, str(p), model, tok, index_path=index)
    caps = s.capabilities
    if hasattr(model, "make_cache") and tok is not None:
        caps.append("completions")
        if tok.chat_template is not None:
            caps.append("chat")
    if hasattr(model, "encode") and tok is not None:
        s.encoder = (model, tok)
        caps.append("embeddings")
    if hasattr(model, "predict_entities"):
        caps.append("ner")
    if hasattr(model, "encode_image") and tok is not None:
        from ..pipeline import ZeroShotImageClassification

        s.classifier = ZeroShotImageClassification(model, tok, p)
        caps.append("classify")
    if callable(getattr(model, "sample", None)) and "num_inference_steps" in inspect.signature(model.sample).parameters:
        caps.append("images")
    if index is not None:
        caps.append("index")
    if not caps:
        raise InputError(f"{p} holds a {type(model).__name__}{'' if tok else ' without a tokenizer'}: nothing to "
                         "serve (causal LMs with a tokenizer, encoders, GLiNER, CLIP, diffusion models and genzoo "
                         "indexes are served)")
    return s
