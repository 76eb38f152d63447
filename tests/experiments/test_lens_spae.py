"""The lens-spae experiment, shrunken (a few steps of small models): every part trains through its recipe, the
outputs are written, every target the issue names is reported, the frozen modules are bitwise unchanged, and SPAE
(and the LM writing SPAE tokens) only ever emit ids of the frozen vocabulary."""

import json

import pytest
import torch

from genzoo.experiments import EXPERIMENTS


@pytest.fixture
def one_thread():
    """Many tiny kernels: on a shared 2-core machine, 2 torch threads wait on each other (measured at load 15-25:
    406 s and > 600 s with 2 threads, 170 s with 1)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.slow
def test_experiment_writes_outputs(tmp_path, one_thread):
    r = EXPERIMENTS.get("lens-spae")(out=str(tmp_path), small=True)
    for f in ("report.md", "results.json", "reconstructions.png", "words.png", "generated.png", "vqa.png"):
        assert (tmp_path / f).exists(), f
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["targets"]) == {"lens_vqa_accuracy", "spae_psnr_full_depth_db", "semantic_precision_with_loss",
                                     "semantic_precision_without_loss", "icl_5shot_points_above_chance",
                                     "frozen_modules_unchanged", "spae_emits_only_vocabulary_ids"}
    assert saved["targets"]["frozen_modules_unchanged"]["met"] and saved["targets"]["spae_emits_only_vocabulary_ids"]["met"]
    assert saved["frozen_files_unchanged_by_spae_training"] is True  # the SPAE runs of this call read them
    assert len(saved["spae"]["spae"]["psnr_per_depth"]) == 3
    assert set(saved["in_context_classification"]["spae"]) == {"1", "5", "1_open", "5_open"}
    assert saved["in_context_layout"] == "label-first"  # read from the LM's recipe, as its episodes were written
    assert 0 <= saved["vqa"]["lens_accuracy"] <= 1 and 0 <= saved["vqa"]["baseline_accuracy"] <= 1
    assert 0 <= saved["generation"]["accuracy"] <= 1
    assert saved["parameters"]["lm"] < saved["parameters"]["baseline"] < 1.2 * saved["parameters"]["lm"]
    assert "Targets" in (tmp_path / "report.md").read_text() and r["seconds"] > 0
