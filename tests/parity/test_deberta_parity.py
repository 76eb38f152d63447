"""DeBERTa-v2 against transformers: disentangled attention (c2p + p2c, scaled by 1/sqrt(3d)), log-bucket
relative positions with sequences (40) longer than the bucket size (8), shared or separate position
projections; hidden states and MLM logits within atol 1e-5 over real tokens; unpadded == padded; round trips."""

import pytest
import torch

import genzoo
from genzoo.nn.disentangled import log_bucket_position
from tests.hf_models import VOCAB, tiny_deberta

from .encoder_checks import assert_round_trips, assert_unpadded_equals_padded


VARIANTS = {
    "model-shared": dict(masked_lm=False),
    "mlm-shared": dict(masked_lm=True),
    "model-separate-abs": dict(masked_lm=False, share_att_key=False, position_biased_input=True, type_vocab_size=2),
    "model-c2p-only": dict(masked_lm=False, pos_att_type=["c2p"], share_att_key=False),
}


def padded_batch():
    ids = torch.randint(1, VOCAB, (3, 40))
    mask = torch.ones_like(ids)
    mask[1, 30:] = 0
    mask[2, 11:] = 0
    return ids * mask, mask


@pytest.fixture(scope="module", params=list(VARIANTS))
def pair(request, tmp_path_factory):
    torch.manual_seed(0)
    ref = tiny_deberta(**VARIANTS[request.param])
    d = tmp_path_factory.mktemp("deberta")
    ref.save_pretrained(d)
    return ref, genzoo.load(d)


def test_hidden_states_and_logits_match(pair):
    ref, ours = pair
    ids, mask = padded_batch()
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        got = ours(ids, attention_mask=mask)
    real = mask.bool()
    torch.testing.assert_close(got.last_hidden_state[real], want.hidden_states[-1][real], atol=1e-5, rtol=0)
    if ours.mlm is not None:
        torch.testing.assert_close(got.logits[real], want.logits[real], atol=1e-5, rtol=0)


def test_unpadded_equals_padded(pair):
    assert_unpadded_equals_padded(pair[1], *padded_batch())


def test_round_trips(pair, tmp_path):
    assert_round_trips(*pair, tmp_path / "out", *padded_batch())


def test_log_buckets_are_exact_near_and_logarithmic_far():
    rel = torch.arange(-40, 41)
    b = log_bucket_position(rel, 8, 32)
    assert torch.equal(b[(rel.abs() <= 4)], rel[rel.abs() <= 4].float())  # within bucket_size // 2: exact
    assert b.abs().max() <= 8 and torch.all(b[1:] >= b[:-1])  # far: compressed into the buckets, monotone
