"""Exact copies of training rows: a synthetic row equal, column by column, to a row of the table the generator was
trained on. A diffusion model can emit one without memorising anything: the inverse quantile map of a column
whose training values repeat (iris: measurements on a 0.1 grid) is flat over each repeated value, so most sampled
values land exactly on a training value (67-82% per iris column), and on a small clustered table whole rows do.
TabDDPM's own code snaps integer columns of <= 32 values to training values on purpose (`round_columns` in
yandex-research/tab-ddpm, scripts/sample.py), which makes such copies likelier still; and its privacy study
redraws the synthetic rows closest to a training row, up to 10 rounds (scripts/resample_privacy.py). genzoo does
the same at the exact-copy threshold: `TabDDPM.sample_table(n, exclude=TrainingRows)` redraws every row whose
fingerprint is a training row's, with the same class label, for at most `max_rounds` rounds, and raises
`TrainingCopiesError` if copies remain.

A row's fingerprint is a keyed BLAKE2b-64 (RFC 7693) of its canonical form, the values as the generated table
holds them: numbers as float64 (an int column's 3 and a float's 3.0 are equal, -0.0 is 0.0, every NaN is one NaN),
categorical and text values as the text the table codec uses ("True", "7", "red"; a missing one '<missing>'),
in the table's column order, the target included. A training file and the synthetic table it is compared with
hash alike whether read from .csv, .parquet or memory. The fingerprints are 8 bytes a row, sorted, in
`training-rows.safetensors` beside the model (no pickle); the check is `numpy.isin`, O((N + M) log N), and a
collision (2^-64 a pair) only redraws a row that was no copy.

Privacy: the file is a membership test: whoever holds the run directory and can list candidate rows learns which
were in the training table (the random key only stops precomputed tables across runs). The run directory is
already as sensitive: the schema's quantiles list every training value of every numeric column. Share the
synthetic table, not the run directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import uuid
from pathlib import Path

import numpy as np

from ...errors import CheckpointError, GenzooError, InputError
from ...interop.atomic import file_mode
from .schema import TableSchema, _as_text

FILE = "training-rows.safetensors"
FORMAT = "genzoo-training-rows"
VERSION = "1"
HASH = "blake2b-64-keyed"
CANONICAL_NAN = np.float64("nan")


class TrainingCopiesError(GenzooError):
    """Copies of training rows remained after the bounded number of redraws (a model that memorised its table)."""


def _columns(schema: TableSchema) -> list[str]:
    """The generated columns in the table's order: the features and the target."""
    names = {c.name for c in schema.features} | ({schema.target.name} if schema.target is not None else set())
    return [n for n in schema.order if n in names]


def canonical_rows(schema: TableSchema, df) -> np.ndarray:
    """(N, C) uint64: each value of the generated columns in its canonical form (numbers: float64 bits; categories
    and text: the first 8 bytes of the BLAKE2b of their text)."""
    import pandas as pd

    by_name = {c.name: c for c in schema.features}
    if schema.target is not None:
        by_name[schema.target.name] = schema.target
    names = _columns(schema)
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise InputError(f"the table lacks column(s) {missing}; it has: {', '.join(map(str, df.columns))}")
    words = np.empty((len(df), len(names)), np.uint64)
    for j, name in enumerate(names):
        s, c = df[name], by_name[name]
        if c.kind == "numeric":
            x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan) + 0.0  # -0.0 -> 0.0
            x[np.isnan(x)] = CANONICAL_NAN
            words[:, j] = x.view(np.uint64)
        else:
            text = _as_text(s.astype(object).where(s.notna(), None), None)  # pd.NA, NaN, None -> '<missing>'
            codes, uniques = pd.factorize(pd.Series(text, dtype=object))
            digest = np.array([int.from_bytes(hashlib.blake2b(u.encode(), digest_size=8).digest(), "little")
                               for u in uniques], np.uint64)
            words[:, j] = digest[codes] if len(codes) else words[:, j]
    return words


