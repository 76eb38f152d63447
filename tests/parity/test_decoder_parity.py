"""genzoo decoders against `transformers`: logits (fp32, atol 1e-5), greedy tokens, padded batches,
round trips. The reference is built with random weights from a tiny config and saved with
save_pretrained; genzoo.load reads that directory, the same path a user's checkpoint takes."""

import pytest
import torch

import genzoo

from tests.hf_models import VOCAB, save_for_transformers, tiny_hf

import transformers

ARCHS = ["gpt2", "llama", "mistral"]
ATOL = 1e-5


@pytest.fixture(scope="module", params=ARCHS)
def pair(request, tmp_path_factory):
    torch.manual_seed(0)
    ref = tiny_hf(request.param)
    d = tmp_path_factory.mktemp(request.param)
    ref.save_pretrained(d)
    return request.param, ref, genzoo.load(d), d


def test_logits_match(pair):
    arch, ref, ours, _ = pair
    ids = torch.randint(0, VOCAB, (3, 40))  # 40 > Mistral's window of 8
    with torch.no_grad():
        want = ref(ids).logits
        got = ours(ids).logits
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_loss_matches(pair):
    arch, ref, ours, _ = pair
    ids = torch.randint(0, VOCAB, (2, 24))
    labels = ids.clone()
    labels[:, :3] = -100
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, labels=labels).loss, ref(ids, labels=labels).loss, atol=ATOL, rtol=0)


def test_right_padded_logits_match_on_real_tokens(pair):
    arch, ref, ours, _ = pair
    ids = torch.randint(0, VOCAB, (3, 20))
    mask = torch.ones_like(ids)
    mask[1, 14:] = 0
    mask[2, 5:] = 0
    with torch.no_grad():
        want = ref(ids, attention_mask=mask).logits
        got = ours(ids, attention_mask=mask).logits
    real = mask.bool()
    torch.testing.assert_close(got[real], want[real], atol=ATOL, rtol=0)


def test_greedy_32_tokens_identical(pair):
    arch, ref, ours, _ = pair
    ids = torch.randint(2, VOCAB, (1, 12))
    want = ref.generate(ids, max_new_tokens=32, do_sample=False, eos_token_id=None, pad_token_id=0)
    got = ours.generate(ids, max_new_tokens=32)
    assert want.shape[1] == 12 + 32
    assert torch.equal(got, want)


def test_greedy_with_eos_matches_transformers(pair):
    arch, ref, ours, _ = pair
    ids = torch.randint(2, VOCAB, (2, 6))
    # make the eos the token the model emits third, so generation stops early in one row
    free = ours.generate(ids, max_new_tokens=8)
    eos = int(free[0, 6 + 2])
    want = ref.generate(ids, max_new_tokens=8, do_sample=False, eos_token_id=eos, pad_token_id=0)
    got = ours.generate(ids, max_new_tokens=8, eos_token_id=eos, pad_token_id=0)
    assert torch.equal(got, want)


def test_left_padded_batch_equals_each_prompt_alone(pair):
    arch, ref, ours, _ = pair
    lengths = [12, 5, 9]
    prompts = [torch.randint(2, VOCAB, (n,)) for n in lengths]
    t = max(lengths)
    ids = torch.zeros(len(prompts), t, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, t - len(p):] = p
        mask[i, t - len(p):] = 1
    batch = ours.generate(ids, attention_mask=mask, max_new_tokens=32)
    want_batch = ref.generate(ids, attention_mask=mask, max_new_tokens=32, do_sample=False, pad_token_id=0,
                              eos_token_id=None)
    for i, p in enumerate(prompts):
        alone = ours.generate(p[None], max_new_tokens=32)
        assert torch.equal(batch[i, t:], alone[0, len(p):]), f"row {i} differs from the prompt run alone"
    assert torch.equal(batch, want_batch)


def test_save_then_transformers_gives_same_logits(pair, tmp_path):
    arch, ref, ours, _ = pair
    back = save_for_transformers(ours, transformers.AutoModelForCausalLM, tmp_path / "out")
    ids = torch.randint(0, VOCAB, (2, 30))
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, ours(ids).logits, atol=ATOL, rtol=0)


def test_save_then_genzoo_is_bit_exact(pair, tmp_path):
    arch, ref, ours, _ = pair
    genzoo.save(ours, tmp_path / "out")
    again = genzoo.load(tmp_path / "out")
    a, b = ours.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ids = torch.randint(0, VOCAB, (2, 16))
    with torch.no_grad():
        assert torch.equal(ours(ids).logits, again(ids).logits)


def test_sharded_checkpoint_loads(pair, tmp_path):
    arch, ref, ours, _ = pair
    ref.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    loaded = genzoo.load(tmp_path / "sharded")
    ids = torch.randint(0, VOCAB, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, ours(ids).logits, atol=0, rtol=0)
