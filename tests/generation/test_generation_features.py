"""Generation features against transformers' `generate` on the same weights (tiny random checkpoints saved with
save_pretrained and read by genzoo.load): greedy + repetition penalty, min_new_tokens, stop strings (same stop
positions), right padding, num_return_sequences (sampling shapes; beam search tokens), streaming."""

import io

import pytest
import torch

import genzoo
from genzoo.errors import InputError
from genzoo.streamers import TextStreamer
from genzoo.tokenizers import Tokenizer

from ..hf_models import VOCAB, tiny_hf, tiny_t5
from ..tiny_tokenizer import char_tokenizer


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(transformers Llama, the same weights through genzoo.load, the HF tokenizer, genzoo's tokenizer)."""
    import transformers as tf

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("llama")
    ref = tiny_hf("llama")
    ref.save_pretrained(d)
    char_tokenizer(d)
    return ref, genzoo.load(d), tf.AutoTokenizer.from_pretrained(d), Tokenizer.from_dir(d)


def prompts(b=3, t=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, VOCAB, (b, t), generator=g)
    mask = torch.ones_like(ids)
    mask[-1, :3] = 0  # left padding
    return ids, mask


def test_greedy_with_repetition_penalty_equals_transformers(pair):
    ref, ours, _, _ = pair
    ids, mask = prompts()
    plain = ours.generate(ids, attention_mask=mask, max_new_tokens=10)
    for penalty in (1.3, 0.7):
        want = ref.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False, repetition_penalty=penalty,
                            eos_token_id=None, pad_token_id=0)
        got = ours.generate(ids, attention_mask=mask, max_new_tokens=10, repetition_penalty=penalty)
        assert torch.equal(got, want)
        assert not torch.equal(got, plain)  # the penalty changed the tokens: the comparison can fail


def test_min_new_tokens_equals_transformers(pair):
    ref, ours, _, _ = pair
    ids, mask = prompts()
    free = ours.generate(ids, attention_mask=mask, max_new_tokens=12)
    eos = int(free[0, ids.shape[1] + 1])  # row 0 would end at its 2nd new token
    early = ours.generate(ids, attention_mask=mask, max_new_tokens=12, eos_token_id=eos, pad_token_id=0)
    want = ref.generate(ids, attention_mask=mask, max_new_tokens=12, do_sample=False, min_new_tokens=6,
                        eos_token_id=eos, pad_token_id=0)
    got = ours.generate(ids, attention_mask=mask, max_new_tokens=12, eos_token_id=eos, pad_token_id=0,
                        min_new_tokens=6)
    assert torch.equal(got, want)
    assert eos not in got[0, ids.shape[1]:ids.shape[1] + 6].tolist() and not torch.equal(got, early[:, :got.shape[1]])


def test_stop_strings_stop_where_transformers_stops(pair):
    ref, ours, hf_tok, tok = pair
    ids, mask = prompts(b=2, seed=3)
    free = ours.generate(ids, attention_mask=mask, max_new_tokens=24)
    text = tok.decode(free[0, ids.shape[1]:].tolist())
    stops = [text[5:8], "zz-never"]  # occurs in row 0 around its 5th character; row 1 runs on (or not)
    want = ref.generate(ids, attention_mask=mask, max_new_tokens=24, do_sample=False, stop_strings=stops,
                        tokenizer=hf_tok, eos_token_id=1, pad_token_id=0)
    got = ours.generate(ids, attention_mask=mask, max_new_tokens=24, stop=stops, tokenizer=tok, eos_token_id=1,
                        pad_token_id=0)
    assert torch.equal(got, want)
    row = got[0, ids.shape[1]:].tolist()
    n = len(row) - row.count(0)
    assert n < 24 and stops[0] in tok.decode(row[:n]) and stops[0] not in tok.decode(row[:n - 1])


