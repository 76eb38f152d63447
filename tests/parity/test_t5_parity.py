"""T5 against transformers: the original T5 (ReLU, tied, scaled output) and v1.1 (gated GELU); logits within
atol 1e-5 with a padded encoder batch and sequences longer than the bucket range (relative positions beyond
max_distance); greedy tokens identical; T5EncoderModel; the older untied v1.1 layout; round trips both ways."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import genzoo
from tests.hf_models import VOCAB, save_for_transformers, tiny_t5

import transformers


def batch():
    ids = torch.randint(2, VOCAB, (3, 30))
    mask = torch.ones_like(ids)
    mask[1, 21:] = 0
    mask[2, 7:] = 0
    return ids * mask, mask, torch.randint(2, VOCAB, (3, 26))


@pytest.fixture(scope="module", params=["relu", "gated-gelu"])
def pair(request, tmp_path_factory):
    torch.manual_seed(0)
    ref = tiny_t5(request.param)
    d = tmp_path_factory.mktemp("t5")
    ref.save_pretrained(d)
    return ref, genzoo.load(d), d


def test_logits_and_loss_match(pair):
    ref, ours, _ = pair
    ids, mask, dec = batch()
    labels = dec.clone()
    labels[0, -4:] = -100
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask, decoder_input_ids=dec)
        got = ours(ids, attention_mask=mask, decoder_input_ids=dec)
        torch.testing.assert_close(got.logits, want.logits, atol=1e-5, rtol=0)
        real = mask.bool()
        torch.testing.assert_close(got.encoder_last_hidden_state[real], want.encoder_last_hidden_state[real],
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(ours(ids, attention_mask=mask, labels=labels).loss,
                                   ref(input_ids=ids, attention_mask=mask, labels=labels).loss, atol=1e-5, rtol=0)


def test_greedy_tokens_identical(pair):
    ref, ours, _ = pair
    ids, mask, _ = batch()
    want = ref.generate(ids, attention_mask=mask, max_new_tokens=20, do_sample=False, num_beams=1)
    got = ours.generate(ids, attention_mask=mask, max_new_tokens=20)
    assert torch.equal(got, want)
    # with an eos the model emits, rows stop and are padded as transformers pads them
    eos = int(got[0, 3])
    want = ref.generate(ids, attention_mask=mask, max_new_tokens=20, do_sample=False, num_beams=1, eos_token_id=eos)
    assert torch.equal(ours.generate(ids, attention_mask=mask, max_new_tokens=20, eos_token_id=eos), want)


@pytest.mark.parametrize("kw", [dict(num_beams=4), dict(num_beams=3, length_penalty=0.5),
                                dict(num_beams=4, length_penalty=2.0, early_stopping=True)])
def test_beam_search_tokens_identical(pair, kw):
    ref, ours, _ = pair
    ids, mask, _ = batch()
    want = ref.generate(ids, attention_mask=mask, max_new_tokens=20, do_sample=False, **kw)
    assert torch.equal(ours.generate(ids, attention_mask=mask, max_new_tokens=20, **kw), want)
    # eos tokens the model emits early: hypotheses finish at different lengths and the shorter are filled
    greedy = ours.generate(ids, attention_mask=mask, max_new_tokens=20)
    stopped_early = False
    for eos in {int(greedy[0, 3]), int(greedy[1, 2]), int(greedy[2, 5])}:
        want = ref.generate(ids, attention_mask=mask, max_new_tokens=20, do_sample=False, eos_token_id=eos, **kw)
        got = ours.generate(ids, attention_mask=mask, max_new_tokens=20, eos_token_id=eos, **kw)
        assert torch.equal(got, want), (eos, got, want)
        stopped_early |= got.shape[1] < 21
    if ours.config.ffn == "mlp":  # with these weights the ReLU model's beams end at eos; the check must see it
        assert stopped_early


def test_beam_search_one_beam_is_greedy_and_bad_options_are_refused(pair):
    _, ours, _ = pair
    ids, mask, _ = batch()
    assert torch.equal(ours.generate(ids, attention_mask=mask, max_new_tokens=8, num_beams=1),
                       ours.generate(ids, attention_mask=mask, max_new_tokens=8))
    with pytest.raises(genzoo.InputError, match="num_beams"):
        ours.generate(ids, num_beams=0)
    with pytest.raises(genzoo.InputError, match="beam sampling"):
        ours.generate(ids, num_beams=2, do_sample=True)


def test_round_trips(pair, tmp_path):
    ref, ours, _ = pair
    back = save_for_transformers(ours, transformers.T5ForConditionalGeneration, tmp_path / "out")
    ids, mask, dec = batch()
    with torch.no_grad():
        a = back(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        b = ours(ids, attention_mask=mask, decoder_input_ids=dec).logits
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
        assert torch.equal(genzoo.load(tmp_path / "out")(ids, attention_mask=mask, decoder_input_ids=dec).logits, b)


def test_encoder_model(tmp_path):
    torch.manual_seed(0)
    ref = tiny_t5("gated-gelu", encoder_only=True)
    ref.save_pretrained(tmp_path / "enc")
    ours = genzoo.load(tmp_path / "enc")
    assert ours.decoder is None
    ids, mask, _ = batch()
    with torch.no_grad():
        a = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        b = ours(ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(b[real], a[real], atol=1e-5, rtol=0)
    save_for_transformers(ours, transformers.T5EncoderModel, tmp_path / "back")


def test_older_untied_v1_1_layout(tmp_path):
    """v1.1 checkpoints written before transformers 5: tie_word_embeddings false, a separate lm_head, no scaling."""
    torch.manual_seed(0)
    ref = tiny_t5("gated-gelu")
    d = tmp_path / "new"
    ref.save_pretrained(d)
    t = load_file(d / "model.safetensors")
    head = torch.randn(VOCAB, 32) * 0.1
    t["lm_head.weight"] = head
    (tmp_path / "old").mkdir()
    save_file(t, tmp_path / "old" / "model.safetensors")
    cfg = json.loads((d / "config.json").read_text())
    cfg["tie_word_embeddings"] = False
    cfg.pop("scale_decoder_outputs", None)
    (tmp_path / "old" / "config.json").write_text(json.dumps(cfg))
    old = genzoo.load(tmp_path / "old")
    assert not old.config.tie_embeddings and not old.config.scales_output
    ids, mask, dec = batch()
    with torch.no_grad():
        h = ref(input_ids=ids, attention_mask=mask, decoder_input_ids=dec, output_hidden_states=True)
        want = h.decoder_hidden_states[-1] @ head.t()
        torch.testing.assert_close(old(ids, attention_mask=mask, decoder_input_ids=dec).logits, want, atol=1e-5, rtol=0)
