"""The MoE parts beyond dispatch: the experts' initialisation and default activation (Mixtral's), the router's
jitter noise (training only, Switch Transformers sec. 2.4 / transformers' `router_jitter_noise`), bf16 experts,
and the load-balancing loss on the logits' own device. (Each was a surviving mutant of `make mutation`.)"""

import torch
import torch.nn.functional as F

import genzoo
from genzoo.nn import load_balancing_loss, moe
from genzoo.nn.moe import SparseMoE, StackedExperts, TopKRouter


def test_experts_start_like_transformers_mixtral():
    """N(0, 0.02) (transformers' initializer_range for Mixtral) and SiLU gating unless told otherwise."""
    torch.manual_seed(0)
    layer = StackedExperts(8, 128, 256)
    assert layer.activation == "silu"
    x = torch.randn(5, 7)
    torch.testing.assert_close(layer.act(x), F.silu(x), atol=0, rtol=0)
    for w in (layer.gate_up, layer.down):
        assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001


def _layer(jitter):
    torch.manual_seed(0)
    return SparseMoE(TopKRouter(16, 4, 2, jitter=jitter), StackedExperts(4, 16, 32))


def test_router_jitter_multiplies_the_input_by_uniform_noise_in_training_only():
    x = torch.randn(2, 5, 16)
    layer, plain = _layer(0.1), _layer(0.0)
    with torch.no_grad():
        want_eval = plain.eval()(x)
        torch.testing.assert_close(layer.eval()(x), want_eval, atol=0, rtol=0)  # no noise at inference
        torch.manual_seed(1)
        got = layer.train()(x)
        torch.manual_seed(1)
        noise = torch.empty(10, 16).uniform_(0.9, 1.1)  # x (B T, D) * U(1 - jitter, 1 + jitter)
        want = layer.eval()((x.reshape(10, 16) * noise).view(2, 5, 16))
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
        assert not torch.allclose(got, want_eval)
        state = torch.get_rng_state()  # without jitter, training draws no random numbers (dropout's stream)
        plain.train()(x)
        assert torch.equal(torch.get_rng_state(), state)


def test_bf16_experts_equal_fp32_within_bf16_precision():
    """Router weights are fp32 (softmax in fp32); the experts' sum is taken in the activations' dtype."""
    torch.manual_seed(0)
    model = genzoo.build("mixtral-tiny", n_layers=1).eval()
    ids = torch.randint(0, model.config.vocab_size, (2, 9))
    with torch.no_grad():
        ref = model(ids).logits
        got = model.to(torch.bfloat16)(ids).logits
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), ref, atol=0.05, rtol=0.05)


def test_load_balancing_loss_stays_on_the_logits_device():
    """Every tensor it makes is on the logits' device (meta stands in for an accelerator: a CPU tensor mixed in
    raises there, as it would on CUDA)."""
    logits = [torch.randn(12, 4, device="meta"), torch.randn(12, 4, device="meta")]
    assert load_balancing_loss(logits, 4, 2).device.type == "meta"
    mask = torch.ones(3, 4, device="meta")
    assert load_balancing_loss(logits, 4, 2, mask, scope="per-layer").device.type == "meta"


def test_grouped_mm_refuses_a_weight_whose_output_rows_are_unaligned():
    """A transposed view (N = 5 floats per output row) has 16-byte aligned strides but not 16-byte output rows,
    which CUDA's grouped kernel requires: the padded fallback takes it."""
    x = torch.randn(9, 8)
    w = torch.randn(4, 5, 8).transpose(1, 2)  # (E, K=8, N=5), strides (40, 1, 8)
    assert not moe._grouped_mm_ok(x, w)
    counts = torch.tensor([3, 0, 5, 1])
    out = moe.grouped_matmul(x, w, counts, counts.cumsum(0).to(torch.int32))
    ref = torch.cat([x[:3] @ w[0], x[3:8] @ w[2], x[8:] @ w[3]])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
