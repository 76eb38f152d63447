"""`genzoo experiment outliers`, shrunken (tiny models, a few steps): it trains the four arms of both genres,
writes report.md, the figures and results.json with every target the issue names, and the outlier metrics are
well-formed."""

import json

import pytest
import torch

from genzoo.experiments import EXPERIMENTS
from genzoo.experiments.outliers import ARMS, GENRES


@pytest.mark.slow
def test_experiment_writes_report_figures_and_results(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        EXPERIMENTS.get("outliers")(out=str(tmp_path), steps=2, small=True, batches=1, calibration=1)
    finally:
        torch.set_num_threads(threads)
    for f in ("report.md", "layers.png", "perplexity.png", "growth.png", "results.json"):
        assert (tmp_path / f).exists(), f
    r = json.loads((tmp_path / "results.json").read_text())
    assert set(r["genres"]) == set(GENRES) and all(set(arms) == set(ARMS) for arms in r["genres"].values())
    for genre, arms in r["genres"].items():
        for arm, a in arms.items():
            assert len(a["layers"]) == 2 and a["avg_kurtosis"] > 1 and a["max_inf_norm"] > 0
            assert 1 < a["fp32_ppl"] < 1e4 and 1 < a["w8a8_ppl"] < 1e4 and 1 < a["bf16_ppl"] < 1e4
            assert abs(sum(a["outlier_kinds"].values()) - 1) < 1e-6
            assert 0 < a["attn_first"] < 1 and 0 <= a["attn_delimiters"] <= 1
            # only the variants that can attend to nothing have weights summing below 1
            assert (abs(a["attn_total"] - 1) < 1e-5) == (arm in ("vanilla", "gated")), (genre, arm, a["attn_total"])
    names = set(r["targets"])
    for genre in GENRES:
        assert f"{genre}_vanilla_kurtosis" in names and f"{genre}_vanilla_outliers_at_whitespace_punctuation" in names
        for arm in ("softmax1", "clipped", "gated"):
            for what in ("kurtosis_cut", "w8a8_increase_cut", "fp32_ppl_vs_vanilla", "bf16_ppl_vs_vanilla"):
                assert f"{genre}_{arm}_{what}" in names
    assert r["targets"]["decoder_vanilla_kurtosis"]["target"] == ">= 10"
    assert "machine" in r and r["seconds"] > 0 and len(r["growth"]["decoder"]) >= 1
    assert "97%" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("steps,message", [("0", "must be a positive integer"), ("x", "invalid int value")])
def test_cli_experiment_steps_is_checked(steps, message, capsys):
    from genzoo.cli import main

    assert main(["experiment", "outliers", "--steps", steps, "--out", "/nonexistent/never"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