def test_right_padding_is_converted_and_holes_refused(pair):
    ref, ours, _, _ = pair
    ids, _ = prompts()
    left = torch.ones_like(ids)
    left[1, :3] = 0
    right_ids = ids.clone()
    right_ids[1] = torch.cat([ids[1, 3:], torch.zeros(3, dtype=ids.dtype)])
    right = torch.ones_like(ids)
    right[1, -3:] = 0
    want = ref.generate(ids, attention_mask=left, max_new_tokens=10, do_sample=False, eos_token_id=None,
                        pad_token_id=0)
    got = ours.generate(right_ids, attention_mask=right, max_new_tokens=10)
    assert torch.equal(got[:, ids.shape[1]:], want[:, ids.shape[1]:])
    assert torch.equal(got[1, 3:ids.shape[1]], ids[1, 3:])  # the row comes back left-padded
    hole = torch.ones_like(ids)
    hole[0, 2] = 0
    with pytest.raises(InputError, match="padding between real tokens"):
        ours.generate(ids, attention_mask=hole, max_new_tokens=4)


def test_num_return_sequences_with_sampling(pair):
    ref, ours, _, _ = pair
    ids, mask = prompts(b=2)
    got = ours.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=True, num_return_sequences=3, seed=0)
    want = ref.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=True, num_return_sequences=3,
                        eos_token_id=None, pad_token_id=0)
    assert got.shape == want.shape == (6, ids.shape[1] + 8)
    assert torch.equal(got[:, :ids.shape[1]], want[:, :ids.shape[1]])  # prompt i repeated in rows 3i..3i+2
    assert len({tuple(r) for r in got[:3, ids.shape[1]:].tolist()}) > 1  # three different samples
    again = ours.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=True, num_return_sequences=3, seed=0)
    assert torch.equal(got, again)
    with pytest.raises(InputError, match="num_return_sequences"):
        ours.generate(ids, max_new_tokens=4, num_return_sequences=2)  # greedy copies


def test_beam_search_returns_the_best_n_as_transformers(tmp_path):
    ref = tiny_t5("gated-gelu")
    ref.save_pretrained(tmp_path)
    ours = genzoo.load(tmp_path)
    ids = torch.randint(2, VOCAB, (2, 6), generator=torch.Generator().manual_seed(0))
    want = ref.generate(ids, max_new_tokens=8, num_beams=3, num_return_sequences=2, do_sample=False)
    got = ours.generate(ids, max_new_tokens=8, num_beams=3, num_return_sequences=2)
    assert got.shape[0] == 4 and torch.equal(got, want)
    want = ref.generate(ids, max_new_tokens=8, do_sample=False, repetition_penalty=1.5, min_new_tokens=3)
    assert torch.equal(ours.generate(ids, max_new_tokens=8, repetition_penalty=1.5, min_new_tokens=3), want)


def test_streaming_gives_the_generated_tokens_and_text(pair):
    import transformers as tf

    ref, ours, hf_tok, tok = pair
    ids = prompts(b=1)[0][:, 3:]
    out = ours.generate(ids, max_new_tokens=12)
    assert torch.equal(torch.stack(list(ours.stream(ids, max_new_tokens=12)), 1), out[:, ids.shape[1]:])
    pieces = []
    ours.generate(ids, max_new_tokens=12, streamer=TextStreamer(tok, on_text=pieces.append))
    assert len(pieces) > 1 and "".join(pieces) == tok.decode(out[0, ids.shape[1]:].tolist())
    buf = io.StringIO()  # transformers' own TextStreamer, fed by genzoo and by transformers
    import contextlib

    with contextlib.redirect_stdout(buf):
        ours.generate(ids, max_new_tokens=12, streamer=tf.TextStreamer(hf_tok, skip_prompt=True))
        ref.generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0,
                     streamer=tf.TextStreamer(hf_tok, skip_prompt=True))
    first, second = buf.getvalue().split("\n")[:2]
    assert first == second and first
    with pytest.raises(InputError, match="repetition_penalty"):
        ours.stream(ids, repetition_penalty=0)  # bad input raises when the iterator is made
    with pytest.raises(InputError, match="tokenizer"):
        ours.generate(ids, stop=["x"])
