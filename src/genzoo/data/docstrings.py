"""A retrieval benchmark made of the running Python's standard library, no download: the query is a
function's docstring first line, the one relevant document is that function's source with its docstring
removed (signature and body). Queries whose first line is shared by another function are dropped (they
have no single answer), as are one-line stubs.
"""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .stdlib import stdlib_corpus


@dataclass
class Pair:
    id: str  # file:qualified.name:line
    query: str
    document: str


def _functions(tree: ast.AST):
    """(qualified name, node) of every function and method, nested ones included."""
    stack = [("", tree)]
    while stack:
        prefix, node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    yield name, child
                stack.append((name + ".", child))


def file_pairs(rel: str, source: str, min_words: int = 4, min_chars: int = 60) -> list[Pair]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    lines = source.splitlines()
    out = []
    for name, fn in _functions(tree):
        doc = ast.get_docstring(fn)
        if not doc or len(fn.body) < 2:
            continue
        first = doc.strip().splitlines()[0].strip()
        if len(first.split()) < min_words:
            continue
        d = fn.body[0]  # the docstring expression: cut its lines out of the function's source
        start = (fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno) - 1
        kept = lines[start:d.lineno - 1] + lines[d.end_lineno:fn.end_lineno]
        text = "\n".join(kept)
        if len(text) >= min_chars:
            out.append(Pair(f"{rel}:{name}:{fn.lineno}", first, text))
    return out


def stdlib_pairs(n: int | None = None, seed: int = 0, root: str | None = None,
                 max_bytes: int | None = None, split: str | None = None) -> list[Pair]:
    """(query, document) pairs from the standard library, `n` of them sampled with `seed` (all when None);
    max_bytes: read only the first files (sorted by path) up to this much source; split: only the corpus's
    "train" or "val" files (None: both)."""
    corpus = stdlib_corpus(root=root, max_bytes=max_bytes)
    files = {None: corpus.train_files + corpus.val_files, "train": corpus.train_files, "val": corpus.val_files}
    if split not in files:
        raise ConfigError(f"split={split!r} is invalid: 'train', 'val' or None")
    pairs = []
    for rel in files[split]:
        pairs += file_pairs(rel, (Path(corpus.root) / rel).read_text(encoding="utf-8", errors="replace"))
    count: dict[str, int] = {}
    for p in pairs:
        count[p.query] = count.get(p.query, 0) + 1
    pairs = sorted((p for p in pairs if count[p.query] == 1), key=lambda p: p.id)
    if n is not None and n < len(pairs):
        pairs = sorted(random.Random(seed).sample(pairs, n), key=lambda p: p.id)
    return pairs
