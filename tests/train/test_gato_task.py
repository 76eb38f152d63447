"""The gato task through the shared loop: a resumed run equals the uninterrupted one (the mixture's draws, the
patch positions sampled in training and the optimiser all continue), and bad mixtures fail before any work."""

import shutil

import pytest
import torch
from safetensors.torch import load_file

from genzoo import ConfigError
from genzoo.train import load_recipe, train

SETS = {"model.preset": "gato-tiny", "data.block_size": 32, "data.vocab_size": 300, "data.max_bytes": 60_000,
        "data.mixture": {"caption": 1.0, "gridworld": 1.0, "pendulum": 0.5}, "data.episodes": {"gridworld": 12,
        "pendulum": 2}, "batch_size": 4, "eval_batches": 1, "warmup_steps": 1, "save_every": 2, "eval_every": 2,
        "progress": False, "log_every": 1}


@pytest.mark.slow
def test_resume_equals_uninterrupted(tmp_path):
    """4 steps, then the step-4 checkpoint removed and the run resumed from step 2: the same final weights."""
    run = tmp_path / "run"
    train(load_recipe("gato-nano", SETS), run, steps=4)
    uninterrupted = load_file(run / "model.safetensors")
    shutil.rmtree(run / "checkpoints" / "step-00000004")
    train(load_recipe("gato-nano", SETS), run, steps=4, resume=True)
    resumed = load_file(run / "model.safetensors")
    assert uninterrupted.keys() == resumed.keys()
    for k in resumed:
        torch.testing.assert_close(resumed[k], uninterrupted[k], atol=1e-6, rtol=0)


@pytest.mark.parametrize("override, match", [
    ({"data.mixture": {"chess": 1.0}}, "unknown task 'chess'"),
    ({"data.mixture": None}, "data.mixture is empty"),
    ({"data.episodes": {"cartpole": 0}}, "data.episodes.cartpole=0 is invalid"),
    ({"data.corpus": "stdlib"}, "task 'gato' trains on data.corpus='gato'"),
])
def test_bad_mixture(tmp_path, override, match):
    with pytest.raises(ConfigError, match=match):
        train(load_recipe("gato-nano", {**SETS, **override}), tmp_path / "run", steps=1)
    assert not (tmp_path / "run" / "tokenizer.json").exists()
