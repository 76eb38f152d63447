"""Token files: a source's text tokenized once, piece by piece, into `train.bin` and `val.bin` (int32, one token after
another, as nanoGPT's `prepare.py` writes them), and read back as memory maps. Training then indexes the map
(`PackedBlocks`), so a corpus larger than memory trains as one held in memory does, and the data position stays
one integer: a resumed run reads the same blocks in the same order.

Within a split, consecutive chunks of one text file are joined as they are; anything else (another row, another
file, a chunk whose neighbour went to the other split) is separated by the tokenizer's end-of-text token.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from .sources import Piece, Source, in_val

SPLITS = ("train", "val")
BATCH = 256  # pieces tokenized together (the tokenizers library encodes a batch in parallel)


def token_file(directory: Path, split: str) -> Path:
    return Path(directory) / f"{split}.bin"


def read_tokens(directory: Path, split: str) -> torch.Tensor:
    """The split's tokens as an int32 tensor over a copy-on-write memory map (nothing is read until used)."""
    f = token_file(directory, split)
    if f.stat().st_size == 0:
        return torch.zeros(0, dtype=torch.int32)
    return torch.from_numpy(np.memmap(f, dtype=np.int32, mode="c"))


def write_token_files(source: Source, tokenizer, directory: Path, *, column: str, val_percent: float,
                      max_bytes: int | None) -> dict[str, int]:
    """Tokenize the source into directory/{train,val}.bin (written under temporary names, then renamed); -> the
    number of tokens of each split. A source whose hash split leaves no validation piece gives its last piece."""
    directory.mkdir(parents=True, exist_ok=True)
    eos = tokenizer.eos_id
    tmp = {s: token_file(directory, s).with_suffix(".bin.tmp") for s in SPLITS}
    files = {s: open(tmp[s], "wb") for s in SPLITS}
    counts = dict.fromkeys(SPLITS, 0)
    prev: dict[str, tuple[int, int] | None] = dict.fromkeys(SPLITS)
    last_train: list[list[int]] = [[], []]  # the last training piece written: [separator], [its tokens]

    def write(split: str, piece: Piece, ids: list[int]) -> None:
        p = prev[split]
        sep = [eos] if p is not None and eos is not None and not (
            piece.joined and p == (piece.file, piece.index - 1)) else []
        out = sep + list(ids)
        np.asarray(out, dtype=np.int32).tofile(files[split])
        counts[split] += len(out)
        prev[split] = (piece.file, piece.index)
        if split == "train":
            last_train[:] = [sep, list(ids)]

    try:
        pending: list[Piece] = []

        def flush():
            for piece, ids in zip(pending, tokenizer.encode_batch([p.text for p in pending])):
                write("val" if in_val(piece.key(source), val_percent) else "train", piece, ids)
            pending.clear()

        for piece in source.pieces(column, max_bytes):
            pending.append(piece)
            if len(pending) == BATCH:
                flush()
        flush()
        if counts["val"] == 0 and counts["train"] > 0:  # a small source: hold out its last piece
            sep, ids = last_train
            files["train"].flush()
            counts["train"] -= len(sep) + len(ids)
            files["train"].truncate(counts["train"] * 4)
            files["train"].seek(counts["train"] * 4)
            np.asarray(ids, dtype=np.int32).tofile(files["val"])
            counts["val"] += len(ids)
        for s in SPLITS:
            if eos is not None and counts[s]:
                np.asarray([eos], dtype=np.int32).tofile(files[s])
                counts[s] += 1
    finally:
        for f in files.values():
            f.close()
    if counts["train"] < 2:
        for f in tmp.values():
            f.unlink(missing_ok=True)
        raise ConfigError(f"data.source={str(source.path)!r} holds no training text (column or glob empty?)")
    for s in SPLITS:
        os.replace(tmp[s], token_file(directory, s))
    return counts
