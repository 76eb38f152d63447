"""Checks every encoder parity test makes: unpadded execution equals padded, and the round trips."""

import torch

import genzoo
from tests.hf_models import save_for_transformers


def assert_unpadded_equals_padded(model, ids, mask, **inputs):
    real = mask.bool()
    outputs = {}
    for unpad in (False, True):
        model.config.unpad = unpad
        with torch.no_grad():
            outputs[unpad] = model(ids, attention_mask=mask, **inputs).last_hidden_state
    torch.testing.assert_close(outputs[True][real], outputs[False][real], atol=1e-5, rtol=0)
    return outputs[True]


def assert_round_trips(ref, ours, directory, ids, mask):
    """genzoo -> save -> transformers: no missing/unexpected keys, same outputs; -> genzoo: bit-exact."""
    back = save_for_transformers(ours, type(ref), directory)
    real = mask.bool()
    with torch.no_grad():
        theirs = back(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        mine = ours(ids, attention_mask=mask)
        if mine.logits is not None:
            torch.testing.assert_close(theirs.logits[real], mine.logits[real], atol=1e-5, rtol=0)
        else:
            torch.testing.assert_close(theirs.last_hidden_state[real], mine.last_hidden_state[real], atol=1e-5, rtol=0)
        again = genzoo.load(directory)(ids, attention_mask=mask).last_hidden_state
    assert torch.equal(again, mine.last_hidden_state)
