"""The fusion training tasks through the shared loop: tiny parts, a few steps, exact resume (a run stopped at its
checkpoint and resumed equals the uninterrupted one), the paired share of the data, and their config errors."""

import json

import pytest
import torch
from safetensors.torch import load_file

import genzoo
from genzoo.data.digit_fusion import answer, paired_subset, parse_answer, text_facts
from genzoo.errors import ConfigError
from genzoo.train import load_recipe, train

FEW = ["progress=false", "batch_size=8", "warmup_steps=1", "eval_every=2", "save_every=2", "log_every=1"]
TINY_LM = ["model.n_layers=1", "model.d_model=32", "model.n_heads=2", "model.d_ff=64"]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    train(load_recipe("vq-digits", FEW + ["model.hidden=16"]), root / "vq", steps=2)
    train(load_recipe("clip-digits", FEW + ["model.text_layers=1", "model.vision_layers=1"]), root / "clip", steps=2)
    train(load_recipe("digit-lm", FEW + TINY_LM), root / "lm", steps=2)
    return root


def losses(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def resume_equals_uninterrupted(recipe_name, sets, tmp_path):
    """Train 4 steps (checkpoints at 2 and 4); a copy cut back to its step-2 checkpoint, as a run killed after it
    would be, resumed to 4 equals the uninterrupted run."""
    import shutil

    full, cut = tmp_path / "full", tmp_path / "cut"
    train(load_recipe(recipe_name, sets), full, steps=4)
    shutil.copytree(full, cut)
    shutil.rmtree(cut / "checkpoints" / "step-00000004")
    (cut / "model.safetensors").unlink()
    train(load_recipe(recipe_name, sets), cut, steps=4, resume=True)
    a, b = losses(full), losses(cut)
    assert sorted(a) == [1, 2, 3, 4] and all(abs(a[s] - b[s]) <= 1e-6 for s in a), (a, b)
    wa, wb = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-6, rtol=0)
    return genzoo.load(full)


@pytest.mark.slow
def test_early_fusion_task_resumes_exactly(parts, tmp_path):
    sets = FEW + TINY_LM + [f"parts.image_tokenizer={parts / 'vq'}", "data.paired_percent=10"]
    model = resume_equals_uninterrupted("early-fusion-digits", sets, tmp_path)
    vq = genzoo.load(parts / "vq")
    assert torch.equal(model.image_tokenizer.quantizer.embed, vq.quantizer.embed)  # the frozen tokenizer is kept


@pytest.mark.slow
@pytest.mark.parametrize("bridge", ["prefix", "xattn"])
def test_late_fusion_task_resumes_exactly_and_keeps_the_parts(parts, tmp_path, bridge):
    sets = FEW + [f"model.bridge={bridge}", f"parts.vision={parts / 'clip'}", f"parts.lm={parts / 'lm'}"]
    model = resume_equals_uninterrupted("late-fusion-digits", sets, tmp_path)
    clip, lm = genzoo.load(parts / "clip"), genzoo.load(parts / "lm")
    for k, v in clip.vision.state_dict().items():
        assert torch.equal(model.vision.state_dict()[k], v), k  # the image tower did not train
    assert torch.equal(model.lm.embed.weight, lm.embed.weight)


def test_missing_part_and_bad_paired_share_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="parts.image_tokenizer"):
        train(load_recipe("early-fusion-digits", FEW), tmp_path / "a", steps=1)
    with pytest.raises(ConfigError, match="paired_percent"):
        train(load_recipe("late-fusion-digits", FEW + ["data.paired_percent=0"]), tmp_path / "b", steps=1)
    with pytest.raises(ConfigError, match="encoder_init"):
        train(load_recipe("meta-transformer", FEW + ["parts.encoder_init=warm"]), tmp_path / "c", steps=1)


def test_paired_subset_and_answers():
    y = torch.arange(10).repeat(30)  # 30 of each class
    ten = paired_subset(y, 10.0, seed=0)
    assert len(ten) == 30 and torch.bincount(y[ten], minlength=10).tolist() == [3] * 10
    assert torch.equal(ten, paired_subset(y, 10.0, seed=0)) and len(paired_subset(y, 100.0)) == 300
    assert answer("parity", 4) == "yes" and answer("plus3", 9) == "twelve" and answer("digit", 7) == "seven"
    assert parse_answer("plus3", " twelve") == "twelve" and parse_answer("parity", " no answer") == "no"
    assert any("is seven even" in t for t in text_facts())
