"""`nn.Linear`'s fused oneDNN inference path equals the plain F.linear path (fp32 rounding), is taken exactly when
autograd is off on CPU fp32, and trains with F.linear's gradients."""

import pytest
import torch
import torch.nn.functional as F

import genzoo
from genzoo.nn import ACTIVATIONS, Linear, set_onednn
from genzoo.nn import linear as linear_module
from genzoo.nn.linear import MIN_WEIGHT, ONEDNN_ACTIVATIONS, gemv, gemv_ok, onednn_ok


@pytest.fixture
def layer():
    torch.manual_seed(0)
    return Linear(256, 1024)  # a weight large enough for the oneDNN path (MIN_WEIGHT)


@pytest.mark.parametrize("activation", [None, *ONEDNN_ACTIVATIONS, "quick_gelu"])
def test_fused_activation_equals_the_formula(layer, activation):
    x = torch.randn(2, 5, 256)
    want = F.linear(x, layer.weight, layer.bias)
    want = want if activation is None else ACTIVATIONS.get(activation)(want)
    with torch.no_grad():
        assert onednn_ok(x, layer.weight)
        got = layer(x, activation=activation)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_fused_gate_product_equals_the_formula(layer):
    x, gate = torch.randn(3, 256), torch.randn(3, 1024)
    with torch.no_grad():
        got = layer(x, multiply=gate)
        both = layer(x, activation="silu", multiply=gate)  # not fusable together: the plain path, same order
    torch.testing.assert_close(got, F.linear(x, layer.weight, layer.bias) * gate, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both, F.silu(F.linear(x, layer.weight, layer.bias)) * gate, atol=1e-5, rtol=1e-5)


def test_training_forward_and_gradients_equal_f_linear(layer):
    """With autograd on, the product runs forward through oneDNN (OneDNNLinear) and its backward gives F.linear's
    gradients for the input, the weight and the bias."""
    x = torch.randn(2, 4, 256, requires_grad=True)
    assert not onednn_ok(x, layer.weight) and onednn_ok(x, layer.weight, training=True)
    g = torch.randn(2, 4, 1024)
    y = layer(x, activation="gelu")
    assert y.grad_fn is not None
    (y * g).sum().backward()
    want_x = x.detach().clone().requires_grad_(True)
    w, b = (p.detach().clone().requires_grad_(True) for p in (layer.weight, layer.bias))
    want = F.gelu(F.linear(want_x, w, b))
    (want * g).sum().backward()
    torch.testing.assert_close(y, want, atol=1e-5, rtol=1e-5)
    for got, ref in ((x.grad, want_x.grad), (layer.weight.grad, w.grad), (layer.bias.grad, b.grad)):
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        assert not onednn_ok(x.double(), layer.weight)  # fp64 is not fused
        assert not onednn_ok(x, Linear(64, 64).weight)  # too small to pay for the call
        assert onednn_ok(torch.randn(1024, 64), Linear(64, 256).weight)  # small weight, enough rows
        with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast decides the dtype: F.linear's path
            assert not onednn_ok(x.detach(), layer.weight)
            assert layer(x.detach()).dtype == torch.bfloat16


class _Counting:
    """Wraps the oneDNN op and counts its calls."""

    def __init__(self, op):
        self.op, self.calls = op, 0

    def __call__(self, *args):
        self.calls += 1
        return self.op(*args)

    def binary(self, *args):
        self.calls += 1
        return self.op.binary(*args)


@pytest.mark.parametrize("preset", ["gpt2-tiny", "llama-tiny", "bert-tiny"])
def test_models_agree_on_both_paths(preset, monkeypatch):
    counting = _Counting(linear_module._OP)
    monkeypatch.setattr(linear_module, "_OP", counting)
    torch.manual_seed(0)
    model = genzoo.build(preset, d_model=256, n_heads=4, d_ff=1024).eval()  # FFN weights reach MIN_WEIGHT
    ids = torch.randint(3, model.config.vocab_size, (2, 24))
    with torch.no_grad():
        fast = model(ids)
        previous = set_onednn(False)
        try:
            plain = model(ids)
        finally:
            set_onednn(previous)
    key = "logits" if getattr(fast, "logits", None) is not None else "last_hidden_state"
    torch.testing.assert_close(getattr(fast, key), getattr(plain, key), atol=1e-5, rtol=1e-5)
    large = sum(isinstance(m, Linear) and m.weight.numel() >= MIN_WEIGHT for m in model.modules())
    assert counting.calls >= large > 0  # every large projection of the forward took the fused path


