"""Both attention kernels (SDPA and eager) against attention computed here from the formula,
softmax(Q K^T / sqrt(d) + mask) V, with the mask written out as an explicit boolean per (batch row, query, key):
a different padding per row, sliding windows (causal and bidirectional), causal, prefill, chunked prefill and
decode steps. A mask bug shared by both kernels (they take the same `build_mask` output) shows up here."""

import math

import pytest
import torch

from genzoo.nn import ATTENTION_BACKENDS, SOFTMAX, build_mask

B, H, HKV, DH = 4, 4, 2, 8


def key_valid(tk):
    """Row 0: no padding; row 1: 3 left-padding keys; row 2: 7 (more than a window); row 3: right padding."""
    valid = torch.ones(B, tk, dtype=torch.bool)
    valid[1, :3] = False
    valid[2, :7] = False
    valid[3, tk - 4:] = False
    return valid


def formula_mask(tq, tk, start, causal, window, valid):
    """allowed[b, i, j] for query i at absolute position start + i and key j (masks.py's contract)."""
    allowed = torch.zeros(B, tq, tk, dtype=torch.bool)
    for b in range(B):
        for i in range(tq):
            p = start + i
            for j in range(tk):
                ok = True
                if causal and j > p:
                    ok = False
                if window is not None:
                    if causal and not j > p - window:
                        ok = False
                    if not causal and abs(j - p) > window // 2:
                        ok = False
                if valid is not None and not valid[b, j]:
                    ok = False
                if j == p:  # a query always sees itself: no empty row
                    ok = True
                allowed[b, i, j] = ok
    return allowed


def formula_attention(q, k, v, allowed, softmax):
    groups = q.shape[1] // k.shape[1]
    k, v = k.double().repeat_interleave(groups, 1), v.double().repeat_interleave(groups, 1)
    s = q.double() @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, Tq, Tk)
    e = torch.where(allowed[:, None], torch.exp(s), torch.zeros_like(s))  # masked keys contribute nothing
    denom = e.sum(-1, keepdim=True) + (1.0 if softmax == "softmax1" else 0.0)
    return (e / denom) @ v


CASES = [
    # (tq, tk, start, causal, window, padded)
    (12, 12, 0, True, None, False),  # plain causal prefill: the implicit fast path
    (12, 12, 0, True, None, True),
    (12, 12, 0, True, 5, False),
    (12, 12, 0, True, 5, True),
    (12, 12, 0, True, 1, True),  # window of one key: itself
    (4, 12, 8, True, 5, True),  # chunked prefill over a cache
    (4, 12, 8, True, None, False),  # chunked prefill, no padding: still causal within the chunk
    (6, 6, 0, True, 5, False),  # one key more than the window: only the last query loses a key
    (6, 6, 0, True, 5, True),
    (1, 6, 5, True, 5, False),
    (1, 12, 11, True, 5, True),  # a decode step
    (1, 12, 11, True, None, True),
    (1, 12, 11, True, None, False),  # decode step, no mask at all
    (12, 12, 0, False, None, True),  # bidirectional encoder with padding
    (12, 12, 0, False, 6, True),  # bidirectional local window (ModernBERT)
    (12, 12, 0, False, 6, False),
]


@pytest.mark.parametrize("softmax", ["standard", "softmax1"])
@pytest.mark.parametrize("backend", ["sdpa", "eager"])
@pytest.mark.parametrize("tq,tk,start,causal,window,padded", CASES)
def test_kernel_equals_formula_with_explicit_mask(backend, softmax, tq, tk, start, causal, window, padded):
    g = torch.Generator().manual_seed(tq * 100 + tk + start + (window or 0))
    q = torch.randn(B, H, tq, DH, generator=g)
    k = torch.randn(B, HKV, tk, DH, generator=g) * 2  # large scores: a wrongly visible key matters
    v = torch.randn(B, HKV, tk, DH, generator=g)
    valid = key_valid(tk) if padded else None
    mask = build_mask(tq, tk, start, causal=causal, window=window, key_valid=valid)
    allowed = formula_mask(tq, tk, start, causal, window, valid)
    dense = mask.dense(tq, tk, "cpu")
    if dense is None:
        assert allowed.all(), "build_mask says no mask, but the formula masks keys"
    else:
        assert torch.equal(dense.expand(B, 1, tq, tk)[:, 0], allowed), "build_mask differs from the formula"
    got = ATTENTION_BACKENDS.get(backend)(q, k, v, mask, SOFTMAX.get(softmax)(), 1 / math.sqrt(DH), 0.0)
    want = formula_attention(q, k, v, allowed, softmax)
    assert got.shape == (B, H, tq, DH)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_rows_really_have_different_masks():
    """The cases above are not vacuous: the rows' masks differ from each other and from plain causal."""
    allowed = formula_mask(12, 12, 0, True, 5, key_valid(12))
    assert len({tuple(allowed[b].flatten().tolist()) for b in range(B)}) == B
    causal = torch.ones(12, 12, dtype=torch.bool).tril()
    assert not torch.equal(allowed[0], causal)  # the window cuts row 0 (no padding)


def test_masked_key_gets_exactly_zero_weight():
    """A masked key with a huge score and a huge value must not leak into the output."""
    tq = tk = 6
    q = torch.ones(B, H, tq, DH)
    k = torch.ones(B, HKV, tk, DH)
    v = torch.zeros(B, HKV, tk, DH)
    k[:, :, 0] = 50.0  # key 0 would dominate every row
    v[:, :, 0] = 1e4
    valid = torch.ones(B, tk, dtype=torch.bool)
    valid[:, 0] = False
    mask = build_mask(tq, tk, 0, causal=True, key_valid=valid)
    for backend in ("sdpa", "eager"):
        out = ATTENTION_BACKENDS.get(backend)(q, k, v, mask, SOFTMAX.get("standard")(), 1 / math.sqrt(DH), 0.0)
        assert out[:, :, 1:].abs().max() == 0, backend  # every real query: values of visible keys are all zero
