"""DeBERTa's relative positions (`nn.disentangled.relative_positions`, He et al., 2021, arXiv:2006.03654 sec. 3.1;
v2's log buckets) equal transformers' `build_relative_position` for every bucket / max_position setting, including
the ones that turn bucketing off (max_position <= 0 or bucket_size <= 0)."""

import pytest
import torch
from transformers.models.deberta_v2.modeling_deberta_v2 import build_relative_position

from genzoo.nn.disentangled import relative_positions


@pytest.mark.parametrize("buckets,max_position", [(8, 64), (8, 0), (8, -1), (0, 64), (-1, -1)])
def test_relative_positions_equal_transformers(buckets, max_position):
    tq, tk = 40, 40
    want = build_relative_position(torch.zeros(1, tq, 4), torch.zeros(1, tk, 4), bucket_size=buckets,
                                   max_position=max_position)[0]
    got = relative_positions(torch.arange(tq), torch.arange(tk), buckets, max_position)
    assert got.dtype == torch.long
    assert torch.equal(got, want)
