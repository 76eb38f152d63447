"""The tabular experiment, shrunken: FT-Transformer and gradient boosting on the same splits, TabDDPM judged by
machine-learning efficacy, per-column distances and privacy, with every target the issue names."""

import json

import pandas as pd
import pytest

from genzoo.experiments import EXPERIMENTS
from genzoo.experiments.tabular import privacy, score


@pytest.mark.slow
def test_experiment_writes_outputs(tmp_path):
    r = EXPERIMENTS.get("tabular")(out=str(tmp_path), seeds=2, tables=("mixed",), ft_steps=4, ft_eval=2,
                                   ddpm_steps=3, workers=0, ft_sets=("model.preset=ft-tiny", "batch_size=16"),
                                   ddpm_sets=("model.preset=tab-ddpm-tiny", "batch_size=16"),
                                   gb_max_iter=10)
    for f in ("report.md", "results.json", "prediction.png", "generation.png"):
        assert (tmp_path / f).exists(), f
    saved = json.loads((tmp_path / "results.json").read_text())
    for name in ("mixed",):  # the table with every column type
        p, g = saved["prediction"][name], saved["generation"][name]
        assert len(p["seeds"]) == 2
        assert all(s["ft_best_step"] in (2, 4) for s in p["seeds"])
        assert 0 <= p["ft_points"] <= 100 and 0 <= p["gb_points"] <= 100
        assert g["rows"] == 800  # as many rows as the training split
        assert g["exact_copies"] == 0 and g["dcr_test_median"] > 0  # copies are redrawn, as `genzoo generate` does
        assert g["raw_copies"] >= 0 and g["copies_redrawn"] >= g["raw_copies"] and g["copy_redraw_rounds"] >= 0
    assert "the raw sampler (before the copy check)" in (tmp_path / "report.md").read_text()
    assert len(r["targets"]) == 3


def test_privacy_counts_exact_copies():
    from genzoo.data.tables import mixed_table
    from genzoo.models.tabular import TableSchema

    df = mixed_table(60)
    s = TableSchema.fit(df, "target")
    synth = pd.concat([df.iloc[:3], df.iloc[3:10].assign(x2=df["x2"].iloc[3:10] + 0.5)])
    p = privacy(df, synth, df.iloc[10:20], s)
    assert p["exact_copies"] == 3 and p["dcr_test_median"] == 0.0
    assert score([1.0, 2.0, 3.0], [1.0, 2.0, 4.0], "regression")["rmse"] == (1 / 3) ** 0.5
