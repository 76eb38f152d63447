"""Simulated W8A8: the quantize-dequantize round trips stay within half a step of the int8 grid, calibration
observes the activations the model really produces, a calibrated model is close to fp32 on a trained model, and
a single activation outlier costs the other values their resolution (the effect the experiment measures)."""

import pytest
import torch
from torch import nn

import genzoo
from genzoo import ConfigError
from genzoo.quant.simulated import ActivationRange, W8A8, quantize_weight


def test_weight_round_trip_is_symmetric_int8_within_half_a_step():
    w = torch.randn(64, 48) * 0.3
    q = quantize_weight(w)
    scale = w.abs().max() / 127
    levels = q / scale
    assert torch.allclose(levels, levels.round(), atol=1e-4) and levels.abs().max() <= 127 + 1e-4
    assert (q - w).abs().max() <= scale / 2 + 1e-7
    assert len(torch.unique(levels.round())) > 150  # the grid is really used


def test_activation_round_trip_is_asymmetric_int8_with_an_exact_zero():
    x = torch.rand(1000) * 5.0 - 1.0  # [-1, 4): asymmetric
    r = ActivationRange("x")
    r(x)  # calibration: observes, passes through
    assert r.lo == float(x.min()) and r.hi == float(x.max())
    r.calibrating = False
    scale, zero = r.qparams()
    assert abs(scale - (r.hi - r.lo) / 255) < 1e-9 and -128 <= zero <= 127
    y = r(x)
    assert (y - x).abs().max() <= scale / 2 + 1e-6
    assert len(torch.unique(y)) > 200
    assert r(torch.zeros(3)).abs().max() == 0  # zero is on the grid
    assert r(torch.tensor([100.0])).item() == pytest.approx(r.hi, abs=scale)  # beyond the range: clamped


def test_one_outlier_costs_every_other_value_its_resolution():
    x = torch.randn(4096)
    clean, spiked = ActivationRange("clean"), ActivationRange("spiked")
    clean(x)
    spiked(torch.cat([x, torch.tensor([60.0])]))
    clean.calibrating = spiked.calibrating = False
    err_clean, err_spiked = (clean(x) - x).pow(2).mean(), (spiked(x) - x).pow(2).mean()
    assert err_spiked > 50 * err_clean


def test_calibration_observes_the_real_activations(trained):
    _, model, blocks = trained
    batches = [blocks[:4], blocks[4:8]]
    sim = W8A8(model).calibrate(batches)
    # the same activations seen independently: a copy with the same int8 weights and plain hooks
    ref = W8A8(model)
    for h in ref.hooks:
        h.remove()
    seen = {}

    def keep(name):
        def hook(mod, args, out=None):
            x = args[0] if out is None else out
            lo, hi = seen.get(name, (float("inf"), float("-inf")))
            seen[name] = (min(lo, float(x.min())), max(hi, float(x.max())))
        return hook

    modules = dict(ref.model.named_modules())
    for key in sim.ranges:
        name, where = key.rsplit(":", 1)
        m = modules[name]
        (m.register_forward_pre_hook(keep(key)) if where == "in" else m.register_forward_hook(keep(key)))
    with torch.no_grad():
        for b in batches:
            ref.model(b)
    n_linear = sum(type(m) is nn.Linear for m in model.modules())  # q, k, v, o, up, down per block + the head
    assert n_linear == 6 * 2 + 1 and set(seen) == set(sim.ranges) and len(seen) == n_linear + 2  # + block outputs
    for key, r in sim.ranges.items():
        assert (r.lo, r.hi) == seen[key], key
    assert sim.model.w8a8 is sim and not any(r.calibrating for r in sim.ranges.values())


def test_calibrated_model_is_close_to_fp32_and_the_original_is_untouched(trained):
    _, model, blocks = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = genzoo.quantize(model, "w8a8", calibration=[blocks[:8]])
    with torch.no_grad():
        a, b = model(blocks[8:]).logits, q(blocks[8:]).logits
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() >= 0.9
    assert 0 < (a - b).norm() / a.norm() < 0.1
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_w8a8_errors():
    model = genzoo.build("gpt2-tiny")
    with pytest.raises(ConfigError, match="calibration"):
        genzoo.quantize(model, "w8a8")
    with pytest.raises(ConfigError, match="no batch"):
        genzoo.quantize(model, "w8a8", calibration=[])
    with pytest.raises(ConfigError, match="calibration= only"):
        genzoo.quantize(model, "w8a8", calibration=[torch.zeros(1, 4, dtype=torch.long)], bits=4)
    with pytest.raises(ConfigError, match="no nn.Linear"):
        genzoo.quantize(nn.Sequential(nn.ReLU()), "w8a8", calibration=[torch.zeros(2)])
