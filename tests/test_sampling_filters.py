"""Sampling filters against `transformers`' logits warpers: temperature, then top-k, then top-p (nucleus), the
same -inf positions and the same finite values, ties included; and `generate(do_sample=True)` only ever emits
tokens inside the nucleus."""

import math

import pytest
import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

import genzoo
from genzoo.generate import warp_logits


def reference(logits, temperature, top_k, top_p):
    """transformers' warpers, in the order `generate` applies them."""
    ids = torch.zeros(logits.shape[0], 1, dtype=torch.long)
    out = logits.clone()
    if temperature != 1.0:
        out = TemperatureLogitsWarper(temperature)(ids, out)
    if top_k is not None:
        out = TopKLogitsWarper(top_k)(ids, out)
    if top_p is not None and top_p < 1.0:
        out = TopPLogitsWarper(top_p)(ids, out)
    return out


def assert_same_filter(got, want):
    assert got.shape == want.shape
    assert torch.equal(torch.isneginf(got), torch.isneginf(want)), (
        f"kept {(~torch.isneginf(got)).sum(-1).tolist()} tokens per row, transformers keeps "
        f"{(~torch.isneginf(want)).sum(-1).tolist()}")
    keep = ~torch.isneginf(want)
    torch.testing.assert_close(got[keep], want[keep], atol=0, rtol=0)


def random_logits(seed, rows=6, vocab=50, ties=False):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, vocab, generator=g) * 2
    if ties:  # few distinct values: many exact ties at the top-k and top-p boundaries
        logits = torch.randint(0, 5, (rows, vocab), generator=g).float()
    return logits


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.7, 1.5])
@pytest.mark.parametrize("top_k", [None, 1, 5, 49, 50, 80])
@pytest.mark.parametrize("top_p", [None, 0.05, 0.5, 0.9, 1.0])
def test_warp_logits_equals_transformers(temperature, top_k, top_p, ties):
    logits = random_logits(int(temperature * 10) + (top_k or 0) + int((top_p or 0) * 100), ties=ties)
    got = warp_logits(logits.clone(), temperature, top_k, top_p)
    assert_same_filter(got, reference(logits, temperature, top_k, top_p))


def test_warp_logits_does_not_modify_its_input():
    logits = random_logits(3)
    before = logits.clone()
    warp_logits(logits, 0.5, 5, 0.5)
    assert torch.equal(logits, before)


def probs_logits(*p):
    return torch.tensor([p]).log()


@pytest.mark.parametrize("top_p,kept", [(0.75, 2), (0.5, 1), (0.3, 1), (0.85, 3), (1.0, 3)])
def test_top_p_keeps_the_smallest_set_reaching_p(top_p, kept):
    """probabilities [0.5, 0.3, 0.2]: top_p=0.75 needs 0.5 + 0.3 = 0.8 >= 0.75 (two tokens); top_p=0.5 is reached
    by the first token alone; top_p=1.0 keeps everything."""
    logits = probs_logits(0.5, 0.3, 0.2)
    got = warp_logits(logits, 1.0, None, top_p)
    finite = ~torch.isneginf(got[0])
    assert finite.sum().item() == kept, got
    assert finite[:kept].all(), "the kept tokens must be the most likely ones"
    torch.testing.assert_close(got[0, :kept], logits[0, :kept], atol=0, rtol=0)
    assert_same_filter(got, reference(logits, 1.0, None, top_p))


def test_top_p_always_keeps_the_most_likely_token():
    logits = probs_logits(0.1, 0.2, 0.7)
    got = warp_logits(logits, 1.0, None, 1e-9)
    assert torch.isneginf(got[0]).tolist() == [True, True, False]


def test_top_k_ties_at_the_boundary_are_kept():
    logits = torch.tensor([[3.0, 1.0, 2.0, 2.0, 0.0]])
    got = warp_logits(logits, 1.0, 2, None)
    assert torch.isneginf(got[0]).tolist() == [False, True, False, False, True]
    assert torch.isneginf(warp_logits(logits, 1.0, 1, None)[0]).tolist() == [False, True, True, True, True]
    assert not torch.isneginf(warp_logits(logits, 1.0, 5, None)).any()


