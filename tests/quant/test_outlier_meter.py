"""OutlierMeter (forward hooks, no model change): kurtosis against its formula, the inf-norm, where the largest
values sit, and the attention weights it recomputes against the ones the eager attention really uses."""

import pytest
import torch
from torch import nn

import genzoo
from genzoo import ConfigError, InputError
from genzoo.quant.outliers import KINDS, OutlierMeter, kurtosis, token_kinds, vocabulary_kinds


def test_kurtosis_formula():
    x = torch.randn(3, 50, 8, dtype=torch.float64)
    flat = x.flatten(1)
    mu, sd = flat.mean(1, keepdim=True), flat.std(1)  # the paper's code: Bessel-corrected std
    expected = ((flat - mu) ** 4).mean(1) / sd ** 4
    torch.testing.assert_close(kurtosis(x), expected)
    g = torch.randn(4, 20000, dtype=torch.float64)
    assert (kurtosis(g) - 3).abs().max() < 0.15  # a Gaussian: 3
    spiked = g.clone()
    spiked[:, 0] = 100.0
    assert kurtosis(spiked).min() > 40


class Probe(nn.Module):
    """A layer whose output is whatever the test feeds it."""

    def forward(self, x):
        return x


def test_inf_norm_kurtosis_and_outlier_positions():
    probe = Probe()
    x = torch.randn(2, 10, 100) * 0.1
    x[0, 3, 7], x[1, 0, 2] = 50.0, -40.0  # the top 0.1% (2 of 2000 values): a position 3 and a first token
    kinds = torch.full((2, 10), KINDS.index("other"))
    kinds[0, 3], kinds[:, 0] = KINDS.index("newline"), KINDS.index("first")
    with OutlierMeter(nn.Sequential(probe), layers=[probe]) as meter:
        meter.mark(kinds)
        probe(x)
    s = meter.summary()
    assert s["max_inf_norm"] == 50.0 and s["avg_kurtosis"] == pytest.approx(kurtosis(x).mean().item())
    assert s["outlier_kinds"]["newline"] == 0.5 and s["outlier_kinds"]["first"] == 0.5
    assert not meter.hooks  # removed on exit
    with OutlierMeter(nn.Sequential(probe), layers=[probe]) as meter, pytest.raises(InputError, match="kinds"):
        meter.mark(kinds[:, :5])
        probe(x)


@pytest.mark.parametrize("softmax", ["standard", "softmax1", "clipped"])
def test_attention_weights_equal_the_eager_attention(softmax):
    torch.manual_seed(0)
    model = genzoo.build("gpt2-tiny", softmax=softmax, attn_backend="eager").eval()
    with torch.no_grad():  # sharper attention than at initialisation
        for b in model.blocks:
            b.attn.q_proj.weight.mul_(20)
    seen = []
    for b in model.blocks:  # record what the eager path really uses
        f = b.attn.softmax.__class__.__call__
        b.attn.softmax.__class__ = type("Rec", (type(b.attn.softmax),),
                                        {"__call__": lambda self, s, f=f: seen.append(f(self, s)) or seen[-1]})
    ids = torch.randint(5, 500, (2, 12))
    kinds = torch.randint(0, len(KINDS), (2, 12))
    with OutlierMeter(model) as meter, torch.no_grad():
        meter.mark(kinds)
        model(ids)
    layers = meter.summary()["layers"]
    delim = torch.isin(kinds, torch.tensor([1, 2, 3, 4])).float()  # newline, whitespace, punctuation, special
    eager, recomputed = seen[0::2], seen[1::2]  # per layer: the attention's own call, then the meter's
    assert len(eager) == len(recomputed) == len(layers)
    for a, b in zip(eager, recomputed):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    for probs, layer in zip(eager, layers):
        rows = probs[:, :, 1:]  # (B, H, T - 1, T): every query but the first
        assert layer["attn_first"] == pytest.approx(rows[..., 0].mean().item(), abs=1e-5)
        assert layer["attn_total"] == pytest.approx(rows.sum(-1).mean().item(), abs=1e-5)
        assert layer["attn_delimiters"] == pytest.approx((rows * delim[:, None, None]).sum(-1).mean().item(), abs=1e-5)
    assert (layers[0]["attn_total"] < 0.999) == (softmax != "standard")


def test_token_kinds_from_a_real_tokenizer():
    from genzoo.tokenizers import train_bpe

    tok = train_bpe(["def f(x):\n    return x, 1\n\n# done.\n"] * 20, 300)
    vocab = vocabulary_kinds(tok)
    ids = torch.tensor([tok.encode("def f(x):\n    return x")])
    kinds = [KINDS[k] for k in token_kinds(ids, vocab)[0].tolist()]
    texts = [tok.decode([i]) for i in ids[0].tolist()]
    assert kinds[0] == "first"
    for text, kind in zip(texts[1:], kinds[1:]):
        expected = ("newline" if "\n" in text else "whitespace") if not text.strip() else \
            "punctuation" if all(not c.isalnum() for c in text.strip()) else "other"
        assert kind == expected, (text, kind)
    assert vocab[tok.eos_id] == KINDS.index("special")


def test_meter_errors():
    with pytest.raises(ConfigError, match="no transformer block"):
        OutlierMeter(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ConfigError, match="top_fraction"):
        OutlierMeter(genzoo.build("gpt2-tiny"), top_fraction=0.0)
