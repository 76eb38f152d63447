"""Seq2seq generation runs the causal LMs' decoding loop (`genzoo.generate.decode`): the same sampling, stopping,
inference mode and compile option."""

import torch

import genzoo
from genzoo import generate as gen


def model_and_input():
    torch.manual_seed(0)
    model = genzoo.build("t5-tiny").eval()
    ids = torch.randint(2, 500, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    return model, ids, mask


def test_seq2seq_uses_the_shared_loop(monkeypatch):
    model, ids, mask = model_and_input()
    calls = []
    real = gen.decode
    monkeypatch.setattr("genzoo.models.seq2seq.model.decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = model.generate(ids, attention_mask=mask, max_new_tokens=5)
    assert calls == [1] and out.shape[0] == 3 and bool((out[:, 0] == model.config.decoder_start_token_id).all())
    assert not out.is_inference()  # cloned out of inference mode, as for causal LMs


def test_seq2seq_sampling_is_seeded_and_compiled_step_equals_eager():
    model, ids, mask = model_and_input()
    a = model.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=True, top_k=20, top_p=0.9, seed=3)
    b = model.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=True, top_k=20, top_p=0.9, seed=3)
    assert torch.equal(a, b)
    eager = model.generate(ids, attention_mask=mask, max_new_tokens=6)
    compiled = model.generate(ids, attention_mask=mask, max_new_tokens=6, compile=True)
    assert torch.equal(eager, compiled)
