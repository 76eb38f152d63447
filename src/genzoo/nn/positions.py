"""Position information, as parts of three kinds (the `kind` attribute says how a model uses one):

- ``absolute``: a (B, T, D) tensor added to the token embeddings.
  `LearnedPositions` (GPT-2) and `SinusoidalPositions` (Vaswani et al., 2017, sec. 3.5:
  PE[p, 2i] = sin(p / 10000^(2i/D)), PE[p, 2i+1] = cos(p / 10000^(2i/D))).
- ``rotary``: `RotaryPositions` (Su et al., "RoFormer", 2021, eq. 34) rotates queries and keys,
  rotate-half convention (GPT-NeoX / Llama): x' = x * cos + rotate_half(x) * sin.
- ``bias``: `ALiBi` (Press et al., "Train Short, Test Long", 2022, sec. 3) adds
  -m_h * (i - j) to the attention score of query i and key j, with geometric head slopes m_h.
- ``relative``: DeBERTa's relative-position embeddings (`disentangled.RelativeEmbeddings`), which the
  attention parts project and add to their scores (`disentangled.DisentangledBias`).

How each kind is applied is written once, in `stack.Stack`; no model reads `kind` itself.
`POSITIONS` factories share ``make(max_positions=, dim=, head_dim=, n_heads=, theta=, scaling=, bidirectional=)``
(bidirectional: the stack is not causal; the bias kinds use it).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry


class NoPositions(nn.Module):
    kind = "none"


class LearnedPositions(nn.Module):
    """A learned table of absolute position vectors (GPT-2's ``wpe``)."""

    kind = "absolute"

    def __init__(self, max_positions: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_positions, dim).normal_(std=0.02))

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, D)
        return nn.functional.embedding(position_ids, self.weight)


