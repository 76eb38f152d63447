"""The clip-zero-shot experiment writes its report, confusion matrix and results; recall@k is right."""

import json

import torch

from genzoo.experiments import EXPERIMENTS
from genzoo.models.clip import recall_at_k


def test_experiment_writes_outputs(tmp_path):
    r = EXPERIMENTS.get("clip-zero-shot")(out=str(tmp_path), steps=10, sets=("progress=false", "batch_size=32"))
    for f in ("report.md", "confusion.png", "results.json"):
        assert (tmp_path / f).exists(), f
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["zero_shot_single_template"]) == 8
    assert sum(map(sum, saved["confusion"])) == saved["held_out_images"]
    assert 0 <= r["zero_shot_ensemble"] <= 1 and set(r["recall_image_to_text"]) == {1, 5}
    assert len(saved["targets"]) == 2 and all(set(t) == {"value", "target", "met"} for t in saved["targets"].values())
    assert saved["machine"]["cpu"] and saved["machine"]["cores"] > 0 and saved["seconds"] >= 0


def test_category_level_recall():
    keys = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [0, 1.0], [1.0, 0.1]]), dim=-1)
    query = keys[:1]  # most similar to key 0, then key 2
    assert recall_at_k(query, keys, (1,), torch.tensor([5]), torch.tensor([7, 7, 5]))[1] == 0.0
    assert recall_at_k(query, keys, (2,), torch.tensor([5]), torch.tensor([7, 7, 5]))[2] == 1.0
