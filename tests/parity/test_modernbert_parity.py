"""ModernBERT against transformers (ModernBertModel, ModernBertForMaskedLM): GeGLU, RoPE with a local and a
global theta, local (window 8 < sequence 40) / global attention, bias-free pre-norm; hidden states and MLM
logits within atol 1e-5 over real tokens of padded batches; unpadded == padded; round trips."""

import pytest
import torch

import genzoo
from tests.hf_models import VOCAB, tiny_modernbert

from .encoder_checks import assert_round_trips, assert_unpadded_equals_padded



def padded_batch():
    ids = torch.randint(3, VOCAB, (3, 40))
    mask = torch.ones_like(ids)
    mask[1, 27:] = 0
    mask[2, 9:] = 0
    return ids * mask, mask


@pytest.fixture(scope="module", params=["ModernBertModel", "ModernBertForMaskedLM"])
def pair(request, tmp_path_factory):
    torch.manual_seed(0)
    ref = tiny_modernbert(masked_lm=request.param == "ModernBertForMaskedLM")
    d = tmp_path_factory.mktemp("modernbert")
    ref.save_pretrained(d)
    return ref, genzoo.load(d)


def test_layers_are_local_and_global(pair):
    _, ours = pair
    assert [b.attn.window for b in ours.blocks] == [None, 8, 8, None]


def test_hidden_states_and_logits_match(pair):
    ref, ours = pair
    ids, mask = padded_batch()
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        got = ours(ids, attention_mask=mask)
    real = mask.bool()
    hidden = want.hidden_states[-1] if ours.mlm is not None else want.last_hidden_state
    if ours.mlm is not None:  # the MLM model's hidden_states[-1] is before the final norm
        hidden = ref.model.final_norm(hidden)
        torch.testing.assert_close(got.logits[real], want.logits[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(got.last_hidden_state[real], hidden[real], atol=1e-5, rtol=0)


def test_unpadded_equals_padded(pair):
    assert_unpadded_equals_padded(pair[1], *padded_batch())


def test_round_trips(pair, tmp_path):
    assert_round_trips(*pair, tmp_path / "out", *padded_batch())
