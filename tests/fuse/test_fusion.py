"""MinCE / AvgCE weights, the sparse fused cross-entropy against the dense formula, and the target's loss
lambda * CLM + (1 - lambda) * CE(target, fused) over real positions only."""

import pytest
import torch
import torch.nn.functional as F

from genzoo.errors import ConfigError
from genzoo.fuse.config import FuseConfig
from genzoo.fuse.fusion import FUSIONS, fused_distribution, fusion_loss, sparse_cross_entropy


def _dense(ids, probs, vocab):
    return torch.zeros(*ids.shape[:-1], vocab).scatter_add_(-1, ids, probs)


def test_min_ce_and_avg_ce_weights():
    ce = torch.tensor([[1.2, 0.7, 0.9], [0.5, 0.5, 2.0]])
    assert FUSIONS.get("min-ce")(ce).tolist() == [[0, 1, 0], [1, 0, 0]]  # the first of equal CEs
    torch.testing.assert_close(FUSIONS.get("avg-ce")(ce), torch.softmax(-ce, -1))
    assert FUSIONS.get("none")(ce) is None


def test_avg_ce_temperature_sharpens_towards_min_ce():
    ce = torch.tensor([[1.2, 0.7, 0.9], [0.5, 0.6, 2.0]])
    avg = FUSIONS.get("avg-ce")
    torch.testing.assert_close(avg(ce, 0.25), torch.softmax(-4 * ce, -1))  # softmax(-CE / T)
    torch.testing.assert_close(avg(ce, 1.0), avg(ce))  # temperature 1: the paper's AvgCE
    best = [avg(ce, t).max(-1).values for t in (1.0, 0.5, 0.1, 0.01)]
    assert all((a < b).all() for a, b in zip(best, best[1:]))  # the best source's weight grows as T falls
    torch.testing.assert_close(avg(ce, 1e-3), FUSIONS.get("min-ce")(ce))  # MinCE is the limit
    assert FUSIONS.get("min-ce")(ce, 0.1).tolist() == FUSIONS.get("min-ce")(ce).tolist()  # T unused by MinCE


def test_fused_sparse_cross_entropy_equals_the_dense_one():
    b, s, t, k, v = 2, 3, 5, 4, 11
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(v, (b, s, t, k), generator=g)  # repeats allowed: their probabilities add up
    probs = torch.softmax(torch.randn(b, s, t, k, generator=g), -1)
    weights = FUSIONS.get("avg-ce")(torch.rand(b, s, generator=g))
    f_ids, f_probs = fused_distribution(ids, probs, weights)
    dense = (_dense(ids, probs, v) * weights[:, :, None, None]).sum(1)  # sum_s w_s P_s: (b, t, v)
    torch.testing.assert_close(_dense(f_ids, f_probs, v), dense)
    torch.testing.assert_close(dense.sum(-1), torch.ones(b, t))
    logits = torch.randn(b, t, v, generator=g)
    want = F.cross_entropy(logits.flatten(0, 1), dense.flatten(0, 1), reduction="none").view(b, t)
    torch.testing.assert_close(sparse_cross_entropy(logits, f_ids, f_probs), want)


def test_loss_mixes_clm_and_fusion_over_real_positions():
    b, t, v, j = 2, 6, 9, 5
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(b, t, v, generator=g)
    labels = torch.randint(v, (b, t), generator=g)
    labels[1, 4:] = -100  # padding
    ids = torch.randint(v, (b, t, j), generator=g)
    probs = torch.softmax(torch.randn(b, t, j, generator=g), -1)
    out = fusion_loss(logits, labels, 0.9, ids, probs)
    real = labels != -100
    clm = F.cross_entropy(logits[real], labels[real])
    fusion = sparse_cross_entropy(logits, ids, probs)[real].mean()
    torch.testing.assert_close(out.clm, clm)
    torch.testing.assert_close(out.fusion, fusion)
    torch.testing.assert_close(out.loss, 0.9 * clm + 0.1 * fusion)
    only = fusion_loss(logits, labels, 1.0)
    assert only.fusion is None
    torch.testing.assert_close(only.loss, clm)


@pytest.mark.parametrize("bad", [{"method": "max-ce"}, {"lam": 1.5}, {"top_k": 0}, {"align": "fuzzy"},
                                 {"lamda": 0.9}, {"shard_size": True},
                                 {"temperature": 0}, {"temperature": -1.0}, {"temperature": "sharp"}])
def test_bad_fuse_options_are_refused(bad):
    with pytest.raises(ConfigError):
        FuseConfig.from_dict(bad)
