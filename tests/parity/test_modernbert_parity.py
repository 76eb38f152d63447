"""ModernBERT against transformers (ModernBertModel, ModernBertForMaskedLM): GeGLU, RoPE with a local and a
global theta, local (window 8 < sequence 40) / global attention, bias-free pre-norm; hidden states and MLM
logits within atol 1e-5 over real tokens of padded batches; unpadded == padded; round trips."""

import pytest
import torch

import genzoo
from tests.hf_models import VOCAB, tiny_modernbert

transformers = pytest.importorskip("transformers")


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
    _, ours = pair
    ids, mask = padded_batch()
    real = mask.bool()
    ours.config.unpad = False
    with torch.no_grad():
        padded = ours(ids, attention_mask=mask).last_hidden_state
    ours.config.unpad = True
    with torch.no_grad():
        unpadded = ours(ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(unpadded[real], padded[real], atol=1e-5, rtol=0)


def test_round_trips(pair, tmp_path):
    ref, ours = pair
    genzoo.save(ours, tmp_path / "out")
    back, info = type(ref).from_pretrained(tmp_path / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    ids, mask = padded_batch()
    real = mask.bool()
    with torch.no_grad():
        a = back.eval()(input_ids=ids, attention_mask=mask)
        b = ours(ids, attention_mask=mask)
        if ours.mlm is not None:
            torch.testing.assert_close(a.logits[real], b.logits[real], atol=1e-5, rtol=0)
        else:
            torch.testing.assert_close(a.last_hidden_state[real], b.last_hidden_state[real], atol=1e-5, rtol=0)
        assert torch.equal(genzoo.load(tmp_path / "out")(ids, attention_mask=mask).last_hidden_state,
                           b.last_hidden_state)
