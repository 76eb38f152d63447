"""The fusellm experiment, shrunken (tiny models, little text, a few steps), writes its report, figures and
results with both targets, bits per character for every model on every domain and the alignment rates."""

import json

import pytest

from genzoo.experiments import EXPERIMENTS


@pytest.mark.slow
def test_experiment_writes_outputs(tmp_path):
    r = EXPERIMENTS.get("fusellm")(out=str(tmp_path), small=True)
    for f in ("report.md", "results.json", "bits_per_char.png", "alignment.png", "curves.png"):
        assert (tmp_path / f).exists(), f
    saved = json.loads((tmp_path / "results.json").read_text())
    models = {"clm", "min-ce", "avg-ce", "gpt2-bytes", "llama-sp", "mistral-bpe"}
    for domain in ("text", "net", "num", "union"):
        assert set(saved["bits_per_char"][domain]) == models
        assert all(0 < v < 20 for v in saved["bits_per_char"][domain].values())
    for name in ("gpt2-bytes", "llama-sp", "mistral-bpe", "mean"):
        a = saved["alignment"][name]
        assert 0 <= a["exact"] <= a["mined"] <= 1
    assert len(saved["targets"]) == 2 and all(set(t) == {"value", "target", "met"} for t in saved["targets"].values())
    assert isinstance(saved["min_ce_beats_avg_ce"], bool) and "MinCE" in (tmp_path / "report.md").read_text()
    assert r["setup"]["small"] and saved["seconds"] > 0
