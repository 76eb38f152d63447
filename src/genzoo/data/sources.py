"""The user's own data (`data.source`, `genzoo train RECIPE --data PATH`): a folder of files picked by a glob, one
`.txt` file, or a table (`.jsonl`, `.parquet`, `.csv`) whose columns the recipe names. Tables are read with pyarrow
in record batches (`pyarrow.json.open_json`, `pyarrow.csv.open_csv`, `ParquetFile.iter_batches`) and text files in
chunks of lines, so no file is ever held in memory whole.

Every source is a sequence of *pieces*: a table row, or a chunk of about `CHUNK_BYTES` of a text file (cut at a line
end). A piece goes to the validation split when a hash of its key (file and row, or file and chunk) falls under
`val_percent`, as the standard-library corpus splits by file: the split never depends on the order of reading nor
on the other pieces. The source's fingerprint (`Source.manifest`) is the file list and a SHA-256 of every file's
bytes, recorded with the run, so a resumed run can tell that its data changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

TABLES = (".jsonl", ".parquet", ".csv")
TEXTS = (".txt",)
CHUNK_BYTES = 16 * 1024  # a text file is read (and split) in pieces of about this size, cut at line ends
ROWS_PER_BATCH = 1024


@dataclass(frozen=True)
class Piece:
    """One unit of text: `file` (index into Source.files) and `index` (row, or chunk of a text file). `joined`: the
    piece continues the previous piece of the same file (the next chunk of a text), so no end-of-text goes between."""

    file: int
    index: int
    text: str
    joined: bool = False

    def key(self, source: "Source") -> str:
        return f"{source.relative(self.file)}#{self.index}"


def in_val(key: str, val_percent: float) -> bool:
    """The piece of this key is held out for validation (a hash of the key, so the split is stable)."""
    bucket = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) % 10000
    return bucket < val_percent * 100


def _arrow():
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ConfigError("reading .jsonl / .parquet / .csv data needs pyarrow: pip install 'genzoo[data]'") from None


@dataclass
class Source:
    path: Path
    root: Path
    files: list[Path]

    def relative(self, i: int) -> str:
        return self.files[i].relative_to(self.root).as_posix()

    @property
    def manifest(self) -> dict:
        """Where the data came from and a hash of every byte of it."""
        h = hashlib.sha256()
        for f in self.files:
            h.update(self.relative(self.files.index(f)).encode() + b"\0")
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            h.update(b"\0")
        return {"source": str(self.path), "files": [self.relative(i) for i in range(len(self.files))],
                "sha256": h.hexdigest()}

    def columns_of(self, i: int) -> list[str]:
        """The column names of table file i."""
        f = self.files[i]
        _arrow()
        if f.suffix == ".parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(f).schema_arrow.names)
        first = next(_batches(f, None), None)
        return [] if first is None else list(first.schema.names)

    def check_columns(self, columns: list[str], field_names: list[str]) -> None:
        """Every table file has every column (named by the recipe fields `field_names`), before anything is read."""
        for i, f in enumerate(self.files):
            if f.suffix not in TABLES:
                continue
            have = self.columns_of(i)
            for col, name in zip(columns, field_names):
                if col not in have:
                    raise ConfigError(f"data.{name}={col!r}: {f} has no such column; columns: {', '.join(have)}")

    def pieces(self, column: str = "text", max_bytes: int | None = None) -> Iterator[Piece]:
        """The text of every file in order: table rows of `column`, chunks of text files; at most max_bytes of text."""
        total = 0
        for i, f in enumerate(self.files):
            it = self._table_rows(i, [column]) if f.suffix in TABLES else self._text_chunks(i)
            for piece in it:
                yield piece
                total += len(piece.text.encode("utf-8"))
                if max_bytes is not None and total >= max_bytes:
                    return

    def rows(self, columns: list[str], max_rows: int | None = None) -> Iterator[tuple[int, int, tuple]]:
        """(file, row, values) of every row of every table file, for the given columns."""
        n = 0
        for i, f in enumerate(self.files):
            if f.suffix not in TABLES:
                raise ConfigError(f"{f}: this task reads columns {columns} from a table (.jsonl, .parquet, .csv), "
                                  f"not a {f.suffix or 'plain'} file")
            for row, values in self._rows(i, columns):
                yield i, row, values
                n += 1
                if max_rows is not None and n >= max_rows:
                    return

    def _text_chunks(self, i: int) -> Iterator[Piece]:
        lines, size, index = [], 0, 0
        with open(self.files[i], encoding="utf-8", errors="replace", newline="") as fh:
            for line in fh:
                lines.append(line)
                size += len(line)
                if size >= CHUNK_BYTES:
                    yield Piece(i, index, "".join(lines), joined=index > 0)
                    lines, size, index = [], 0, index + 1
        if lines:
            yield Piece(i, index, "".join(lines), joined=index > 0)

    def _table_rows(self, i: int, columns: list[str]) -> Iterator[Piece]:
        for row, (text,) in self._rows(i, columns):
            yield Piece(i, row, text)

    def _rows(self, i: int, columns: list[str]) -> Iterator[tuple[int, tuple]]:
        f, row = self.files[i], 0
        for batch in _batches(f, columns):
            names = batch.schema.names
            for c in columns:
                if c not in names:
                    raise ConfigError(f"{f}: no column {c!r}; columns: {', '.join(names)}")
            cols = [batch.column(names.index(c)).to_pylist() for c in columns]
            for values in zip(*cols):
                yield row, tuple("" if v is None else v if isinstance(v, (str, bytes)) else str(v) for v in values)
                row += 1


def _batches(f: Path, columns: list[str] | None):
    """Record batches of a table file, only `columns` where the reader can choose."""
    _arrow()
    import pyarrow as pa

    try:
        if f.suffix == ".parquet":
            import pyarrow.parquet as pq

            yield from pq.ParquetFile(f).iter_batches(batch_size=ROWS_PER_BATCH, columns=columns)
        elif f.suffix == ".csv":
            import pyarrow.csv as pc

            convert = pc.ConvertOptions(column_types={c: pa.string() for c in columns or []},
                                        include_columns=columns, strings_can_be_null=False) if columns else None
            yield from pc.open_csv(f, convert_options=convert)
        else:
            import pyarrow.json as pj

            yield from pj.open_json(f)
    except (pa.ArrowInvalid, pa.ArrowKeyError, OSError) as e:
        raise ConfigError(f"{f}: cannot read it as {f.suffix} ({str(e).splitlines()[0]})") from None


def open_source(path: str, glob: str = "**/*.txt") -> Source:
    """The files of `path`: a folder (files matching `glob`, sorted) or a single .txt / .jsonl / .parquet / .csv."""
    p = Path(path).expanduser()
    kinds = ", ".join(TEXTS + TABLES)
    if not p.exists():
        raise ConfigError(f"data.source={path!r}: no such file or folder")
    if p.is_dir():
        files = sorted(f for f in p.glob(glob) if f.is_file())
        if not files:
            raise ConfigError(f"data.source={path!r}: no file in the folder matches data.glob={glob!r}")
        return Source(p.resolve(), p.resolve(), [f.resolve() for f in files])
    if p.suffix not in TEXTS + TABLES:
        raise ConfigError(f"data.source={path!r}: a {p.suffix or 'suffix-less'} file is not read; give a folder or "
                          f"one of {kinds}")
    return Source(p.resolve(), p.resolve().parent, [p.resolve()])


def split_rows(source: Source, columns: list[str], field_names: list[str], val_percent: float,
               max_rows: int | None = None) -> tuple[list[tuple], list[tuple]]:
    """(train rows, validation rows) of the given columns, split by a hash of each row's key; a source whose split
    leaves no validation row gives its last row. The rows are held in memory (text pairs, image paths)."""
    source.check_columns(columns, field_names)
    train, val = [], []
    for i, row, values in source.rows(columns, max_rows):
        (val if in_val(f"{source.relative(i)}#{row}", val_percent) else train).append(values)
    if not val and len(train) > 1:
        val.append(train.pop())
    if not train:
        raise ConfigError(f"data.source={str(source.path)!r} holds no training rows")
    return train, val
