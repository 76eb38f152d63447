"""Embedded datasets (nothing is downloaded; the data ship with Python or with a package) and the user's own files
(`sources`: text folders, .txt, .jsonl / .parquet / .csv tables; `tokens`: their token files)."""

from .packed import PackedBlocks
from .sources import Source, open_source
from .stdlib import Corpus, stdlib_corpus

__all__ = ["Corpus", "PackedBlocks", "Source", "open_source", "stdlib_corpus"]
