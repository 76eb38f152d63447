"""The user's texts as documents, and documents as token-window chunks.

A source is a folder of text files (each file one document, its id the path relative to the folder), a
`.jsonl` file (one JSON object per line) or a `.csv` file (a header row) with an id column, a text column and
any other columns as metadata, or a single text file (one document). Chunks are windows of `chunk` tokens of
the embedding model's own tokenizer, overlapping by `overlap` tokens; a chunk's text is the exact slice of
the document those tokens cover, so a retrieved passage is the user's text, never a detokenised copy.
"""

from __future__ import annotations

import csv
import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, InputError

TABLE_SUFFIXES = (".jsonl", ".csv")


@dataclass
class Document:
    id: str
    text: str
    metadata: dict = field(default_factory=dict)


@dataclass
class Chunk:
    doc: str
    chunk: int  # position of the chunk in its document
    text: str
    metadata: dict  # the document's metadata plus "span": [start, end), character offsets into the document


def _is_text(data: bytes) -> bool:
    return b"\0" not in data[:8192]


def read_folder(root: Path, glob: str = "*") -> list[Document]:
    """Every text file under `root` whose name matches `glob` (hidden files and folders skipped, binary files
    (a NUL byte in the first 8 KiB) skipped), sorted by relative path. id = metadata["source"] = the path."""
    docs = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if not p.is_file() or any(part.startswith(".") for part in rel.parts) or not fnmatch.fnmatch(p.name, glob):
            continue
        data = p.read_bytes()
        if _is_text(data):
            docs.append(Document(rel.as_posix(), data.decode("utf-8", errors="replace"), {"source": rel.as_posix()}))
    return docs


def _record(row: dict, where: str, id_field: str, text_field: str) -> Document:
    for name in (id_field, text_field):
        if name not in row or row[name] is None or row[name] == "":
            raise InputError(f"{where}: no {name!r} field (columns: {', '.join(map(str, row))}); "
                             f"choose the columns with --id-field / --text-field")
    if not isinstance(row[text_field], str):
        raise InputError(f"{where}: field {text_field!r} is a {type(row[text_field]).__name__}, not a string")
    meta = {k: v for k, v in row.items() if k not in (id_field, text_field, "metadata")}
    if isinstance(row.get("metadata"), dict):
        meta.update(row["metadata"])
    return Document(str(row[id_field]), row[text_field], meta)


def read_table(path: Path, id_field: str = "id", text_field: str = "text") -> list[Document]:
    """Records of a .jsonl or .csv file; every column other than id and text is metadata (a jsonl
    "metadata" object is merged in)."""
    docs = []
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"{path}:{n}: not a JSON object ({e.msg})") from None
                if not isinstance(row, dict):
                    raise InputError(f"{path}:{n}: a JSON {type(row).__name__}, expected an object")
                docs.append(_record(row, f"{path}:{n}", id_field, text_field))
    else:
        with open(path, encoding="utf-8", newline="") as f:
            for n, row in enumerate(csv.DictReader(f), 2):
                docs.append(_record(row, f"{path}:{n}", id_field, text_field))
    return docs


def read_source(path: str | Path, glob: str = "*", id_field: str = "id", text_field: str = "text") -> list[Document]:
    """The documents of a folder, a .jsonl / .csv table or one text file. An empty source, or two documents
    with one id, raise InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_dir():
        docs = read_folder(p, glob)
    elif p.suffix in TABLE_SUFFIXES:
        docs = read_table(p, id_field, text_field)
    else:
        data = p.read_bytes()
        if not _is_text(data):
            raise InputError(f"{p}: a binary file; give a folder of text files, a .jsonl or a .csv")
        docs = [Document(p.name, data.decode("utf-8", errors="replace"), {"source": p.name})]
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise InputError(f"{p}: no documents (an empty corpus: no non-empty text"
                         + (f" in files matching {glob!r})" if p.is_dir() else ")"))
    seen: set[str] = set()
    for d in docs:
        if d.id in seen:
            raise InputError(f"{p}: the id {d.id!r} appears twice; ids must be unique")
        seen.add(d.id)
    return docs


class Chunker:
    """Token windows over a text: `chunk` tokens each, consecutive windows sharing `overlap` tokens.

    tokenizer: a `tokenizers.Tokenizer` (the embedding model's; a private copy without truncation is used).
    """

    def __init__(self, tokenizer, chunk: int = 256, overlap: int = 32, max_tokens: int | None = None):
        if not isinstance(chunk, int) or chunk <= 0:
            raise ConfigError(f"chunk={chunk!r} is invalid: a positive number of tokens")
        if not isinstance(overlap, int) or not 0 <= overlap < chunk:
            raise ConfigError(f"overlap={overlap!r} is invalid: 0 <= overlap < chunk ({chunk})")
        if max_tokens is not None and chunk > max_tokens:
            raise ConfigError(f"chunk={chunk} is invalid: the model reads at most {max_tokens} tokens per text")
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_str(tokenizer.to_str())
        self.tok.no_truncation()
        self.tok.no_padding()
        self.chunk, self.overlap = chunk, overlap

    def spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) character spans of the windows; [] for a text with no tokens."""
        offsets = [o for o in self.tok.encode(text, add_special_tokens=False).offsets if o[1] > o[0]]
        spans, step = [], self.chunk - self.overlap
        for s in range(0, max(len(offsets) - self.overlap, 1), step):
            window = offsets[s:s + self.chunk]
            if window:
                spans.append((window[0][0], window[-1][1]))
        return spans

    def __call__(self, docs: list[Document]) -> list[Chunk]:
        out = []
        for d in docs:
            for i, (a, b) in enumerate(self.spans(d.text)):
                out.append(Chunk(d.id, i, d.text[a:b], {**d.metadata, "span": [a, b]}))
        return out
