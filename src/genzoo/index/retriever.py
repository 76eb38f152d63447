"""Retrieval into a language model: the top-k passages for a question, put into the prompt by a template
(retrieval-augmented generation, Lewis et al., 2020, arXiv:2005.11401; here the passages are concatenated
into one prompt, as in-context retrieval-augmented LMs do, Ram et al., 2023, arXiv:2302.00083).

    from genzoo.index import Retriever
    r = Retriever.open("stdlib.index", k=3)
    prompt = r.prompt("def read_config(path):")        # passages, then the question
    hits = r("how are zip files read?")                  # the hits themselves, for a pipeline
"""

from __future__ import annotations

import string
from typing import Callable

from ..errors import ConfigError
from .backend import Hit
from .index import Index

TEMPLATE = "{passages}\n{prompt}"  # what `genzoo generate --retrieve` uses unless --template is given
PASSAGE = "{text}\n"
TEMPLATE_FIELDS = {"passages", "prompt"}
PASSAGE_FIELDS = {"rank", "id", "chunk", "score", "text"}


def _names(fields) -> str:
    return ", ".join("{" + f + "}" for f in sorted(fields))


def check_template(template: str, allowed: set[str], required: set[str], what: str) -> str:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as e:
        raise ConfigError(f"{what} {template!r} is invalid: {e}") from None
    if not fields <= allowed or not required <= fields:
        raise ConfigError(f"{what} {template!r} is invalid: it must contain {_names(required)} and may use "
                          f"{_names(allowed)}"
                          + (f" (unknown: {', '.join(sorted(fields - allowed))})" if fields - allowed else ""))
    return template


class Retriever:
    """Top-k passages from an index, and a prompt built from them."""

    def __init__(self, index: Index, k: int = 3, where: dict | None = None, template: str = TEMPLATE,
                 passage: str = PASSAGE):
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ConfigError(f"k={k!r} is invalid: a positive number of passages")
        self.index, self.k, self.where = index, k, where
        self.template = check_template(template, TEMPLATE_FIELDS, TEMPLATE_FIELDS, "template")
        self.passage = check_template(passage, PASSAGE_FIELDS, {"text"}, "passage template")

    @classmethod
    def open(cls, path, **kw) -> "Retriever":
        return cls(Index.open(path, readonly=True), **kw)

    def __call__(self, question: str, k: int | None = None) -> list[Hit]:
        return self.index.query(question, k=k or self.k, where=self.where)

    def format(self, question: str, hits: list[Hit]) -> str:
        passages = "".join(self.passage.format(rank=i + 1, id=h.id, chunk=h.chunk, score=h.score, text=h.text)
                           for i, h in enumerate(hits))
        return self.template.format(passages=passages, prompt=question)

    def prompt(self, question: str, k: int | None = None, fits: Callable[[str], bool] | None = None) -> str:
        """The prompt with the top-k passages, best first. fits(prompt) -> bool (e.g. "the generator's context
        holds it"): the lowest-ranked passages are dropped until it holds; with none left, the question alone."""
        hits = self(question, k)
        while hits and fits is not None and not fits(self.format(question, hits)):
            hits = hits[:-1]
        self.used = hits
        return self.format(question, hits)
