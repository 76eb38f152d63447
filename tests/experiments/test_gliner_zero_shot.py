"""The gliner-zero-shot experiment, shrunken (a tiny backbone, 4 steps per run, 24 test sentences): it writes its
report, figures and results with every target the issue names, and the random-name control maps back to types."""

import json

import pytest

from genzoo.experiments import EXPERIMENTS
from genzoo.experiments.gliner_zero_shot import random_names
from tests.gliner_models import ner_backbone

TARGETS = {"seen_f1", "held_out_f1", "held_out_f1_minus_2x_random_string_f1", "seen_precision_gain_with_negatives"}


@pytest.mark.slow
def test_experiment_writes_outputs(tmp_path):
    backbone = ner_backbone(tmp_path / "backbone")
    sets = (f"model.model_name={backbone}", "model.hidden_size=32", "batch_size=8", "eval_batches=1",
            "progress=false", "save_every=4", "eval_every=4", "warmup_steps=2", "lr=3e-3")
    r = EXPERIMENTS.get("gliner-zero-shot")(out=str(tmp_path / "out"), steps=4, sets=sets, small=True)
    for f in ("report.md", "f1_per_type.png", "ablation.png", "results.json"):
        assert (tmp_path / "out" / f).exists(), f
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(saved["targets"]) == TARGETS
    assert all(set(t) == {"value", "target", "met"} for t in saved["targets"].values())
    assert set(saved["ablation"]) == {"1.0", "0.5", "0.0"} and len(saved["per_type"]) == 40
    s = saved["label_order_sensitivity"]
    assert s is not None and 0 <= s["decisions_flipped"] <= 1 and s["genzoo_average_sentences_changed"] == 0
    assert 0 <= r["seen"]["f1"] <= 1 and r["held_out"]["gold"] > 0


def test_random_names_are_fixed_and_distinct():
    names = random_names(["city", "time", "currency"])
    assert names == random_names(["city", "time", "currency"])
    assert len(set(names.values())) == 3 and not set(names.values()) & {"city", "time", "currency"}
