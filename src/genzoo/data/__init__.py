"""Embedded datasets: nothing is downloaded; the data ship with Python or with a package."""

from .packed import PackedBlocks
from .stdlib import Corpus, stdlib_corpus

__all__ = ["Corpus", "PackedBlocks", "stdlib_corpus"]
