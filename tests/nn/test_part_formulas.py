"""The shared parts against the formulas of their papers, written out here independently of the library:
ALiBi head slopes (Press et al. 2022, the paper's `get_slopes`), RMSNorm (Zhang & Sennrich 2019, eq. 4) in fp32,
bf16 and fp16, gated and plain FFNs (Shazeer 2020, eq. 5-6), every activation, and the softmax variants."""

import math

import pytest
import torch
import torch.nn.functional as F
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from genzoo.nn import ACTIVATIONS, FFNS, SOFTMAX, RMSNorm
from genzoo.nn.positions import ALiBi, alibi_slopes


# ---------------------------------------------------------------- ALiBi slopes


def paper_get_slopes(n):
    """The reference implementation from the ALiBi paper's repository (ofirpress/attention_with_linear_biases)."""

    def get_slopes_power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        ratio = start
        return [start * ratio**i for i in range(n)]

    if math.log2(n).is_integer():
        return get_slopes_power_of_2(n)
    closest_power_of_2 = 2 ** math.floor(math.log2(n))
    return (get_slopes_power_of_2(closest_power_of_2)
            + paper_get_slopes(2 * closest_power_of_2)[0::2][: n - closest_power_of_2])


def test_alibi_slopes_six_heads_exact():
    want = torch.tensor([2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3])
    got = alibi_slopes(6)
    assert got.shape == (6,)
    assert torch.equal(got.double(), want.double()), got.tolist()


def test_alibi_slopes_eight_heads_exact():
    want = torch.tensor([2.0 ** -(i + 1) for i in range(8)])
    assert torch.equal(alibi_slopes(8).double(), want.double()), alibi_slopes(8).tolist()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 40])
def test_alibi_slopes_equal_the_paper(n):
    want = torch.tensor(paper_get_slopes(n), dtype=torch.float64)
    got = alibi_slopes(n).double()
    assert got.shape == (n,)
    torch.testing.assert_close(got, want, atol=0, rtol=1e-6)


def test_alibi_twelve_heads_first_eight_are_powers_of_two_then_interleaved():
    got = alibi_slopes(12).double().tolist()
    assert got[:8] == [2.0 ** -(i + 1) for i in range(8)]
    torch.testing.assert_close(torch.tensor(got[8:], dtype=torch.float64), torch.tensor([2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5],
                                                                   dtype=torch.float64), atol=0, rtol=1e-6)


def test_alibi_bias_is_minus_slope_times_distance():
    n = 6
    bias = ALiBi(n)(torch.arange(5)[None], torch.arange(5)[None])  # (1, H, Tq, Tk)
    assert bias.shape == (1, n, 5, 5)
    slopes = torch.tensor(paper_get_slopes(n))
    i, j = torch.arange(5)[:, None], torch.arange(5)[None, :]
    want = -slopes[:, None, None] * (i - j).float()[None]
    torch.testing.assert_close(bias[0], want, atol=1e-7, rtol=0)


# ---------------------------------------------------------------- RMSNorm

EPS = 1e-2  # large: eps inside vs outside the square root differ visibly
TOL = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.bfloat16: dict(atol=2e-2, rtol=1.6e-2),
       torch.float16: dict(atol=2e-3, rtol=2e-3)}
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def rms_inputs(dtype, d=48):
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([1.0, 0.1, 0.05, 3.0, 0.0])[:, None]  # small rows: eps dominates; last row all zero
    x = (torch.randn(5, d, generator=g) * scale).to(dtype)
    w = (torch.rand(d, generator=g) * 2 + 0.25).to(dtype)  # non-trivial weight
    return x, w


def rms_formula(x, w, eps):
    x64, w64 = x.double(), w.double()
    return x64 / torch.sqrt(x64.pow(2).mean(-1, keepdim=True) + eps) * w64


