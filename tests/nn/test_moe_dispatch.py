"""Dropless expert dispatch: the grouped product and the experts layer against per-group / per-token loops."""

import pytest
import torch
import torch.nn.functional as F

from genzoo.nn import moe
from genzoo.nn.moe import StackedExperts, grouped_matmul

COUNTS = [3, 0, 5, 1]  # an empty group in the middle, as routing produces


def _reference(x, w, counts):
    out, start = [], 0
    for g, n in enumerate(counts):
        out.append(x[start:start + n] @ w[g])  # (n, K) @ (K, N)
        start += n
    return torch.cat(out)


@pytest.fixture(params=["grouped_mm", "padded_bmm"])
def path(request, monkeypatch):
    if request.param == "padded_bmm":  # the fallback for devices and dtypes without torch._grouped_mm
        monkeypatch.setattr(moe, "_grouped_mm_ok", lambda x, w: False)
    return request.param


@pytest.mark.parametrize("k, n", [(8, 12), (6, 5)])  # (6, 5): rows not 16-byte aligned, which _grouped_mm refuses
def test_grouped_matmul_equals_a_loop_over_groups_forward_and_backward(path, k, n):
    g = torch.Generator().manual_seed(0)
    counts = torch.tensor(COUNTS)
    x = torch.randn(sum(COUNTS), k, generator=g, requires_grad=True)
    w = torch.randn(len(COUNTS), k, n, generator=g, requires_grad=True)
    out = grouped_matmul(x, w, counts, counts.cumsum(0).to(torch.int32))
    ref = _reference(x, w, COUNTS)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    # out.sum() sends an expanded (stride-0) gradient, which torch._grouped_mm's backward alone rejects
    gx, gw = torch.autograd.grad(out.sum(), (x, w))
    rx, rw = torch.autograd.grad(ref.sum(), (x, w))
    torch.testing.assert_close(gx, rx, atol=1e-5, rtol=0)
    torch.testing.assert_close(gw, rw, atol=1e-5, rtol=0)


def test_grouped_mm_takes_aligned_operands_only():
    x, w = torch.randn(9, 8), torch.randn(4, 8, 12)
    assert moe._grouped_mm_ok(x, w)
    assert not moe._grouped_mm_ok(torch.randn(9, 6), torch.randn(4, 6, 12))
    assert not moe._grouped_mm_ok(x, torch.randn(4, 8, 5))


@pytest.mark.parametrize("n_tokens", [1, 37])  # one token: a decoding step, most experts idle
def test_experts_equal_each_token_through_its_chosen_experts(path, n_tokens):
    torch.manual_seed(0)
    layer = StackedExperts(4, 8, 16, "silu")
    x = torch.randn(n_tokens, 8)
    experts = torch.stack([torch.randperm(4)[:2] for _ in range(n_tokens)])  # (N, 2), distinct per token
    weights = torch.rand(n_tokens, 2).softmax(-1)
    expected = torch.zeros_like(x)
    for t in range(n_tokens):
        for j in range(2):
            e = int(experts[t, j])
            gate, up = (x[t] @ layer.gate_up[e]).chunk(2)  # gate_up[e]: (D, 2F)
            expected[t] += weights[t, j] * ((F.silu(gate) * up) @ layer.down[e])  # down[e]: (F, D)
    with torch.no_grad():
        torch.testing.assert_close(layer(x, experts, weights), expected, atol=1e-5, rtol=0)


def test_a_compiled_moe_model_trains_like_the_eager_one():
    """torch.compile traces the model with fake tensors; _grouped_mm's tracing kernel takes bf16 only, so fp32
    experts run eagerly, outside the graph (it raised before)."""
    import genzoo

    torch.manual_seed(0)
    model = genzoo.build("mixtral-tiny", n_layers=1).train()
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    eager = model(ids, labels=ids).loss
    expected = torch.autograd.grad(eager, model.blocks[0].ffn.experts.gate_up)[0]
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager")(ids, labels=ids).loss
    got = torch.autograd.grad(compiled, model.blocks[0].ffn.experts.gate_up)[0]
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=0)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_router_starts_near_uniform_with_std_002():
    """The router's weight starts N(0, 0.02) as transformers' initializer_range (a mutation-testing survivor: no test
    looked at it): its logits start small, so every expert gets tokens from the first step."""
    torch.manual_seed(0)
    r = moe.TopKRouter(dim=512, n_experts=8, top_k=2)
    assert abs(r.weight.std().item() - 0.02) < 0.002 and abs(r.weight.mean().item()) < 0.002
