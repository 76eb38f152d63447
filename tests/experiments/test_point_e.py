"""The point-e experiment, shrunken (pointe-tiny, a few steps): trains through the shared loop, generates by both
routes at guidance 1 and 3, judges the clouds, and writes report.md, the figures and results.json with every
target the issue names."""

import json

import pytest
import torch

from genzoo.experiments import EXPERIMENTS
from genzoo.experiments.point_e import blobs, real_clouds


@pytest.mark.slow
def test_experiment_writes_outputs(tmp_path):
    r = EXPERIMENTS.get("point-e")(out=str(tmp_path), small=True)
    for f in ("report.md", "samples.png", "r_precision.png", "results.json", "run/model.safetensors"):
        assert (tmp_path / f).exists(), f
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["arms"]) == {"image_g1", "image_g3", "text_g3"}
    assert set(saved["targets"]) == {"R-precision, image route, guidance 3",
                                     "R-precision gain of guidance 3 over guidance 1",
                                     "P-FID (guidance 3) / P-FID (blob baseline)"}
    assert all(0 <= a["r_precision"] <= 1 for a in saved["arms"].values())
    assert saved["p_fid"]["real"] < saved["p_fid"]["blob"]  # the judge's features tell blobs from shapes
    assert r["end_to_end_seconds_per_sample"] > 0 and "pointe-rl" in saved["rl_practices"]


@pytest.mark.slow
def test_judge_reads_real_clouds_and_not_blobs():
    from genzoo.models.pointe.judge import point_judge, r_precision, read_clouds

    judge = point_judge(steps=400)  # the shrunken experiment's judge (cached): 71% on real clouds, 14% on blobs

    shape, colour = torch.arange(7).repeat(3), torch.arange(21) % 6
    real = real_clouds(shape, colour, 128, seed=5)
    blob = blobs(shape, colour, 128, torch.tensor([0.4, 0.4, 0.4]), torch.Generator().manual_seed(0))
    assert r_precision(read_clouds(real, judge), shape, colour) >= 0.6
    assert r_precision(read_clouds(blob, judge), shape, colour) <= 0.3