class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal absolute positions (Vaswani et al., 2017, sec. 3.5)."""

    kind = "absolute"

    def __init__(self, max_positions: int, dim: int, base: float = 10000.0):
        super().__init__()
        p = torch.arange(max_positions, dtype=torch.float32)[:, None]  # (P, 1)
        inv = base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (D/2,)
        table = torch.zeros(max_positions, dim)
        table[:, 0::2] = torch.sin(p * inv)
        table[:, 1::2] = torch.cos(p * inv[: dim // 2])
        self.register_buffer("table", table, persistent=False)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, D)
        return self.table[position_ids]


def timestep_embedding(t: torch.Tensor, dim: int, flip_sin_to_cos: bool = False, freq_shift: float = 1.0,
                       max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (diffusion) timesteps t (B,) -> (B, dim), computed from t itself, not a table: the
    frequencies max_period^(-i / (dim/2 - freq_shift)), i < dim/2, sines then cosines (Vaswani et al. 2017, sec. 3.5,
    as DDPM, Ho et al. 2020, appendix B, uses it; diffusers' `get_timestep_embedding`, whose operations it repeats so
    the angles agree to the last bit). flip_sin_to_cos: cosines first."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half, dtype=torch.float32, device=t.device) / (half - freq_shift)
    angles = t[:, None].float() * torch.exp(exponent)[None, :]  # (B, dim/2)
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # (B, dim)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


def rope_inv_freq(head_dim: int, theta: float, scaling: dict | None) -> torch.Tensor:
    """Inverse frequencies theta^(-2i/d) (RoFormer eq. 15), optionally rescaled for long context.

    scaling: None, {"rope_type": "linear", "factor": f} (positions / f, Chen et al. 2023), or
    {"rope_type": "llama3", "factor", "low_freq_factor", "high_freq_factor",
    "original_max_position_embeddings"} (the Llama 3.1 frequency-band rescaling).
    """
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))  # (Dh/2,)
    kind = (scaling or {}).get("rope_type", "default")
    if kind == "default":
        return inv
    if kind == "linear":
        return inv / float(scaling["factor"])
    if kind == "llama3":
        factor = float(scaling["factor"])
        lo, hi = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
        old = float(scaling["original_max_position_embeddings"])
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > old / lo, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / hi) & ~(wavelen > old / lo)
        return torch.where(medium, smoothed, scaled)
    raise ConfigError(f"rope scaling type {kind!r} is not supported; supported: default, linear, llama3")


class RotaryPositions(nn.Module):
    """Rotary position embedding with precomputed cos/sin tables (RoFormer, eq. 34), in the rotate-half
    convention of Llama and GPT-NeoX: x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1].

    The sin table is stored with its first half negated (`signed_sin`), so that rotate_half(x) * sin is
    roll(x, Dh/2) * signed_sin: one roll instead of two slices, a negation and a concatenation (the same
    numbers, fewer ops in every decoding step)."""

    kind = "rotary"

    def __init__(self, max_positions: int, head_dim: int, theta: float = 10000.0, scaling: dict | None = None):
        super().__init__()
        if head_dim % 2:
            raise ConfigError(f"rotary positions need an even head_dim, got {head_dim}")
        inv = rope_inv_freq(head_dim, theta, scaling)
        freqs = torch.arange(max_positions, dtype=torch.float32)[:, None] * inv  # (P, Dh/2)
        emb = torch.cat([freqs, freqs], dim=-1)  # (P, Dh)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("signed_sin", torch.cat([-freqs.sin(), freqs.sin()], dim=-1), persistent=False)

    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) -> (cos, signed_sin), 2 x (B, 1, T, Dh), broadcast over heads: the arguments of `apply`."""
        return self.cos[position_ids].unsqueeze(1), self.signed_sin[position_ids].unsqueeze(1)

    @staticmethod
    def apply(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
        """Rotate x (B, H, T, Dh) by the angles in cos/signed_sin (B, 1, T, Dh):
        x * cos + rotate_half(x) * sin = x * cos + roll(x, Dh/2) * signed_sin."""
        if cos.dtype != x.dtype:  # tested here, not left to .to(): a no-op cast is still an op call
            cos, signed_sin = cos.to(x.dtype), signed_sin.to(x.dtype)
        return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * signed_sin


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Head slopes m_h (ALiBi sec. 3): 2^(-8h/n) for n a power of two, interleaved otherwise."""

    def power_of_two(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_heads).is_integer():
        return torch.tensor(power_of_two(n_heads))
    closest = 2 ** math.floor(math.log2(n_heads))
    extra = power_of_two(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(power_of_two(closest) + extra)


class ALiBi(nn.Module):
    """Attention with linear biases: score(i, j) += m_h * (j - i) (causal: j <= i, so -m_h * distance). A
    bidirectional stack penalises distance on both sides, -m_h * |j - i| (the symmetric form encoders use,
    e.g. MosaicBERT), so future keys are not favoured."""

    kind = "bias"

    def __init__(self, n_heads: int, bidirectional: bool = False):
        super().__init__()
        self.bidirectional = bidirectional
        self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)

    def forward(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        # q_pos (B, Tq), k_pos (B, Tk) -> (B, H, Tq, Tk)
        dist = (k_pos[:, None, :] - q_pos[:, :, None]).float()  # (B, Tq, Tk), <= 0 for past keys
        if self.bidirectional:
            dist = -dist.abs()
        return self.slopes[None, :, None, None] * dist[:, None]


def t5_bucket(rel: torch.Tensor, bidirectional: bool, num_buckets: int, max_distance: int) -> torch.Tensor:
    """T5's relative-position buckets (Raffel et al., 2020, sec. 2.1; Mesh TensorFlow): exact buckets for
    small distances, logarithmic ones up to max_distance; rel = key position - query position."""
    buckets = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (rel > 0).long() * num_buckets
        rel = rel.abs()
    else:
        rel = -torch.min(rel, torch.zeros_like(rel))
    max_exact = num_buckets // 2
    large = max_exact + (torch.log(rel.float() / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(rel < max_exact, rel, large)


class T5RelativeBias(nn.Module):
    """A learned scalar per head and relative-position bucket, added to the attention scores (T5)."""

    kind = "bias"

    def __init__(self, n_heads: int, num_buckets: int = 32, max_distance: int = 128, bidirectional: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_buckets, n_heads).normal_(std=0.02))
        self.num_buckets, self.max_distance, self.bidirectional = num_buckets, max_distance, bidirectional

    def forward(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        # q_pos (1, Tq), k_pos (1, Tk) -> (1, H, Tq, Tk)
        rel = k_pos[:, None, :] - q_pos[:, :, None]  # (1, Tq, Tk)
        b = t5_bucket(rel, self.bidirectional, self.num_buckets, self.max_distance)
        return nn.functional.embedding(b, self.weight).permute(0, 3, 1, 2)


POSITIONS: Registry = Registry("position")
POSITIONS.register("none", lambda **kw: NoPositions())
POSITIONS.register("learned", lambda max_positions, dim, **kw: LearnedPositions(max_positions, dim))
POSITIONS.register("sinusoidal", lambda max_positions, dim, **kw: SinusoidalPositions(max_positions, dim))
POSITIONS.register(
    "rope",
    lambda max_positions, head_dim, theta=10000.0, scaling=None, **kw: RotaryPositions(
        max_positions, head_dim, theta, scaling
    ),
)
POSITIONS.register("alibi", lambda n_heads, bidirectional=False, **kw: ALiBi(n_heads, bidirectional))
POSITIONS.register("t5_relative", lambda n_heads, buckets=32, max_distance=128, bidirectional=True, **kw:
                   T5RelativeBias(n_heads, buckets, max_distance, bidirectional))


def _disentangled(dim, max_positions, buckets=256, max_relative=-1, rel_norm=True, norm_eps=1e-7, **kw):
    from .disentangled import RelativeEmbeddings

    return RelativeEmbeddings(dim, max_positions, buckets, max_relative, rel_norm, norm_eps)


POSITIONS.register("disentangled", _disentangled)  # DeBERTa: relative embeddings shared by the layers
