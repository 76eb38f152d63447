"""`nn.packing`: each length group lays its rows out as (rows, seqlen) with the matching key mask, and its masks
carry the position bias cut to the group's length."""

import torch

from genzoo.nn.masks import build_mask
from genzoo.nn.packing import Packing


def test_each_group_row_holds_its_own_tokens_and_key_mask():
    # one group of 4 rows of 4 different lengths (right padding): slot j of the group is batch row rows[j]
    lengths = [5, 2, 7, 3]
    t = max(lengths)
    mask = torch.tensor([[1] * n + [0] * (t - n) for n in lengths])
    x = torch.arange(1, 4 * t + 1, dtype=torch.float32).view(4, t, 1)  # (B, T, 1) distinct values
    p = Packing.from_mask(mask, n_groups=1)
    (g,) = p.groups
    padded = g.pad(p.unpad(x))  # (Bg, seqlen, 1)
    for j, row in enumerate(g.rows.tolist()):
        n = lengths[row]
        assert torch.equal(padded[j, :n], x[row, :n]), f"slot {j} does not hold row {row}"
        assert torch.equal(padded[j, n:], torch.zeros(g.seqlen - n, 1))
        assert torch.equal(g.key_valid[j], mask[row, :g.seqlen].bool())
    out = torch.zeros(p.indices.shape[0], 1)
    out[g.token_idx] = g.unpad(padded)
    assert torch.equal(p.pad(out), x * mask[..., None])  # the round trip gives every token back in place


def test_masks_carry_the_bias_cut_to_each_groups_length():
    lengths = [2, 6, 3, 8]
    t = max(lengths)
    mask = torch.tensor([[1] * n + [0] * (t - n) for n in lengths])
    p = Packing.from_mask(mask, n_groups=2)
    bias = torch.randn(1, 2, t, t)  # (1, H, T, T) an ALiBi-like bias over the padded length
    masks = p.masks(causal=True, window=None, bias=bias)
    assert len(masks) == len(p.groups)
    for g, m in zip(p.groups, masks):
        s = g.seqlen
        want = build_mask(s, s, 0, causal=True, key_valid=g.key_valid).dense(s, s, "cpu")
        assert torch.equal(m.bias, bias[..., :s, :s])
        assert torch.equal(m.mask, want)


def test_a_per_row_bias_follows_each_groups_rows():
    """A (B, H, T, T) bias (one per batch row) is cut to each group's rows in the group's order, not only to its
    length; a bias whose batch is neither 1 nor B is refused."""
    import pytest

    from genzoo.errors import InputError

    lengths = [2, 6, 3, 8, 5]
    t = max(lengths)
    mask = torch.tensor([[1] * n + [0] * (t - n) for n in lengths])
    p = Packing.from_mask(mask, n_groups=2)
    bias = torch.randn(len(lengths), 2, t, t)  # a distinct bias per row
    for g, m in zip(p.groups, p.masks(causal=False, window=None, bias=bias)):
        s = g.seqlen
        assert torch.equal(m.bias, bias[g.rows][..., :s, :s])
        assert m.bias.shape[0] == len(g.rows)
    with pytest.raises(InputError, match="bias batch 3 is neither 1 nor the batch 5"):
        p.masks(causal=False, window=None, bias=torch.randn(3, 2, t, t))