def fingerprints(words: np.ndarray, key: bytes) -> np.ndarray:
    """(N,) uint64: the keyed BLAKE2b-64 of each canonical row (N, C) (one hash call per row: O(N))."""
    rows = np.ascontiguousarray(words.astype("<u8", copy=False))
    width = rows.shape[1] * 8
    flat = rows.view(np.uint8).reshape(len(rows), width) if width else np.zeros((len(rows), 0), np.uint8)
    out = np.fromiter((int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8, key=key).digest(), "little")
                       for r in flat), np.uint64, count=len(rows))
    return out


class TrainingRows:
    """The fingerprints of a table's rows, to tell which synthetic rows copy one.

    `TrainingRows.fit(schema, df)` on the training table (every row of the user's file: the validation rows are
    the user's data too); `.copies(synthetic_df)` -> (M,) bool; `.save(dir)` / `TrainingRows.load(dir)`."""

    def __init__(self, fingerprints: np.ndarray, key: bytes, columns: list[str]):
        self.fingerprints = np.unique(np.asarray(fingerprints, np.uint64))  # sorted, duplicates dropped
        self.key = key
        self.columns = list(columns)

    @classmethod
    def fit(cls, schema: TableSchema, df, key: bytes | None = None) -> "TrainingRows":
        key = key if key is not None else secrets.token_bytes(16)
        return cls(fingerprints(canonical_rows(schema, df), key), key, _columns(schema))

    def __len__(self) -> int:
        return len(self.fingerprints)

    def check_schema(self, schema: TableSchema) -> None:
        if _columns(schema) != self.columns:
            raise CheckpointError(f"{FILE} fingerprints the columns {self.columns}, but the model generates "
                                  f"{_columns(schema)}: the file belongs to another run")

    def copies(self, df, schema: TableSchema) -> np.ndarray:
        """(M,) bool: which rows of `df` equal a training row."""
        self.check_schema(schema)
        return np.isin(fingerprints(canonical_rows(schema, df), self.key), self.fingerprints)

    # ---- the file ----
    def save(self, directory) -> Path:
        """`directory`/training-rows.safetensors, written whole then renamed into place."""
        from safetensors.numpy import save_file

        path = Path(directory) / FILE
        tmp = path.with_name(f".{FILE}.{uuid.uuid4().hex[:8]}.tmp")
        meta = {"format": FORMAT, "version": VERSION, "hash": HASH, "key": self.key.hex(),
                "columns": json.dumps(self.columns), "rows": str(len(self))}
        try:
            save_file({"fingerprints": self.fingerprints}, str(tmp), metadata=meta)
            os.chmod(tmp, file_mode())  # safetensors writes 0600; every other file of a run gets the umask's mode
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, directory) -> "TrainingRows":
        from safetensors import SafetensorError, safe_open

        path = Path(directory) / FILE
        if not path.is_file():
            raise CheckpointError(f"{path}: no fingerprints of the training rows, so the synthetic rows cannot be "
                                  "checked for copies (runs trained before this check lack the file: train again, "
                                  "or pass --allow-copies / exclude=None to sample unchecked)")
        try:
            with safe_open(str(path), "np") as f:
                meta = f.metadata() or {}
                prints = f.get_tensor("fingerprints")
        except (SafetensorError, OSError, ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: cannot read the training-row fingerprints ({str(e)[:200]})") from None
        if meta.get("format") != FORMAT or meta.get("hash") != HASH or meta.get("version") != VERSION:
            raise CheckpointError(f"{path}: not a {FORMAT} v{VERSION} file ({HASH}); metadata: {meta}")
        if prints.dtype != np.uint64 or prints.ndim != 1:
            raise CheckpointError(f"{path}: fingerprints must be a 1-d uint64 tensor, got {prints.dtype} "
                                  f"{prints.shape}")
        try:
            return cls(prints, bytes.fromhex(meta["key"]), json.loads(meta["columns"]))
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{path}: bad metadata ({e})") from None