def test_temperature_divides():
    logits = torch.tensor([[1.0, -2.0, 4.0]])
    torch.testing.assert_close(warp_logits(logits, 0.5, None, None), logits * 2, atol=0, rtol=0)
    torch.testing.assert_close(warp_logits(logits, 4.0, None, None), logits / 4, atol=0, rtol=0)


def test_temperature_applies_before_top_p():
    """top-p on the tempered distribution: at temperature 3 the probabilities flatten, so a top_p that keeps one
    token at temperature 1 keeps more."""
    logits = probs_logits(0.6, 0.3, 0.1)
    assert (~torch.isneginf(warp_logits(logits, 1.0, None, 0.55))).sum() == 1
    hot = warp_logits(logits, 3.0, None, 0.55)
    assert (~torch.isneginf(hot)).sum() == 2
    assert_same_filter(hot, reference(logits, 3.0, None, 0.55))


@pytest.fixture(scope="module")
def peaky_llama():
    torch.manual_seed(0)
    model = genzoo.build("llama-tiny").eval()
    with torch.no_grad():  # widen the logits: a random model is near uniform and every nucleus is huge
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(std=0.2)
    return model


def test_tiny_top_p_sampling_is_greedy(peaky_llama):
    model = peaky_llama
    ids = torch.randint(0, model.config.vocab_size, (3, 5), generator=torch.Generator().manual_seed(1))
    greedy = model.generate(ids, max_new_tokens=12)
    for seed in range(3):
        sampled = model.generate(ids, max_new_tokens=12, do_sample=True, top_p=1e-6, seed=seed)
        assert torch.equal(sampled, greedy)


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, None, 0.6), (0.8, 20, 0.9), (1.3, None, 0.3)])
def test_sampled_tokens_lie_in_the_nucleus(peaky_llama, temperature, top_k, top_p):
    """Every sampled token is inside transformers' filtered set for the logits that produced it, and sampling
    does use the freedom it has (not every row is greedy)."""
    model = peaky_llama
    ids = torch.randint(0, model.config.vocab_size, (4, 4), generator=torch.Generator().manual_seed(2))
    n = 16
    out = model.generate(ids, max_new_tokens=n, do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p,
                         seed=0)
    assert out.shape == (4, 4 + n)
    with torch.no_grad():
        logits = model(out).logits.float()  # (B, T, V): position t predicts token t + 1
    nucleus_sizes = []
    for i in range(n):
        t = 4 + i
        allowed = reference(logits[:, t - 1], temperature, top_k, top_p)
        tok = out[:, t]
        assert not torch.isneginf(allowed.gather(1, tok[:, None])).any(), f"step {i}: a token outside the nucleus"
        nucleus_sizes.append((~torch.isneginf(allowed)).sum(-1))
    sizes = torch.stack(nucleus_sizes)
    assert (sizes > 1).any(), "test is vacuous: every nucleus holds one token"
    greedy = model.generate(ids, max_new_tokens=n)
    assert not torch.equal(out, greedy)
    assert math.isfinite(logits.sum().item())


@pytest.mark.parametrize("penalty", [1.3, 0.7])
def test_repetition_penalty_equals_transformers_on_positive_and_negative_logits(penalty):
    """Killed no mutant before (mutation testing): a seen token's logit is divided by the penalty when positive and
    multiplied when negative, exactly as transformers' RepetitionPenaltyLogitsProcessor; unseen tokens keep theirs."""
    from transformers import RepetitionPenaltyLogitsProcessor

    from genzoo.generate import penalise_repeats

    g = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 11, generator=g) * 4  # both signs, some near 0
    ids = torch.tensor([[0, 3, 3, 7], [1, 2, 5, 10], [4, 4, 4, 4]])
    seen = torch.zeros(3, 11, dtype=torch.bool).scatter_(1, ids, True)
    want = RepetitionPenaltyLogitsProcessor(penalty)(ids, scores.clone())
    got = penalise_repeats(scores, seen, penalty)
    assert (scores[seen] < 0).any() and (scores[seen] > 0).any() and (scores[seen].abs() < 1).any()
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert torch.equal(got[~seen], scores[~seen])
