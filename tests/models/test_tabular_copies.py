"""No exact copies of training rows from TabDDPM: the rows' fingerprints see through file types (.csv, .parquet,
memory), a sampler forced to copy has those rows redrawn (with their class; the other rows untouched), copies that
cannot be redrawn away are an error, the fingerprints file round-trips and is refused when it does not fit, and
`genzoo generate` redraws by default, keeps copies with --allow-copies, and says which it did."""

import numpy as np
import pandas as pd
import pytest
import torch

import genzoo
from genzoo import CheckpointError, InputError
from genzoo.cli import main
from genzoo.data.tables import mixed_table
from genzoo.models.tabular import TableSchema, TrainingCopiesError, TrainingRows
from genzoo.models.tabular.copies import FILE


def forced(pairs=(("u", 0), ("v", 1)), repeat=4):
    """A table whose numeric column is constant, so every synthetic row is a copy when its (b, y) pair is a
    training row's: with the pairs (u, 0), (v, 1) about half the rows an untrained sampler draws are copies."""
    rows = [(2.5, b, y) for b, y in pairs] * repeat
    return pd.DataFrame(rows, columns=["a", "b", "y"])


def tiny(df, target="y"):
    s = TableSchema.fit(df, target)
    return genzoo.build("tab-ddpm-tiny", schema=s.to_dict(), class_counts=np.bincount(s.encode(df)["target"]).tolist())


def judge(train, synth) -> int:
    """Exact copies counted as the experiment counts them (rows as text), independent of the fingerprints."""
    rows = {tuple(r) for r in train.astype(str).itertuples(index=False)}
    return sum(tuple(r) in rows for r in synth.astype(str).itertuples(index=False))


def test_fingerprints_see_through_file_types(tmp_path):
    df = mixed_table(40)  # float, int, bool, text columns
    s = TableSchema.fit(df, "target")
    rows = TrainingRows.fit(s, df)
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet")
    for back in (pd.read_csv(tmp_path / "t.csv"), pd.read_parquet(tmp_path / "t.parquet"), df[df.columns[::-1]]):
        assert rows.copies(back, s).all()
    changed = pd.concat([df.iloc[:1].assign(x2=df["x2"].iloc[0] + 1e-12), df.iloc[1:2].assign(target="gamma"
                         if df["target"].iloc[1] != "gamma" else "alpha"), df.iloc[2:3].assign(flag=~df["flag"].iloc[2])])
    assert not rows.copies(changed, s).any()
    assert rows.copies(df.assign(count=df["count"].astype(float)), s).all()  # 3 and 3.0 are the same value
    with pytest.raises(InputError, match=r"lacks column\(s\) \['x2'\]"):
        rows.copies(df.drop(columns="x2"), s)


def test_forced_copies_are_redrawn_with_their_class():
    train = forced()
    m = tiny(train)
    rows = TrainingRows.fit(m.schema, train)
    raw = m.sample_table(40, generator=torch.Generator().manual_seed(0))
    assert raw.attrs["copies"] == {"checked": False}
    n_raw = judge(train, raw)
    assert n_raw > 5  # the sampler is forced to copy
    out = m.sample_table(40, generator=torch.Generator().manual_seed(0), exclude=rows)
    c = out.attrs["copies"]
    assert c["checked"] and c["first_draw"] == n_raw and c["redrawn"] >= n_raw and c["rounds"] >= 1
    assert judge(train, out) == 0 and len(out) == 40 and out.dtypes.to_dict() == train.dtypes.to_dict()
    kept = ~rows.copies(raw, m.schema)
    pd.testing.assert_frame_equal(out[kept], raw[kept])  # the rows that copied nothing are as drawn
    assert (out["y"] == raw["y"]).all()  # redrawn with their class label: the class balance is as drawn


def test_copies_that_cannot_be_avoided_are_an_error():
    train = forced(pairs=(("u", 0), ("v", 0), ("u", 1), ("v", 1)), repeat=2)  # every possible row is a training row
    m = tiny(train)
    rows = TrainingRows.fit(m.schema, train)
    with pytest.raises(TrainingCopiesError, match=r"10 of 10 synthetic rows still copy a training row after 3 "
                                                   r"round\(s\).*--allow-copies"):
        m.sample_table(10, generator=torch.Generator().manual_seed(0), exclude=rows, max_rounds=3)
    with pytest.raises(InputError, match="max_rounds must be an integer >= 0"):
        m.sample_table(10, exclude=rows, max_rounds=-1)
    other = TrainingRows.fit(TableSchema.fit(mixed_table(30), "target"), mixed_table(30))
    with pytest.raises(CheckpointError, match="belongs to another run"):
        m.sample_table(10, exclude=other)
    with pytest.raises(InputError, match="positive integer"):
        m.sample_table(-3, exclude=rows)


def test_fingerprints_file_round_trips(tmp_path):
    df = mixed_table(30)
    s = TableSchema.fit(df, "target")
    rows = TrainingRows.fit(s, df)
    rows.save(tmp_path)
    back = TrainingRows.load(tmp_path)
    assert np.array_equal(back.fingerprints, rows.fingerprints) and len(back) == 30
    assert back.key == rows.key and back.columns == list(df.columns) and back.copies(df, s).all()
    assert TrainingRows.fit(s, df).key != rows.key  # a random key per run
    (tmp_path / FILE).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(CheckpointError, match="cannot read the training-row fingerprints"):
        TrainingRows.load(tmp_path)
    with pytest.raises(CheckpointError, match="--allow-copies"):
        TrainingRows.load(tmp_path / "nowhere")


@pytest.mark.slow
def test_generate_redraws_copies_unless_allowed(tmp_path, capsys):
    data, run, out = tmp_path / "forced.csv", tmp_path / "run", tmp_path / "synthetic.csv"
    train = forced(repeat=5)
    train.to_csv(data, index=False)
    assert main(["train", "tabular-ddpm", "--data", str(data), "--set", "data.target=y", "--out", str(run), "--steps",
                 "2", "--no-progress", "--set", "model.preset=tab-ddpm-tiny", "--set", "batch_size=4", "--set",
                 "eval_every=2", "--set", "save_every=2", "--set", "warmup_steps=1"]) == 0
    saved = TrainingRows.load(run)  # the run directory, and each checkpoint, holds the rows' fingerprints
    assert saved.copies(train, genzoo.load(run).schema).all() and (run / "checkpoints" / "step-00000002" / FILE).exists()
    capsys.readouterr()
    assert main(["generate", str(run), "--rows", "30", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "wrote 30 synthetic rows" in said and "none copies a training row (" in said and "of the first draw did" in said
    assert judge(train, pd.read_csv(out)) == 0
    assert main(["generate", str(run), "--rows", "30", "--out", str(out), "--allow-copies"]) == 0
    n = judge(train, pd.read_csv(out))
    assert n > 0 and f"; {n} copy a training row (kept: --allow-copies)" in capsys.readouterr().out
    (run / FILE).unlink()
    assert main(["generate", str(run), "--rows", "30", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "no fingerprints of the training rows" in err and "--allow-copies" in err and err.count("\n") == 1
    assert main(["generate", str(run), "--rows", "5", "--out", str(out), "--allow-copies"]) == 0
    assert "not checked for copies of training rows" in capsys.readouterr().out
    assert main(["generate", str(run), "--rows", "-3", "--out", str(out)]) == 2
    assert "argument --rows: must be a positive integer, got -3" in capsys.readouterr().err
