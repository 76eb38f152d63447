"""The gato experiment, shrunken (a tiny model, a few steps, few episodes): it trains the generalist and one
specialist per task, scores them, and writes report.md, the figures and results.json with every target."""

import json

import pytest

from genzoo.experiments import EXPERIMENTS


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_small_experiment_writes_outputs(tmp_path, workers):
    """workers=2: the runs train in spawned one-thread processes, after the shared tokenizer."""
    r = EXPERIMENTS.get("gato")(out=str(tmp_path), small=True, workers=workers)
    for f in ("report.md", "scores.png", "gridworld_rollout.png", "results.json"):
        assert (tmp_path / f).exists(), f
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["targets"]) == {"cartpole_normalised_score", "pendulum_normalised_score",
                                     "gridworld_normalised_score", "caption_accuracy", "text_loss_over_text_only",
                                     "minutes"}
    budgets = saved["specialist_steps"]
    assert set(budgets) == set(saved["mixture"]) and budgets["text"] == saved["steps"]
    for name, c in r["control"].items():
        assert len(c["generalist_returns"]) == 2 and c["expert"] > c["random"], name
        normalised = (c["generalist"] - c["random"]) / (c["expert"] - c["random"])
        assert c["generalist_normalised"] == pytest.approx(normalised)
    assert 0 <= r["caption"]["generalist"] <= 1 and r["text"]["ratio"] > 0
    assert (tmp_path / "specialist-cartpole" / "model.safetensors").exists()
    assert "| cartpole |" in (tmp_path / "report.md").read_text()
    assert saved["workers"] == workers and set(saved["train_seconds"]) == {"generalist"} | {
        f"specialist-{t}" for t in saved["mixture"]}
    shared = (tmp_path / "tokenizer" / "tokenizer.json").read_text()  # one vocabulary for every run
    assert all((tmp_path / k / "tokenizer.json").read_text() == shared for k in saved["train_seconds"])
