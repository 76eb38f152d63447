"""Path agreement: SDPA == eager, cached decoding == full recomputation, softmax1 on SDPA == formula."""

import math

import pytest
import torch
from torch import nn

import genzoo
from genzoo.nn import Attention, build_mask, softmax1
from genzoo.nn.positions import ALiBi, RotaryPositions, SinusoidalPositions, alibi_slopes
from genzoo.nn.softmax import SOFTMAX


def make_attn(softmax="standard", backend="sdpa", h=4, hkv=2, dh=8, d=32, window=None):
    torch.manual_seed(0)
    return Attention(nn.Linear(d, h * dh), nn.Linear(d, hkv * dh), nn.Linear(d, hkv * dh), nn.Linear(h * dh, d),
                     n_heads=h, n_kv_heads=hkv, head_dim=dh, softmax=SOFTMAX.get(softmax)(), window=window,
                     backend=backend)


@pytest.mark.parametrize("softmax", ["standard", "softmax1"])
@pytest.mark.parametrize("window", [None, 5])
@pytest.mark.parametrize("padded", [False, True])
def test_sdpa_equals_eager(softmax, window, padded):
    x = torch.randn(3, 12, 32)
    valid = None
    if padded:
        valid = torch.ones(3, 12, dtype=torch.bool)
        valid[1, :4] = False  # left padding
    mask = build_mask(12, 12, 0, causal=True, window=window, key_valid=valid)
    fast, slow = make_attn(softmax, "sdpa", window=window), make_attn(softmax, "eager", window=window)
    a, b = fast(x, mask), slow(x, mask)
    rows = slice(None) if valid is None else valid
    torch.testing.assert_close(a[rows], b[rows], atol=1e-6, rtol=0)


def test_sdpa_fast_path_takes_no_mask():
    m = build_mask(16, 16, 0, causal=True)
    assert m.mask is None and m.is_causal
    assert build_mask(1, 17, 16, causal=True).mask is None  # a decode step with no padding
    assert build_mask(8, 8, 0, causal=True, window=4).mask is not None  # a window that bites is never dropped
    banded = build_mask(32, 32, 0, causal=True, window=4)  # T >= 8 windows: banded (nn.banded), no T x T mask
    assert banded.mask is None and banded.band is not None and not banded.is_causal


def test_softmax1_formula():
    x = torch.randn(4, 7) * 3
    want = torch.exp(x) / (1 + torch.exp(x).sum(-1, keepdim=True))
    torch.testing.assert_close(softmax1(x), want, atol=1e-7, rtol=1e-6)
    # large scores: stable, and tends to the ordinary softmax
    big = torch.tensor([[1000.0, 999.0]])
    torch.testing.assert_close(softmax1(big), torch.softmax(big, -1), atol=1e-6, rtol=0)
    # all very negative: weights tend to zero (the head can attend to nothing)
    assert softmax1(torch.full((1, 5), -50.0)).sum() < 1e-20


def test_softmax1_on_sdpa_equals_formula_attention():
    """Attention with softmax1 run through SDPA (zero key/value) equals the written-out formula."""
    attn = make_attn("softmax1", "sdpa", h=4, hkv=4)
    x = torch.randn(2, 9, 32)
    got = attn(x, build_mask(9, 9, 0, causal=True))
    q = attn.q_proj(x).view(2, 9, 4, 8).transpose(1, 2)
    k = attn.k_proj(x).view(2, 9, 4, 8).transpose(1, 2)
    v = attn.v_proj(x).view(2, 9, 4, 8).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / math.sqrt(8)
    e = torch.exp(s).tril()  # causal: masked keys contribute nothing
    w = e / (1 + e.sum(-1, keepdim=True))
    want = attn.o_proj((w @ v).transpose(1, 2).reshape(2, 9, 32))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_clipped_softmax_can_output_exact_zeros():
    p = SOFTMAX.get("clipped")(gamma=-0.1, zeta=1.1)(torch.tensor([[10.0, 0.0, 0.0]]))
    assert p[0, 1] == 0 and p[0, 0] == 1


