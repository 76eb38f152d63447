"""The load-balancing loss in its two scopes: pooled over layers (transformers' Mixtral) and per layer (Switch)."""

import pytest
import torch

from genzoo.errors import ConfigError
from genzoo.nn import load_balancing_loss


def _router_for(experts: list[int], n_tokens: int = 64, n_experts: int = 4, low: float = -30.0) -> torch.Tensor:
    """Logits (N, E) whose top-2 is always `experts`, with (nearly all) the probability split between them."""
    logits = torch.full((n_tokens, n_experts), low)
    logits[:, experts] = 0.0
    return logits


def test_pooling_hides_what_each_layer_starves():
    # layer 0 uses only experts 0 and 1, layer 1 only 2 and 3: pooled, the four experts look evenly loaded
    layers = [_router_for([0, 1]), _router_for([2, 3])]
    pooled = load_balancing_loss(layers, 4, 2)
    per_layer = load_balancing_loss(layers, 4, 2, scope="per-layer")
    assert pooled.item() == pytest.approx(2.0, abs=1e-5)  # k: what a uniform router gives
    assert per_layer.item() == pytest.approx(4.0, abs=1e-5)  # E * (2 experts * 1/2 * 1/2) = 4 per layer


def test_scopes_agree_on_one_layer_and_per_layer_is_the_mean():
    g = torch.Generator().manual_seed(0)
    layers = [torch.randn(50, 8, generator=g) for _ in range(3)]
    mask = (torch.rand(5, 10, generator=g) > 0.3).long()
    each = [load_balancing_loss([x], 8, 2, mask) for x in layers]
    for x, e in zip(layers, each):
        torch.testing.assert_close(load_balancing_loss([x], 8, 2, mask, scope="per-layer"), e)
    torch.testing.assert_close(load_balancing_loss(layers, 8, 2, mask, scope="per-layer"), torch.stack(each).mean())


def test_per_layer_gradient_moves_probability_off_the_overloaded_experts():
    logits = _router_for([0, 1], low=-2.0).requires_grad_(True)
    load_balancing_loss([logits, _router_for([2, 3])], 4, 2, scope="per-layer").backward()
    grad = logits.grad.sum(0)  # descent lowers the logits of the used experts 0, 1 and raises 2, 3
    assert grad[0] > 0 and grad[1] > 0 and grad[2] < 0 and grad[3] < 0


def test_unknown_scope_is_refused():
    with pytest.raises(ConfigError, match="per-layer"):
        load_balancing_loss([torch.zeros(4, 4)], 4, 2, scope="layers")
