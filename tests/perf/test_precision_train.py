"""A recipe's precision reaches training: `precision: bf16` trains under bf16 autocast (fp32 master weights) where
the hardware has bf16 (here: detection stubbed to yes, so the test runs on every CPU), and asking for bf16 where it
has none is a ConfigError before any data is read."""

import math

import pytest
import torch

import genzoo.precision as precision
import genzoo.train.tasks as tasks
from genzoo import ConfigError
from genzoo.train import load_recipe, train
from ..train.common import SMALL


def test_bf16_recipe_trains_under_autocast(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "bf16_support", lambda device: precision.Support(True, "CPU (test)"))
    seen = []
    real = tasks.autocast
    monkeypatch.setattr(tasks, "autocast", lambda device, amp: seen.append(amp) or real(device, amp))
    recipe = load_recipe("llama-nano", SMALL + ["precision=bf16", "eval_every=2", "save_every=2"])
    result = train(recipe, tmp_path / "run", steps=2)
    assert result["step"] == 2 and math.isfinite(result["val_loss"])
    assert seen and set(seen) == {torch.bfloat16}  # every loss ran under bf16 autocast
    assert all(p.dtype == torch.float32 for p in genzoo_params(tmp_path / "run"))  # fp32 master weights saved


def genzoo_params(directory):
    import genzoo

    return list(genzoo.load(directory).parameters())


def test_bf16_without_hardware_support_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "bf16_support", lambda device: precision.Support(False, "CPU without bf16"))
    recipe = load_recipe("llama-nano", SMALL + ["precision=bf16"])
    with pytest.raises(ConfigError, match="precision='bf16' is not supported"):
        train(recipe, tmp_path / "run", steps=1)
