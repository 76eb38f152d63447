"""The gliner task: the gliner-nano recipe on a tiny backbone learns, its run directory loads with genzoo.load and
with the gliner package (the same entities), and a run stopped and resumed equals the uninterrupted one."""

import json
import random
import warnings

import pytest
import torch
from safetensors.torch import load_file

import genzoo
from genzoo.data import ner
from genzoo.errors import ConfigError
from genzoo.models.gliner import GLiNERTokenizer
from genzoo.train import load_recipe, train
from genzoo.train.gliner_task import batch_inputs
from tests.gliner_models import ner_backbone

SMALL = ["model.hidden_size=32", "model.dropout=0.0", "batch_size=8", "eval_batches=1", "log_every=1",
         "progress=false", "warmup_steps=2", "lr=3e-3", "save_every=4", "eval_every=8"]


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return ner_backbone(tmp_path_factory.mktemp("backbone"))


def recipe(backbone, *extra):
    return load_recipe("gliner-nano", [f"model.model_name={backbone}", *SMALL, *extra])


def losses(run):
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in recs if "loss" in r}


@pytest.mark.slow
def test_learns_and_loads_in_the_package(backbone, tmp_path):
    from gliner import GLiNER

    train(recipe(backbone), tmp_path / "run", steps=8)
    loss = losses(tmp_path / "run")
    assert sum(loss[s] for s in (6, 7, 8)) < 0.5 * sum(loss[s] for s in (1, 2, 3)), loss
    for f in ("gliner_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "loss.png"):
        assert (tmp_path / "run" / f).exists(), f
    ours = genzoo.load(tmp_path / "run")
    assert ours.config.max_types == 10 and ours.tokenizer.token_id("<<ENT>>") == ours.config.class_token_index
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = GLiNER.from_pretrained(str(tmp_path / "run"), local_files_only=True)
    text = ner.sentences(1, seed=5)[0].text
    for threshold in (0.05, 0.2):
        a = ours.predict_entities(text, ["person", "year", "url"], threshold=threshold)
        b = ref.predict_entities(text, ["person", "year", "url"], threshold=threshold)
        assert [(e["start"], e["end"], e["label"]) for e in a] == [(e["start"], e["end"], e["label"]) for e in b]


@pytest.mark.slow
def test_stop_then_resume_equals_the_uninterrupted_run(backbone, tmp_path):
    """A warmup longer than the run: the lr depends on the step alone, not on the run's total steps."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(recipe(backbone, "warmup_steps=100"), full, steps=8)
    train(recipe(backbone, "warmup_steps=100"), cut, steps=4)
    train(recipe(backbone, "warmup_steps=100"), cut, steps=8, resume=True)
    assert losses(full) == losses(cut)  # bitwise: the same data, prompts and negatives after the resume
    wa, wb = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_prompts_hold_own_types_and_batch_negatives(backbone):
    cfg = recipe(backbone)
    tok = GLiNERTokenizer.from_dir(backbone)
    tok.add_special_tokens(["[FLERT]", "<<ENT>>", "<<SEP>>"])
    from genzoo.config import PRESETS

    config = PRESETS.get("gliner-minilm").make(max_types=10, class_token_index=tok.token_id("<<ENT>>"))
    batch = ner.sentences(16, seed=3)
    pool = {k for s in batch for _, _, k in s.spans}
    n_types = {}
    for ratio in (0.0, 1.0):
        inputs, labels = batch_inputs(config, tok, batch, random.Random(0), ratio, 0.0)
        n_types[ratio] = (inputs["input_ids"] == config.class_token_index).sum(1)
        assert int(labels.sum()) == sum(len([x for x in s.spans if x[1] - x[0] < config.max_width]) for s in batch)
    own = torch.tensor([max(1, len({k for _, _, k in s.spans})) for s in batch])
    assert torch.equal(n_types[0.0], own)  # no negatives: only the sentence's own types
    assert torch.equal(n_types[1.0], torch.minimum(torch.full_like(own, 10), torch.full_like(own, len(pool))))
    assert cfg.data.neg_type_ratio == 1.0


def test_bad_recipes(backbone, tmp_path):
    with pytest.raises(ConfigError, match="neither a registered backbone"):
        train(load_recipe("gliner-nano", ["model.model_name=/no/such/dir", *SMALL]), tmp_path / "never", steps=1)
    with pytest.raises(ConfigError, match="neg_type_ratio"):
        train(recipe(backbone, "data.neg_type_ratio=1.5"), tmp_path / "never", steps=1)


def test_lr_scales_give_the_backbone_its_own_learning_rate():
    from genzoo.train.trainer import make_optimizer

    model = genzoo.build("gliner-tiny")
    r = load_recipe("gliner-nano", ["lr=1e-3", "lr_scales={encoder: 0.1}"])
    opt = make_optimizer(model, r)
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        assert lrs[id(p)] == pytest.approx(1e-4 if name.startswith("encoder.") else 1e-3), name
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert all(decay[id(p)] == (r.weight_decay if p.dim() >= 2 else 0.0) for p in model.parameters())
    with pytest.raises(ConfigError, match="lr_scales"):
        load_recipe("gliner-nano", ["lr_scales={encoder: -1}"])
