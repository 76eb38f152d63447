"""The fusellm experiment, shrunken (tiny models, little text, a few steps), writes its report, figures and
results with both targets, bits per character for every model on every domain, the sources' specialist table,
the gold mass of the fused distributions and the alignment rates."""

import json

import pytest

from genzoo.experiments import EXPERIMENTS


@pytest.mark.slow
def test_experiment_writes_outputs(tmp_path):
    r = EXPERIMENTS.get("fusellm")(out=str(tmp_path), small=True)
    for f in ("report.md", "results.json", "bits_per_char.png", "alignment.png", "curves.png"):
        assert (tmp_path / f).exists(), f
    saved = json.loads((tmp_path / "results.json").read_text())
    sources = ("gpt2-bpe2048", "llama-sp2048", "mistral-bpe4096")
    models = {"clm", "min-ce", "avg-ce", *sources}
    for domain in ("text", "net", "num", "union"):
        assert set(saved["bits_per_char"][domain]) == models
        assert all(0 < v < 20 for v in saved["bits_per_char"][domain].values())
    for name in (*sources, "mean"):
        a = saved["alignment"][name]
        assert 0 <= a["exact"] <= a["mined"] <= 1
    assert len(saved["targets"]) == 2 and all(set(t) == {"value", "target", "met"} for t in saved["targets"].values())
    assert isinstance(saved["min_ce_beats_avg_ce"], bool) and "MinCE" in (tmp_path / "report.md").read_text()
    assert r["setup"]["small"] and saved["seconds"] > 0 and saved["setup"]["cpu_s"] > 0
    spec = saved["specialists"]
    assert [spec[n]["domain"] for n in sources] == ["text", "net", "num"]
    for n in sources:  # the table is the bits/char figures, and "best on its own domain" is read off them
        assert spec[n]["bits_per_char"] == {d: saved["bits_per_char"][d][n] for d in ("text", "net", "num")}
        own = spec[n]["domain"]
        assert spec[n]["best_source_on_own_domain"] == (
            min(sources, key=lambda m: saved["bits_per_char"][own][m]) == n)
    gold = saved["gold_mass"]
    for m in ("min-ce", "avg-ce"):
        assert 0 < gold[m] <= 1
    for n in sources:
        g = gold[n]
        assert 0 <= g["aligned"] <= 1 and 0 < g["all"] <= 1 and 0 <= g["aligned_share"] <= 1
        # fallback positions put all their mass on the gold token: the mean over all positions is at least
        # the share of fallbacks
        assert g["all"] >= 1 - g["aligned_share"] - 1e-6
    report = (tmp_path / "report.md").read_text()
    assert "specialists" in report and "Gold mass" in report
