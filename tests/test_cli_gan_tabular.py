"""The command line for GANs and tables: `genzoo train tabular-ft --data table.csv --set data.target=label`,
`genzoo generate RUN --rows N --out synthetic.csv` (TabDDPM), `genzoo generate RUN --class 7` (GAN), and the clear
one-line errors for a bad table (missing target column, mixed types, NaNs) and a class index out of range."""

import numpy as np
import pandas as pd
import pytest

from genzoo.cli import main
from genzoo.data.tables import mixed_table

FT = ["--no-progress", "--set", "model.preset=ft-tiny", "--set", "batch_size=16", "--set", "eval_every=2",
      "--set", "save_every=2", "--set", "warmup_steps=1"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "table.csv"
    mixed_table(120).rename(columns={"target": "label"}).to_csv(path, index=False)
    return path


def test_train_tabular_ft_on_a_csv(tmp_path, table, capsys):
    run = tmp_path / "ft"
    assert main(["train", "tabular-ft", "--data", str(table), "--set", "data.target=label", "--out", str(run),
                 "--steps", "4", *FT]) == 0
    assert "val_accuracy" in capsys.readouterr().out
    import genzoo

    model = genzoo.load(run)
    assert model.schema.target.name == "label" and set(model.predict(pd.read_csv(table))) <= {"alpha", "beta", "gamma"}
    assert main(["generate", str(run), "--rows", "5"]) == 2
    assert "FTTransformer, which does not generate" in capsys.readouterr().err


def test_tab_ddpm_generates_a_csv(tmp_path, table, capsys):
    run, out = tmp_path / "ddpm", tmp_path / "synthetic.csv"
    assert main(["train", "tabular-ddpm", "--data", str(table), "--set", "data.target=label", "--out", str(run),
                 "--steps", "3", "--no-progress", "--set", "model.preset=tab-ddpm-tiny", "--set", "batch_size=16",
                 "--set", "eval_every=3", "--set", "warmup_steps=1"]) == 0
    assert main(["generate", str(run), "--rows", "40", "--out", str(out), "--seed", "1"]) == 0
    assert "wrote 40 synthetic rows" in capsys.readouterr().out
    synth, real = pd.read_csv(out), pd.read_csv(table)
    assert list(synth.columns) == list(real.columns) and len(synth) == 40
    assert synth.dtypes.to_dict() == real.dtypes.to_dict()
    assert set(synth["colour"]) <= set(real["colour"]) and set(synth["label"]) <= set(real["label"])
    assert main(["generate", str(run), "--out", str(out)]) == 2
    assert "needs --rows N" in capsys.readouterr().err


@pytest.mark.parametrize("change,extra,message", [
    (None, ["--set", "data.target=outcome"], "data.target='outcome' is not a column of the table; columns: x2, x3"),
    (None, [], "data.target: name the column to predict"),
    ("mixed", ["--set", "data.target=label"], "column 'count' mixes numbers (119 rows) and text (1 rows"),
    ("nan", ["--set", "data.target=label"], "column 'x5' has 3 missing value(s) (NaN); drop or fill them, or set "
                                            "data.missing=impute"),
])
def test_bad_tables_are_one_line_errors(tmp_path, change, extra, message, capsys):
    df = mixed_table(120).rename(columns={"target": "label"})
    if change == "mixed":
        df["count"] = df["count"].astype(object)
        df.loc[10, "count"] = "n/a?"
    if change == "nan":
        df.loc[[1, 2, 3], "x5"] = np.nan
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    assert main(["train", "tabular-ft", "--data", str(path), "--out", str(tmp_path / "r"), "--steps", "1", *extra,
                 *FT]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "r" / "checkpoints").exists()


def test_nans_imputed_when_asked(tmp_path, capsys):
    df = mixed_table(120).rename(columns={"target": "label"})
    df.loc[[1, 2, 3], "x5"] = np.nan
    df.loc[[4], "colour"] = None
    path = tmp_path / "nan.parquet"
    df.to_parquet(path)
    assert main(["train", "tabular-ft", "--data", str(path), "--set", "data.target=label", "--set",
                 "data.missing=impute", "--out", str(tmp_path / "r"), "--steps", "2", *FT]) == 0


def test_gan_generate_class(tmp_path, capsys):
    run = tmp_path / "gan"
    assert main(["train", "gan-digits", "--out", str(run), "--steps", "2", "--no-progress", "--set",
                 "model.preset=gan-tiny", "--set", "batch_size=8", "--set", "eval_every=2"]) == 0
    out = tmp_path / "seven.png"
    assert main(["generate", str(run), "--class", "7", "--num-samples", "4", "--out", str(out)]) == 0
    assert out.stat().st_size > 0 and "wrote 4 images (class 7)" in capsys.readouterr().out
    assert main(["generate", str(run), "--class", "10"]) == 1
    assert "class index out of range: labels must be in [0, 9], got 10" in capsys.readouterr().err