def test_torch_compile_sees_the_plain_linear(layer):
    """Traced by torch.compile, `Linear` hands the compiler a plain linear (inductor picks its own CPU kernels;
    it cannot lower the oneDNN op with dynamic shapes)."""
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(str(gm.graph))
        return gm.forward

    torch._dynamo.reset()
    compiled = torch.compile(layer, backend=backend)
    x = torch.randn(4, 256)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, activation="gelu"), layer(x, activation="gelu"), atol=1e-5, rtol=1e-5)
    assert graphs and all("mkldnn" not in g for g in graphs) and any("linear" in g for g in graphs)


@pytest.mark.parametrize("shape", [(1, 256), (1, 1, 256), (256,)])
@pytest.mark.parametrize("out", [1024, 1026])  # 4 row blocks, 2 row blocks
def test_one_row_takes_the_blocked_gemv_and_equals_f_linear(shape, out):
    """A single row (decoding at batch 1) is computed by `gemv` (torch.bmm over row blocks of the weight), with the
    bias, the activation and the gate product applied after it; it equals F.linear's formula."""
    torch.manual_seed(0)
    layer = Linear(256, out)
    x, gate = torch.randn(shape), torch.randn(*shape[:-1], out)
    with torch.no_grad():
        assert gemv_ok(x, layer.weight) and not gemv_ok(torch.randn(2, 256), layer.weight)
        torch.testing.assert_close(gemv(x, layer.weight), F.linear(x, layer.weight), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(gemv(x, layer.weight, layer.bias), F.linear(x, layer.weight, layer.bias),
                                   atol=1e-5, rtol=1e-5)
        rows = torch.randn(3, 256)  # a row at a storage offset, and a non-contiguous one
        for row in (rows[2:], rows.t().contiguous().t()[1:2]):
            torch.testing.assert_close(gemv(row, layer.weight), F.linear(row, layer.weight), atol=1e-5, rtol=1e-5)
        got = layer(x, activation="gelu", multiply=gate)
    want = F.gelu(F.linear(x, layer.weight, layer.bias)) * gate
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_gemv_is_only_taken_where_it_pays():
    layer = Linear(256, 1024)
    x = torch.randn(1, 256)
    assert not gemv_ok(x, layer.weight)  # autograd records a graph for the weight: the plain path
    with torch.no_grad():
        assert gemv_ok(x, layer.weight)
        assert not gemv_ok(x, layer.weight.t().contiguous().t())  # a transposed (non-contiguous) weight
        assert not gemv_ok(torch.randn(1, 64), Linear(64, 64).weight)  # below MIN_GEMV_WEIGHT: F.linear is cheaper
        assert not gemv_ok(x, Linear(256, 1023).weight)  # rows that do not split into equal blocks
        assert not gemv_ok(x.double(), layer.weight.double())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not gemv_ok(x, layer.weight)


@pytest.mark.parametrize("preset", ["llama-tiny", "gpt2-tiny"])  # no biases; biases (baddbmm) and GELU
def test_decoding_at_batch_one_runs_on_gemv_and_keeps_its_tokens(preset, monkeypatch):
    calls = []
    monkeypatch.setattr(linear_module, "gemv", lambda x, w, b=None: calls.append(w.shape) or gemv(x, w, b))
    torch.manual_seed(0)
    model = genzoo.build(preset, d_model=256, n_heads=4, d_ff=1024).eval()
    ids = torch.randint(0, model.config.vocab_size, (1, 12))
    fast = model.generate(ids, max_new_tokens=16)
    n_linear = sum(isinstance(m, Linear) for m in model.modules())
    # every projection of the 15 single-token steps, and the prefill's LM head (its last position only)
    assert len(calls) == 15 * n_linear + 1
    previous = set_onednn(False)
    try:
        plain = model.generate(ids, max_new_tokens=16)
    finally:
        set_onednn(previous)
    assert torch.equal(fast, plain)


def test_gemv_benchmark_reports_every_kernel_for_every_shape():
    """`genzoo bench gemv` (figures are measured there, not asserted here): it runs and reports a rate for each
    kernel and shape."""
    from genzoo.bench import gemv as bench

    results = bench.run(stream_mb=2, repeats=1)
    assert set(results) == {f"{o}x{d}" for o, d in bench.SHAPES}
    for rates in results.values():
        assert {"gemv", "F.linear", "sum", "ratio"} <= set(rates)
        assert all(v > 0 and v == v for v in rates.values())
