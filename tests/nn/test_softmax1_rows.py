"""Softmax1 (softmax with an extra zero logit, exp(x_i) / (1 + sum_j exp(x_j)); Miller, 2023, "Attention is off
by one") shifts each row by its own max: rows whose scores lie far apart keep their values."""

import torch

from genzoo.nn.softmax import Softmax1


def _formula(s: torch.Tensor) -> torch.Tensor:
    e = torch.exp(s.double())  # float64 holds exp(500) and these rows' sums: the formula needs no shift
    return e / (1 + e.sum(dim=-1, keepdim=True))


def test_rows_of_very_different_ranges_each_follow_the_formula():
    scores = torch.tensor([[[[500.0, 499.0, 0.0], [-3.0, -4.0, -5.0], [2.0, 1.0, 0.5]]]])  # (1, 1, 3, 3)
    got = Softmax1()(scores)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, _formula(scores).float(), rtol=1e-6, atol=1e-7)
    assert got[0, 0, 1].sum() < 1  # the zero logit takes the rest: a row of negative scores sums below 1
