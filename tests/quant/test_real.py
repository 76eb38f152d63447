"""Real int8 / int4 inference (torchao; torch's dynamic quantization without it) on a trained tiny model: the
greedy next token equals fp32's at >= 90% of held-out positions, the Linear weights are really low-bit and the
model is smaller; the CLI decodes with --quantize; bad requests are refused."""

import pytest
import torch
from torch import nn

import genzoo
from genzoo import ConfigError
from genzoo.quant import model_bytes, real
from genzoo.cli import main


def agreement(a, b, x) -> float:
    with torch.no_grad():
        return (a(x).logits.argmax(-1) == b(x).logits.argmax(-1)).float().mean().item()


@pytest.mark.parametrize("scheme,min_agree", [("int8", 0.9), ("int8-weight", 0.9), ("int4-weight", 0.9),
                                              ("bf16", 0.9)])
def test_greedy_tokens_match_fp32(trained, scheme, min_agree):
    _, model, blocks = trained
    q = genzoo.quantize(model, scheme)
    agree = agreement(model, q, blocks)
    assert agree >= min_agree, f"{scheme}: greedy next token equal to fp32 at {agree:.1%} of positions"
    assert model_bytes(q) < model_bytes(model)
    if scheme != "bf16":  # every Linear's weight is a low-bit tensor now; the original model is untouched
        kinds = {type(m.weight).__name__ for m in q.modules() if type(m) is nn.Linear}
        assert kinds and not kinds & {"Parameter", "Tensor"}, kinds
        assert all(type(m.weight) is nn.Parameter for m in model.modules() if type(m) is nn.Linear)
    with torch.no_grad():  # decoding through the static cache works on the quantized copy
        prompt = blocks[:1, :8]
        out = q.generate(prompt, max_new_tokens=8)
        assert out.shape == (1, 16) and torch.equal(out[:, :8], prompt)


def test_int4_is_smaller_than_int8(trained):
    _, model, _ = trained
    sizes = {s: model_bytes(genzoo.quantize(model, s)) for s in ("int8-weight", "int4-weight")}
    assert sizes["int4-weight"] < sizes["int8-weight"], sizes


def test_without_torchao_int8_falls_back_to_torch_and_int4_is_refused(trained, monkeypatch):
    _, model, blocks = trained
    monkeypatch.setattr(real, "torchao", lambda: None)
    q = genzoo.quantize(model, "int8")
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in q.modules())
    assert agreement(model, q, blocks) >= 0.9
    for scheme in ("int4-weight", "int8-weight"):
        with pytest.raises(ConfigError, match="torchao"):
            genzoo.quantize(model, scheme)


def test_bad_requests_are_refused():
    model = genzoo.build("gpt2-tiny")
    with pytest.raises(ConfigError, match="int9"):
        genzoo.quantize(model, "int9")
    with pytest.raises(ConfigError, match="takes no options"):
        genzoo.quantize(model, "int8", calibration=[])
    with pytest.raises(ConfigError, match="no nn.Linear"):
        genzoo.quantize(nn.Sequential(nn.ReLU()), "int8")
    with pytest.raises(ConfigError, match="group size"):
        genzoo.quantize(nn.Sequential(nn.Linear(40, 8)), "int4-weight")


def test_cli_generate_quantized(trained, capsys):
    run, _, _ = trained
    args = ["generate", str(run), "--prompt", "def ", "--max-new-tokens", "8", "--temperature", "0"]
    for scheme in ("int8", "int4-weight"):
        assert main(args + ["--quantize", scheme]) == 0
        out, err = capsys.readouterr()
        assert out.startswith("def ") and len(out) > len("def \n") and not err.strip(), err
    assert main(args + ["--quantize", "w8a8"]) == 2  # needs calibration: not a choice
    err = capsys.readouterr().err
    assert "invalid choice: 'w8a8'" in err and len(err.strip().splitlines()) == 1


def test_cli_choices_are_schemes():
    from genzoo.cli import QUANTIZE
    from genzoo.quant import SCHEMES

    assert all(s in SCHEMES for s in QUANTIZE)
