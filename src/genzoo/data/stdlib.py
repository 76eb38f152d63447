"""A text-and-code corpus made of the running Python's standard-library source files.

The file order is deterministic (sorted relative paths). Train and validation are split by file, by a
hash of the path, so adding or removing a file moves no other file between splits. The file list and a
hash of the contents are recorded with every run (`Corpus.manifest`).
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

EXCLUDED_DIRS = {"site-packages", "__pycache__", "test", "tests", "idlelib", "lib2to3", "turtledemo"}


@dataclass
class Corpus:
    root: str
    train_files: list[str]
    val_files: list[str]

    def read(self, split: str) -> list[str]:
        files = {"train": self.train_files, "val": self.val_files}[split]
        return [(Path(self.root) / f).read_text(encoding="utf-8", errors="replace") for f in files]

    @property
    def manifest(self) -> dict:
        h = hashlib.sha256()
        for f in self.train_files + self.val_files:
            h.update(f.encode() + b"\0" + (Path(self.root) / f).read_bytes() + b"\0")
        return {"root": self.root, "train_files": self.train_files, "val_files": self.val_files,
                "sha256": h.hexdigest()}


def _in_val(rel: str, val_percent: float) -> bool:
    bucket = int(hashlib.sha1(rel.encode()).hexdigest()[:8], 16) % 10000
    return bucket < val_percent * 100


def stdlib_corpus(max_bytes: int | None = None, val_percent: float = 5.0, root: str | None = None) -> Corpus:
    """The standard library's .py files (tests excluded), split by file into train and validation.

    max_bytes: keep files, in sorted order, until this many bytes of source are collected.
    """
    if not 0 < val_percent < 100:
        raise ConfigError(f"val_percent={val_percent} is invalid: must be in (0, 100)")
    base = Path(root or sysconfig.get_paths()["stdlib"])
    files = sorted(
        p.relative_to(base).as_posix()
        for p in base.rglob("*.py")
        if not EXCLUDED_DIRS.intersection(p.relative_to(base).parts[:-1])
    )
    if not files:
        raise ConfigError(f"no .py files found under {base}")
    kept, total = [], 0
    for f in files:
        size = (base / f).stat().st_size
        if max_bytes is not None and total + size > max_bytes and kept:
            break
        kept.append(f)
        total += size
    train = [f for f in kept if not _in_val(f, val_percent)]
    val = [f for f in kept if _in_val(f, val_percent)]
    if not val:  # a tiny corpus: hold out its last file
        train, val = train[:-1], train[-1:]
    return Corpus(str(base), train, val)
