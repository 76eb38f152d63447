"""Bad input gives a clear error naming the problem, before any compute."""

import pytest
import torch

import genzoo
from genzoo import ConfigError, InputError


def test_unknown_preset_names_nearest():
    with pytest.raises(ConfigError, match=r"unknown preset 'lama-tiny' \(did you mean 'llama-tiny'"):
        genzoo.build("lama-tiny")


def test_unknown_override_field():
    with pytest.raises(ConfigError, match=r"unknown config field 'n_layer' .*did you mean 'n_layers'"):
        genzoo.build("gpt2-tiny", n_layer=3)


def test_hidden_size_not_divisible_by_heads():
    with pytest.raises(ConfigError, match=r"d_model=65 is invalid: must be divisible by n_heads=4"):
        genzoo.build("gpt2-tiny", d_model=65)


def test_kv_heads_must_divide_heads():
    with pytest.raises(ConfigError, match=r"n_kv_heads=3 is invalid: must divide n_heads=4"):
        genzoo.build("llama-tiny", n_kv_heads=3)


def test_unknown_part_name():
    with pytest.raises(ConfigError, match=r"unknown norm 'rmsnrom' \(did you mean 'rmsnorm'"):
        genzoo.build("llama-tiny", norm="rmsnrom")


def _no_compute(model, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("compute ran before the input was checked")

    monkeypatch.setattr(model.embed, "forward", boom)


def test_token_id_out_of_range(monkeypatch):
    m = genzoo.build("gpt2-tiny")
    _no_compute(m, monkeypatch)
    with pytest.raises(InputError, match=r"token id 512 is out of range: vocab_size is 512 \(ids 0..511\)"):
        m(torch.tensor([[1, 2, 512]]))
    with pytest.raises(InputError, match="token id -1"):
        m(torch.tensor([[-1, 2]]))


def test_sequence_longer_than_max_positions(monkeypatch):
    m = genzoo.build("gpt2-tiny")
    _no_compute(m, monkeypatch)
    with pytest.raises(InputError, match=r"sequence length 129 exceeds the model's max_positions=128"):
        m(torch.zeros(1, 129, dtype=torch.long))
    with pytest.raises(InputError, match=r"120 \+ max_new_tokens 20 = 140 exceeds max_positions=128"):
        m.generate(torch.zeros(1, 120, dtype=torch.long), max_new_tokens=20)


def test_wrong_mask_shape(monkeypatch):
    m = genzoo.build("llama-tiny")
    _no_compute(m, monkeypatch)
    with pytest.raises(InputError, match=r"attention_mask has shape \(1, 4\); expected \(batch, seq_len\) = \(1, 5\)"):
        m(torch.zeros(1, 5, dtype=torch.long), attention_mask=torch.ones(1, 4))


def test_float_input_ids():
    with pytest.raises(InputError, match="input_ids must be an integer tensor"):
        genzoo.build("llama-tiny")(torch.zeros(1, 5))


def test_bad_sampling_arguments():
    m = genzoo.build("llama-tiny")
    ids = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(InputError, match="temperature must be > 0"):
        m.generate(ids, do_sample=True, temperature=0)
    with pytest.raises(InputError, match=r"top_p must be in \(0, 1\]"):
        m.generate(ids, do_sample=True, top_p=1.5)


def test_every_error_genzoo_raises_to_api_users_is_a_genzoo_error():
    """Issue 17 item 6: Python API errors are GenzooError subclasses (the CLI turns exactly these into one line)."""
    import inspect

    from genzoo import errors
    from genzoo.train.trainer import TrainingError

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, Exception) and not issubclass(c, Warning)]  # GenzooWarning is a warning
    assert {c.__name__ for c in classes} >= {"GenzooError", "ConfigError", "InputError", "CheckpointError",
                                             "RunDirError"}
    for cls in [*classes, TrainingError]:
        assert issubclass(cls, errors.GenzooError), cls
    assert issubclass(errors.ConfigError, ValueError) and issubclass(errors.InputError, ValueError)