def make_rmsnorm(w, eps=EPS):
    norm = RMSNorm(w.shape[0], eps=eps)
    with torch.no_grad():
        norm.weight.copy_(w.float())
    return norm.to(w.dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsnorm_equals_formula(dtype):
    x, w = rms_inputs(dtype)
    norm = make_rmsnorm(w)
    with torch.no_grad():
        y = norm(x)
    assert y.dtype == dtype and y.shape == x.shape
    torch.testing.assert_close(y.double(), rms_formula(x, w, EPS), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsnorm_eps_is_inside_the_square_root(dtype):
    """A row of RMS 0.05 with eps 1e-2: 1/sqrt(ms + eps) ~ 9.8, while 1/sqrt(ms) + eps would be ~ 20."""
    x = torch.full((1, 16), 0.05, dtype=dtype)
    norm = make_rmsnorm(torch.ones(16, dtype=dtype))
    with torch.no_grad():
        y = norm(x).double()
    want = 0.05 / math.sqrt(0.05**2 + EPS)
    torch.testing.assert_close(y, torch.full_like(y, want), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsnorm_zero_row_is_zero(dtype):
    norm = make_rmsnorm(torch.ones(8, dtype=dtype) * 1.5, eps=1e-6)
    with torch.no_grad():
        y = norm(torch.zeros(3, 8, dtype=dtype))
    assert not torch.isnan(y).any()
    assert torch.equal(y, torch.zeros_like(y))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsnorm_equals_transformers_llama(dtype):
    x, w = rms_inputs(dtype)
    ours = make_rmsnorm(w)
    ref = LlamaRMSNorm(w.shape[0], eps=EPS)
    with torch.no_grad():
        ref.weight.copy_(w.float())
    ref = ref.to(dtype)
    with torch.no_grad():
        got, want = ours(x), ref(x)
    assert got.dtype == want.dtype
    tol = dict(atol=1e-6, rtol=1e-6) if dtype == torch.float32 else dict(atol=0, rtol=0)  # same ops: bitwise
    torch.testing.assert_close(got, want, **tol)


def test_rmsnorm_gradient_equals_formula():
    x, w = rms_inputs(torch.float64)
    x = x.float().requires_grad_()
    norm = make_rmsnorm(w.float())
    norm(x).pow(2).sum().backward()
    x2 = x.detach().double().requires_grad_()
    rms_formula(x2, norm.weight.detach(), EPS).pow(2).sum().backward()
    torch.testing.assert_close(x.grad.double(), x2.grad, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- activations

SQRT2 = math.sqrt(2.0)
ACT_FORMULAS = {
    "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / SQRT2)),
    "gelu_tanh": lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    "relu": lambda x: torch.where(x > 0, x, torch.zeros_like(x)),
    "silu": lambda x: x / (1 + torch.exp(-x)),
    "quick_gelu": lambda x: x / (1 + torch.exp(-1.702 * x)),
}


def test_every_activation_has_a_formula_here():
    assert set(ACTIVATIONS.names()) == set(ACT_FORMULAS)


@pytest.mark.parametrize("name", sorted(ACT_FORMULAS))
def test_activation_equals_formula(name):
    x = torch.linspace(-6, 6, 241, dtype=torch.float64)
    got = ACTIVATIONS.get(name)(x.float()).double()
    torch.testing.assert_close(got, ACT_FORMULAS[name](x), atol=2e-6, rtol=1e-5)


def test_gelu_and_gelu_tanh_differ():
    """The two GELUs are different functions (max gap ~ 5e-4 at |x| ~ 2): a swap is visible."""
    x = torch.linspace(-4, 4, 161)
    gap = (ACTIVATIONS.get("gelu")(x) - ACTIVATIONS.get("gelu_tanh")(x)).abs().max()
    assert gap > 1e-4


# ---------------------------------------------------------------- feed-forward networks

GATED = [("gated", "silu"), ("gated", "gelu"), ("gated", "gelu_tanh"), ("swiglu", "silu"), ("geglu", "gelu")]
# (dim, hidden, input shape, autograd): small weights take F.linear; 512 x 512 takes oneDNN (with autograd: its
# plain product; without: the fused kernels, activation and gate product as post-ops); a single row takes `gemv`
SHAPES = [(16, 40, (2, 5, 16), True), (16, 40, (2, 5, 16), False), (512, 512, (2, 3, 512), True),
          (512, 512, (2, 3, 512), False), (512, 512, (1, 1, 512), False)]


def lin(x, layer):
    return F.linear(x, layer.weight, layer.bias)


def randomize(module, std=0.5):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(std=std / math.sqrt(p.shape[-1]) if p.dim() > 1 else 0.3)
    return module


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}-{'grad' if s[3] else 'nograd'}-{s[2][0]}")
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("name,activation", GATED)
def test_gated_ffn_equals_formula(name, activation, bias, shape):
    dim, hidden, xshape, grad = shape
    ffn = randomize(FFNS.get(name)(dim, hidden, activation, bias))
    assert tuple(ffn.gate.weight.shape) == tuple(ffn.up.weight.shape) == (hidden, dim)
    assert tuple(ffn.down.weight.shape) == (dim, hidden)
    x = torch.randn(*xshape) * 2
    act = ACT_FORMULAS[activation]
    with torch.set_grad_enabled(grad):
        got = ffn(x)
    with torch.no_grad():
        want = lin(act(lin(x, ffn.gate)) * lin(x, ffn.up), ffn.down)
    assert got.shape == x.shape
    torch.testing.assert_close(got.detach(), want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name,activation", [("swiglu", "silu"), ("geglu", "gelu")])
def test_named_gated_ffn_fixes_its_activation(name, activation):
    """swiglu is SiLU and geglu exact GELU, whatever activation argument the factory is given."""
    ffn = randomize(FFNS.get(name)(16, 40, "relu", False))
    x = torch.randn(3, 16) * 2
    want = lin(ACT_FORMULAS[activation](lin(x, ffn.gate)) * lin(x, ffn.up), ffn.down)
    torch.testing.assert_close(ffn(x).detach(), want.detach(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}-{'grad' if s[3] else 'nograd'}-{s[2][0]}")
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("activation", sorted(ACT_FORMULAS))
def test_mlp_equals_formula(activation, bias, shape):
    dim, hidden, xshape, grad = shape
    ffn = randomize(FFNS.get("mlp")(dim, hidden, activation, bias))
    x = torch.randn(*xshape) * 2
    with torch.set_grad_enabled(grad):
        got = ffn(x)
    with torch.no_grad():
        want = lin(ACT_FORMULAS[activation](lin(x, ffn.up)), ffn.down)
    torch.testing.assert_close(got.detach(), want, atol=1e-5, rtol=1e-4)


def test_gated_ffn_gradient_equals_formula():
    ffn = randomize(FFNS.get("swiglu")(16, 40, "silu", False))
    x = torch.randn(2, 5, 16, requires_grad=True)
    ffn(x).pow(2).sum().backward()
    x2 = x.detach().clone().requires_grad_()
    lin(F.silu(lin(x2, ffn.gate)) * lin(x2, ffn.up), ffn.down).pow(2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- softmax variants


def softmax_inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 9, generator=g, dtype=torch.float64) * 3
    x[0, 0] = torch.linspace(-4, 4, 9)
    x[0, 1, 0] = 8.0  # one dominant score: the clipped softmax saturates at 1
    return x


def test_standard_softmax_equals_formula():
    x = softmax_inputs()
    e = torch.exp(x)
    torch.testing.assert_close(SOFTMAX.get("standard")()(x.float()).double(), e / e.sum(-1, keepdim=True),
                               atol=1e-6, rtol=1e-5)


def test_softmax1_equals_formula():
    x = softmax_inputs()
    e = torch.exp(x)
    want = e / (1 + e.sum(-1, keepdim=True))
    got = SOFTMAX.get("softmax1")()(x.float()).double()
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    assert (got.sum(-1) < 1).all()


def test_softmax1_with_all_negative_scores_is_small_not_uniform():
    x = torch.full((2, 6), -5.0)
    got = SOFTMAX.get("softmax1")()(x)
    torch.testing.assert_close(got, torch.full_like(got, math.exp(-5) / (1 + 6 * math.exp(-5))), atol=1e-8, rtol=1e-5)


@pytest.mark.parametrize("gamma,zeta", [(-0.03, 1.0), (-0.1, 1.1), (-0.2, 1.0), (0.0, 1.05)])
def test_clipped_softmax_equals_formula(gamma, zeta):
    x = softmax_inputs()
    e = torch.exp(x)
    p = e / e.sum(-1, keepdim=True)
    want = ((zeta - gamma) * p + gamma).clamp(0.0, 1.0)
    got = SOFTMAX.get("clipped")(gamma=gamma, zeta=zeta)(x.float()).double()
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    if gamma < 0:
        assert (got == 0).any(), "inputs should reach the lower clip"
    if zeta > 1:
        assert (got == 1).any(), "inputs should reach the upper clip"


def test_clipped_softmax_defaults_are_the_papers():
    """Bondarenko et al. 2023 default: gamma = -0.03, zeta = 1."""
    x = softmax_inputs()
    e = torch.exp(x)
    p = e / e.sum(-1, keepdim=True)
    want = (1.03 * p - 0.03).clamp(0.0, 1.0)
    torch.testing.assert_close(SOFTMAX.get("clipped")()(x.float()).double(), want, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["standard", "softmax1", "clipped"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_softmax_variants_keep_the_dtype_and_compute_in_fp32(name, dtype):
    x = softmax_inputs().to(dtype)
    got = SOFTMAX.get(name)()(x)
    assert got.dtype == dtype
    want = SOFTMAX.get(name)()(x.float()).to(dtype)
    torch.testing.assert_close(got, want, atol=0, rtol=0)
