"""Fused checkpoint keys (GPT-2's c_attn, ModernBERT's Wqkv): `split_fused` with unequal sizes, as a q/k/v fused
with fewer key/value heads needs, and `merge_fused` back. (A surviving mutant of `make mutation`: no caller passed
`sizes`.)"""

import torch

from genzoo.interop.formats import merge_fused, split_fused


def test_split_fused_with_unequal_sizes_and_back():
    """A fused q/k/v with fewer key/value heads (q 4 rows, k and v 2 each) splits by `sizes` along the output
    dim, as views; merge_fused puts it back."""
    fused = torch.arange(8 * 3, dtype=torch.float32).reshape(8, 3)
    tensors = {"h.0.attn.qkv.weight": fused, "h.0.attn.qkv.bias": torch.arange(8.0), "h.0.mlp.w": torch.ones(2)}
    parts = ["attn.q", "attn.k", "attn.v"]
    out = split_fused(tensors, "attn.qkv", parts, sizes=[4, 2, 2])
    assert torch.equal(out["h.0.attn.q.weight"], fused[:4])
    assert torch.equal(out["h.0.attn.k.weight"], fused[4:6])
    assert torch.equal(out["h.0.attn.v.weight"], fused[6:])
    assert torch.equal(out["h.0.attn.v.bias"], torch.arange(6.0, 8.0))
    assert out["h.0.attn.q.weight"].data_ptr() == fused.data_ptr()  # a view, no copy
    back = merge_fused(out, "attn.qkv", parts)
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], v) for k, v in tensors.items())
