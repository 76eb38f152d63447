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


def test_a_list_of_eos_ids_stops_at_any_and_pads_with_the_first():
    """eos_token_id may be a list (Llama 3's two stop tokens): a row ends at the first new token that is any of them,
    and is padded with the first id of the list when no pad_token_id is given; an empty list stops nothing."""
    torch.manual_seed(0)
    model = genzoo.build("llama-tiny").eval()
    prompt = torch.randint(0, model.config.vocab_size, (2, 5))
    free = model.generate(prompt, max_new_tokens=10)[:, 5:].tolist()  # greedy, no stop token
    # a new token of row 0 (past its first) seen neither before it nor anywhere in row 1: row 0 must stop there
    i = next(j for j in range(1, 10) if free[0][j] not in free[0][:j] + free[1])
    other = next(v for v in range(model.config.vocab_size) if v not in free[0] + free[1])  # never generated
    stopped = model.generate(prompt, max_new_tokens=10, eos_token_id=[other, free[0][i]])[:, 5:].tolist()
    assert stopped[0] == free[0][: i + 1] + [other] * (9 - i)  # padded with the list's first id
    assert stopped[1] == free[1]
    assert model.generate(prompt, max_new_tokens=10, eos_token_id=[])[:, 5:].tolist() == free
    # min_new_tokens masks every id of the list until it is reached
    late = model.generate(prompt, max_new_tokens=10, eos_token_id=[other, free[0][i]], min_new_tokens=10)[:, 5:]
    assert late.shape == (2, 10) and not torch.isin(late, torch.tensor([other, free[0][i]])).any()


def test_stream_lets_eos_end_on_the_first_token_as_generate_does():
    """`stream` takes Decoding.make's defaults: min_new_tokens 0 (transformers' default), so an eos that is the first
    greedy token ends the stream after one step, as generate does."""
    torch.manual_seed(0)
    model = genzoo.build("llama-tiny").eval()
    ids = torch.randint(0, model.config.vocab_size, (1, 5))
    first = int(model.generate(ids, max_new_tokens=1)[0, -1])
    steps = list(model.stream(ids, max_new_tokens=6, eos_token_id=first))
    assert [int(s[0]) for s in steps] == [first]
    assert model.generate(ids, max_new_tokens=6, eos_token_id=first).shape == (1, 6)  # prompt + the eos


def test_sampling_follows_the_generator_given_not_the_global_rng():
    """generate(do_sample=True, generator=g) draws from g: the same generator state gives the same tokens whatever
    the global RNG holds."""
    torch.manual_seed(0)
    model = genzoo.build("llama-tiny").eval()
    ids = torch.randint(0, model.config.vocab_size, (2, 4))
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        g = torch.Generator().manual_seed(123)
        runs.append(model.generate(ids, do_sample=True, temperature=2.0, max_new_tokens=12, generator=g))
    assert torch.equal(runs[0], runs[1])
    torch.manual_seed(1)
    other = model.generate(ids, do_sample=True, temperature=2.0, max_new_tokens=12,
                           generator=torch.Generator().manual_seed(124))
    assert not torch.equal(other, runs[0])  # the generator's state is what decides
