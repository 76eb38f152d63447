"""Generation runs under inference mode but hands back ordinary tensors: generated ids feed a training step."""

import torch

import genzoo


def test_generated_ids_train_the_model():
    torch.manual_seed(0)
    model = genzoo.build("llama-tiny")
    ids = model.generate(torch.randint(0, model.config.vocab_size, (2, 5)), max_new_tokens=6)
    assert not ids.is_inference()
    model.train()
    loss = model(ids, labels=ids).loss
    loss.backward()
    assert model.embed.weight.grad is not None and torch.isfinite(loss)


def test_compiled_decoding_equals_eager_and_compiles_once():
    """generate(compile=True) runs the decoding step through torch.compile. It gives the eager tokens for a
    left-padded batch whose cache outgrows the sliding window (the mask changes kind on the way), with the
    model's weights large enough for `gemv`; one compilation then serves other prompt and output lengths."""
    torch.manual_seed(0)
    model = genzoo.build("mistral-tiny", d_model=256, d_ff=512).eval()  # window 16; weights reach MIN_GEMV_WEIGHT
    assert model.config.sliding_window == 16

    def prompts(length):
        ids = torch.randint(0, model.config.vocab_size, (2, length))
        mask = torch.ones_like(ids)
        mask[1, : length // 2] = 0  # the second prompt is left-padded
        return ids, mask

    ids, mask = prompts(6)
    eager = model.generate(ids, attention_mask=mask, max_new_tokens=20)
    torch.testing.assert_close(model.generate(ids, attention_mask=mask, max_new_tokens=20, compile=True), eager,
                               rtol=0, atol=0)
    ids, mask = prompts(9)
    with torch.compiler.set_stance("fail_on_recompile"):
        compiled = model.generate(ids, attention_mask=mask, max_new_tokens=12, compile=True)
    assert torch.equal(compiled, model.generate(ids, attention_mask=mask, max_new_tokens=12))
