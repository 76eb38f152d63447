"""The user's data: every source kind read with its columns, the hash split, token files, errors named."""

import json

import numpy as np
import pytest
import torch

from genzoo import ConfigError
from genzoo.data import open_source
from genzoo.data.sources import split_rows
from genzoo.data.tokens import read_tokens, write_token_files
from genzoo.tokenizers import train_bpe

TEXTS = [f"row {i}: the quick brown fox number {i} jumps.\nsecond line {i}\n" for i in range(60)]


def write_tables(d):
    import pyarrow as pa
    import pyarrow.csv as pc
    import pyarrow.parquet as pq

    rows = {"text": TEXTS, "label": list(range(60))}
    (d / "t.jsonl").write_text("".join(json.dumps({"text": t, "label": i}) + "\n" for i, t in enumerate(TEXTS)))
    pq.write_table(pa.table(rows), d / "t.parquet", row_group_size=7)
    pc.write_csv(pa.table(rows), d / "t.csv")


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".csv"])
def test_tables_give_their_column_in_order(tmp_path, suffix):
    write_tables(tmp_path)
    src = open_source(str(tmp_path / f"t{suffix}"))
    assert [p.text for p in src.pieces("text")] == TEXTS
    assert [v for _, _, (v,) in src.rows(["label"])] == [str(i) for i in range(60)]
    with pytest.raises(ConfigError, match=r"data.text_column='body'.*columns: text, label"):
        src.check_columns(["body"], ["text_column"])


def test_folder_glob_and_text_chunks(tmp_path, monkeypatch):
    import genzoo.data.sources as sources

    monkeypatch.setattr(sources, "CHUNK_BYTES", 64)
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("".join(TEXTS[:5]))
    (tmp_path / "sub" / "b.txt").write_text("b file\n")
    (tmp_path / "skip.md").write_text("not matched\n")
    src = open_source(str(tmp_path), "**/*.txt")
    assert [f.name for f in src.files] == ["a.txt", "b.txt"]
    pieces = list(src.pieces())
    assert "".join(p.text for p in pieces if p.file == 0) == "".join(TEXTS[:5])  # chunks at line ends, nothing lost
    assert all(p.text.endswith("\n") for p in pieces)
    assert [p.joined for p in pieces if p.file == 0] == [False] + [True] * (sum(p.file == 0 for p in pieces) - 1)
    capped = [len(p.text) for p in src.pieces(max_bytes=150)]  # stops at the piece that reaches max_bytes
    assert sum(capped) >= 150 > sum(capped[:-1])


def test_token_files_hold_every_token_once_split_by_hash(tmp_path):
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    src = open_source(str(tmp_path / "t.jsonl"))
    tok = train_bpe(TEXTS, 300)
    counts = write_token_files(src, tok, tmp_path / "data", column="text", val_percent=20.0, max_bytes=None)
    train, val = read_tokens(tmp_path / "data", "train"), read_tokens(tmp_path / "data", "val")
    assert (train.numel(), val.numel()) == (counts["train"], counts["val"]) and val.numel() > 0
    eos = tok.eos_id
    docs = [tok.decode([t for t in part if t != eos]) for part in
            np.split(torch.cat([train, val]).numpy(), np.where(torch.cat([train, val]).numpy() == eos)[0])]
    assert sorted(d for d in docs if d) == sorted(TEXTS)  # every row, whole, in exactly one split
    again = write_token_files(src, tok, tmp_path / "data2", column="text", val_percent=20.0, max_bytes=None)
    assert again == counts and torch.equal(read_tokens(tmp_path / "data2", "val"), val)


def test_split_rows_and_small_source_fallback(tmp_path):
    write_tables(tmp_path)
    src = open_source(str(tmp_path / "t.csv"))
    train, val = split_rows(src, ["text", "label"], ["input_column", "target_column"], 10.0)
    assert len(train) + len(val) == 60 and val
    (tmp_path / "one.jsonl").write_text('{"a": "x", "b": "y"}\n{"a": "z", "b": "w"}\n')
    train, val = split_rows(open_source(str(tmp_path / "one.jsonl")), ["a", "b"], ["input_column", "target_column"], 0.01)
    assert len(train) == 1 and val == [("z", "w")]


def test_bad_sources_are_named(tmp_path):
    with pytest.raises(ConfigError, match="no such file or folder"):
        open_source(str(tmp_path / "missing.jsonl"))
    (tmp_path / "x.docx").write_text("?")
    with pytest.raises(ConfigError, match=r"\.docx file is not read"):
        open_source(str(tmp_path / "x.docx"))
    with pytest.raises(ConfigError, match="no file in the folder matches data.glob"):
        open_source(str(tmp_path), "**/*.txt")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(ConfigError, match="cannot read it as .jsonl"):
        list(open_source(str(tmp_path / "bad.jsonl")).pieces())
