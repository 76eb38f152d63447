"""`stream` honours the attention mask as `generate` does: a left-padded batch streams the tokens `generate`
gives (a surviving mutant of `make mutation` dropped the mask in `stream` and no test noticed)."""

import torch

import genzoo


def test_stream_of_a_padded_batch_equals_generate():
    torch.manual_seed(0)
    model = genzoo.build("llama-tiny").eval()
    ids = torch.randint(1, model.config.vocab_size, (2, 7))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # the second prompt is left-padded
    ids[1, :3] = 0
    want = model.generate(ids, attention_mask=mask, max_new_tokens=6)
    streamed = torch.stack(list(model.stream(ids, attention_mask=mask, max_new_tokens=6)), dim=1)  # (B, 6)
    assert torch.equal(streamed, want[:, ids.shape[1]:])
    unmasked = model.generate(ids, max_new_tokens=6)[:, ids.shape[1]:]
    assert not torch.equal(unmasked[1], want[1, ids.shape[1]:])  # the mask matters for the padded prompt
