"""The VQ tokenizer on the rendered views of Point-E's procedural shapes: the `shapes` image corpus (RGB views at
their render size, a seeded split), `genzoo train vq-shapes` on tiny settings whose run `genzoo.load` reads back
with the trained model's outputs, and the unknown-corpus and bad-size errors."""

import json

import pytest
import torch

import genzoo
from genzoo.cli import main
from genzoo.errors import ConfigError
from genzoo.models.vq import psnr
from genzoo.train import load_recipe, train
from genzoo.train.recipe import DataConfig
from genzoo.train.vq_task import IMAGE_CORPORA

TINY = ["--no-progress", "--set", "data.examples=30", "--set", "batch_size=8", "--set", "warmup_steps=1",
        "--set", "eval_every=2", "--set", "save_every=2", "--set", "log_every=1", "--set", "model.hidden=8",
        "--set", "model.codebook_size=16", "--set", "model.code_dim=8"]


def test_shapes_corpus_is_rgb_views_the_tokenizer_reads_split_by_seed():
    data = DataConfig(corpus="shapes", examples=20, val_percent=25.0)
    train_x, val_x = IMAGE_CORPORA.get("shapes")(data, 3)
    c = genzoo.build("vq-shapes").config
    assert train_x.shape == (15, 3, c.image_size, c.image_size) and val_x.shape == (5, 3, 16, 16)
    assert float(train_x.min()) >= -1 and float(train_x.max()) <= 1 and train_x.std() > 0.1
    assert (train_x[:, 0] != train_x[:, 1]).any()  # coloured, not grey
    again_train, again_val = IMAGE_CORPORA.get("shapes")(data, 3)
    assert torch.equal(again_train, train_x) and torch.equal(again_val, val_x)  # a fixed split per seed
    assert not torch.equal(IMAGE_CORPORA.get("shapes")(data, 4)[1], val_x)
    assert c.grid == 4 and genzoo.build("vq-shapes").encode(val_x).shape == (5, 4, 4)


def test_train_vq_shapes_then_load_gives_the_trained_outputs(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "vq-shapes", "--out", str(run), "--steps", "2", *TINY]) == 0
    assert (run / "reconstructions.png").stat().st_size > 0
    logged = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in logged if r["step"] == 2 and "psnr" in r][0]
    model = genzoo.load(run).eval()
    assert (model.config.channels, model.config.image_size) == (3, 16)
    recipe = load_recipe(str(run / "recipe.yaml"))
    _, val_x = IMAGE_CORPORA.get("shapes")(recipe.data, recipe.seed)
    with torch.no_grad():
        out = model(val_x)
    assert abs(psnr(out.reconstruction, val_x) - final["psnr"]) < 1e-4  # the loaded model is the trained one
    assert abs(out.perplexity.item() - final["perplexity"]) < 1e-4
    genzoo.save(model, tmp_path / "copy")
    copy = genzoo.load(tmp_path / "copy")
    codes = model.encode(val_x)
    assert torch.equal(copy.encode(val_x), codes) and torch.equal(copy.decode(codes), model.decode(codes))


def test_unknown_corpus_and_bad_size_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"data.corpus in \['digits', 'shapes'\], got 'cifar'"):
        train(load_recipe("vq-shapes", ["data.corpus=cifar"]), tmp_path / "a", steps=1)
    with pytest.raises(ConfigError, match="data.examples"):
        load_recipe("vq-shapes", ["data.examples=0"])