@pytest.mark.parametrize("preset,extra", [
    ("gpt2-tiny", {}), ("llama-tiny", {}), ("mistral-tiny", {"sliding_window": 6}),
    ("llama-tiny", {"softmax": "softmax1"}), ("llama-tiny", {"position": "alibi"}),
    ("gpt2-tiny", {"position": "sinusoidal"}), ("llama-tiny", {"n_kv_heads": 1}),
])
def test_cached_decoding_equals_full_recomputation(preset, extra):
    model = genzoo.build(preset, **extra).eval()
    ids = torch.randint(0, model.config.vocab_size, (2, 20))
    with torch.no_grad():
        full = model(ids).logits  # (B, T, V)
        cache = model.make_cache(2, 20)
        steps = [model(ids[:, :8], cache=cache).logits]
        for t in range(8, 20):
            steps.append(model(ids[:, t:t + 1], cache=cache).logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("preset,extra", [("llama-tiny", {}), ("gpt2-tiny", {"softmax": "softmax1"}),
                                          ("llama-tiny", {"position": "alibi"})])
def test_model_sdpa_equals_eager(preset, extra):
    torch.manual_seed(1)
    fast = genzoo.build(preset, **extra).eval()
    slow = genzoo.build(preset, attn_backend="eager", **extra).eval()
    slow.load_state_dict(fast.state_dict())
    ids = torch.randint(0, fast.config.vocab_size, (2, 24))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0
    with torch.no_grad():
        torch.testing.assert_close(fast(ids).logits, slow(ids).logits, atol=1e-5, rtol=0)
        a, b = fast(ids, attention_mask=mask).logits, slow(ids, attention_mask=mask).logits
    torch.testing.assert_close(a[mask.bool()], b[mask.bool()], atol=1e-5, rtol=0)


def test_alibi_bias_and_slopes():
    assert torch.allclose(alibi_slopes(8), torch.tensor([2 ** -(i + 1) for i in range(8)]))
    assert len(alibi_slopes(6)) == 6
    pos = torch.arange(4)[None]
    bias = ALiBi(2)(pos, pos)  # (1, H, T, T)
    assert bias[0, 0, 3, 0] == -3 * alibi_slopes(2)[0] and bias[0, 1, 2, 2] == 0


def test_rope_rotates_each_half_pair_by_position_times_frequency():
    """rotate-half RoPE: (x_i, x_{i+Dh/2}) turns by angle p * theta^(-2i/Dh); scores depend on distance only."""
    rope, dh, theta = RotaryPositions(32, 8, theta=500.0), 8, 500.0
    x = torch.randn(1, 2, 1, dh)
    p = 5
    cos, signed_sin = rope(torch.tensor([[p]]))
    y = RotaryPositions.apply(x, cos, signed_sin)
    for i in range(dh // 2):
        a = p * theta ** (-2 * i / dh)
        x1, x2 = x[..., i], x[..., i + dh // 2]
        torch.testing.assert_close(y[..., i], x1 * math.cos(a) - x2 * math.sin(a))
        torch.testing.assert_close(y[..., i + dh // 2], x2 * math.cos(a) + x1 * math.sin(a))
    q, k = torch.randn(1, 1, 1, dh), torch.randn(1, 1, 1, dh)

    def score(pq, pk):
        def at(x, pos):
            return RotaryPositions.apply(x, *rope(torch.tensor([[pos]])))
        return (at(q, pq) * at(k, pk)).sum()
    torch.testing.assert_close(score(7, 3), score(20, 16))


def test_sinusoidal_table_values():
    t = SinusoidalPositions(10, 6).table
    p, i = 3, 1
    assert torch.isclose(t[p, 2 * i], torch.tensor(math.sin(p / 10000 ** (2 * i / 6))))
    assert torch.isclose(t[p, 2 * i + 1], torch.tensor(math.cos(p / 10000 ** (2 * i / 6))))


def test_padding_rows_never_nan():
    model = genzoo.build("llama-tiny").eval()
    ids = torch.randint(0, 512, (2, 10))
    mask = torch.ones_like(ids)
    mask[0, :6] = 0
    with torch.no_grad():
        assert torch.isfinite(model(ids, attention_mask=mask).logits).all()


@pytest.mark.parametrize("backend", ["sdpa", "eager"])
def test_cross_attention_with_padded_memory_matches_formula(backend):
    torch.manual_seed(2)
    d, h, dh = 32, 4, 8
    attn = Attention(nn.Linear(d, h * dh), nn.Linear(d, h * dh), nn.Linear(d, h * dh), nn.Linear(h * dh, d),
                     n_heads=h, n_kv_heads=h, head_dim=dh, causal=False, backend=backend)
    x, memory = torch.randn(2, 5, d), torch.randn(2, 7, d)
    valid = torch.ones(2, 7, dtype=torch.bool)
    valid[1, 4:] = False  # the second memory sequence is padded
    mask = build_mask(5, 7, 0, causal=False, key_valid=valid, self_attention=False)
    got = attn(x, mask, kv_input=memory)
    q = attn.q_proj(x).view(2, 5, h, dh).transpose(1, 2)
    k = attn.k_proj(memory).view(2, 7, h, dh).transpose(1, 2)
    v = attn.v_proj(memory).view(2, 7, h, dh).transpose(1, 2)
    s = (q @ k.transpose(-1, -2) / math.sqrt(dh)).masked_fill(~valid[:, None, None, :], float("-inf"))
    want = attn.o_proj((s.softmax(-1) @ v).transpose(1, 2).reshape(2, 5, h * dh))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_unknown_backend_is_refused():
    with pytest.raises(genzoo.ConfigError, match="unknown attention backend 'flash3'"):
        make_attn(backend="flash3")


@pytest.mark.parametrize("preset", ["bert-tiny", "llama-tiny"])
def test_padded_batch_runs_under_bf16_autocast(preset):
    """`precision: auto` trains under bf16 autocast where the CPU has bf16: the padded (packed) path writes each
    length group's bf16 attention output into one buffer, which must take the projections' dtype (a float32 buffer
    made index_put fail in the GLiNER task's first validation)."""
    from genzoo.precision import autocast

    torch.manual_seed(0)
    model = genzoo.build(preset).eval()
    ids = torch.randint(5, 100, (3, 10))
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[1, 6:] = 0  # three lengths: 10, 6, 10
    mask[2, 3:] = 0
    with torch.no_grad():
        want = model(ids, attention_mask=mask)
        with autocast("cpu", torch.bfloat16):
            got = model(ids, attention_mask=mask)
    out = "last_hidden_state" if hasattr(want, "last_hidden_state") and want.last_hidden_state is not None else "logits"
    a, b = getattr(want, out), getattr(got, out).float()
    valid = mask.bool()
    assert torch.isfinite(b[valid]).all()
    assert (a[valid] - b[valid]).abs().max() < 0.1 * a[valid].abs().max()
