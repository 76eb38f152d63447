"""LENS (genzoo.models.vl.lens), the image-prefixed decoder it captions with, the in-context prompts and the
text-only data the frozen LM learns from: cached decoding against the full forward pass, beam search, the tag
module's top-k-above-threshold rule, the prompt layout, constrained generation, bad input."""

import random

import pytest
import torch

import genzoo
from genzoo.data import digit_qa
from genzoo.errors import ConfigError, InputError
from genzoo.models.vl import LENS, Description, ImagePrefixLM, PromptWords, classification_prompt, generation_prompt
from genzoo.models.vl.incontext import (classification_episode, generate_tokens, generation_episode,
                                       next_token_among)
from genzoo.train.clip_task import tokenize
from genzoo.tokenizers import train_bpe


@pytest.fixture(scope="module")
def tok():
    return digit_qa.word_tokenizer()


@pytest.fixture
def captioner(tok):
    torch.manual_seed(0)
    m = genzoo.build("image-prefix-lm-tiny", vocab_size=tok.vocab_size, bos_token_id=tok.eos_id,
                     eos_token_id=tok.eos_id, pad_token_id=tok.eos_id).eval()
    with torch.no_grad():
        m.lm.embed.weight.mul_(50)  # peaked distributions, so greedy and beam paths differ from "eos at once"
    return m


def test_vocabulary_covers_every_generated_text(tok):
    rng = random.Random(0)
    for _ in range(200):
        prompt, answer = digit_qa.qa_example(rng)
        assert digit_qa.UNK not in tok.tok.encode(prompt + " " + answer).tokens
        assert len(tok.encode(answer)) == 1  # short answers are one word
    for a in digit_qa.all_attributes() + digit_qa.all_tags():
        assert digit_qa.UNK not in tok.tok.encode(a).tokens
    reserved = set(digit_qa.FORMAT_WORDS) | set(digit_qa.LABEL_WORDS) | set(digit_qa.SPECIALS)
    assert not reserved & set(digit_qa.content_words())


def test_greedy_caching_equals_the_full_forward(captioner):
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    out = captioner.generate(x, max_new_tokens=5, eos_token_id=[])  # no stop: 5 new tokens each
    with torch.no_grad():
        logits = captioner(x, out[:, :-1]).logits  # (B, 5, V), no cache
    torch.testing.assert_close(out[:, 1:], logits.argmax(-1))


def test_beam_search_scores_at_least_greedy(captioner):
    x = torch.rand(2, 1, 8, 8) * 2 - 1

    def score(seq):  # log-probability of the new tokens under the full forward pass
        with torch.no_grad():
            logp = captioner(x, seq[:, :-1]).logits.log_softmax(-1)
        return logp.gather(2, seq[:, 1:, None]).squeeze(2).sum(1)

    greedy = captioner.generate(x, max_new_tokens=4, eos_token_id=[])
    beam = captioner.generate(x, max_new_tokens=4, num_beams=4, eos_token_id=[])
    assert beam.shape == greedy.shape and bool((score(beam) >= score(greedy) - 1e-5).all())
    sampled = captioner.generate(x, max_new_tokens=4, do_sample=True, num_return_sequences=3, seed=0)
    again = captioner.generate(x, max_new_tokens=4, do_sample=True, num_return_sequences=3, seed=0)
    assert sampled.shape[0] == 6 and torch.equal(sampled, again)


def test_prefix_lm_save_load(captioner, tmp_path):
    genzoo.save(captioner, tmp_path / "c")
    back = genzoo.load(tmp_path / "c")
    x, ids = torch.rand(2, 1, 8, 8), torch.randint(0, captioner.config.vocab_size, (2, 6))
    assert isinstance(back, ImagePrefixLM) and back.lm.lm_head.weight is back.lm.embed.weight
    torch.testing.assert_close(back(x, ids).logits, captioner(x, ids).logits, atol=0, rtol=0)


def test_prompts_layout(tok):
    w = PromptWords.of(tok)
    ids = classification_prompt([(7, [100, 101]), (8, [102, 103])], [100, 103], w)
    assert tok.decode(ids[1:]) == tok.decode([7, w.is_, 100, 101, w.end, 8, w.is_, 102, 103, w.end, w.what, w.is_,
                                              100, 103, w.ask])
    assert generation_prompt([(7, [100])], 7, w)[-2:] == [7, w.is_]
    assert digit_qa.lens_prompt(["seven", "7"], ["seven which is odd"], ["a handwritten seven"], "what digit is "
                                "this?") == ("Tags: seven, 7. Attributes: seven which is odd. Captions: a handwritten "
                                             "seven. Question: what digit is this? Short answer:")
    rng = random.Random(1)
    pool, labels = list(range(40, 90)), list(range(20, 30))
    prompt, answer = classification_episode(rng, w, pool, labels)
    assert answer[0] in labels and prompt[-1] == w.ask
    prompt, target = generation_episode(rng, w, pool, labels)
    assert prompt[-1] == w.is_ and target[-1] == w.end and set(target[:-1]) <= set(pool)
    with pytest.raises(InputError, match="at least one labelled example"):
        classification_prompt([], [1], w)


def test_constrained_generation_equals_masked_greedy(tok):
    torch.manual_seed(0)
    lm = genzoo.build("llama-tiny", vocab_size=tok.vocab_size, n_layers=1).eval()
    allowed = torch.zeros(tok.vocab_size, dtype=torch.bool)
    allowed[50:60] = True
    prompts = [[0, 5, 6, 7], [0, 9]]  # different lengths: left padding
    new = generate_tokens(lm, prompts, 4, allowed, pad=0)
    assert new.shape == (2, 4) and bool(allowed[new].all())
    for p, row in zip(prompts, new.tolist()):  # one prompt at a time, no cache
        seq = list(p)
        for _ in range(4):
            with torch.no_grad():
                logits = lm(torch.tensor([seq])).logits[0, -1].masked_fill(~allowed, float("-inf"))
            seq.append(int(logits.argmax()))
        assert seq[len(p):] == row


@pytest.fixture(scope="module")
def clip_parts():
    torch.manual_seed(0)
    clip_tok = train_bpe(digit_qa.all_tags() + digit_qa.all_attributes(), 300, min_frequency=1)
    clip = genzoo.build("clip-tiny", vocab_size=clip_tok.vocab_size, image_size=8, patch_size=2, channels=1,
                        eos_token_id=clip_tok.eos_id).eval()
    return clip, (lambda t: tokenize(clip_tok, t, 32))


def test_lens_describes_and_answers(clip_parts, captioner, tok):
    clip, tk = clip_parts
    lm = genzoo.build("llama-tiny", vocab_size=tok.vocab_size, n_layers=1)
    lens = LENS(clip, tk, captioner, lm, tok, digit_qa.all_tags(), digit_qa.all_attributes())
    assert not any(p.requires_grad for m in (clip, captioner, lm) for p in m.parameters())  # frozen
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    answers, desc = lens.answer(x, [["what digit is this?"], ["is the number even or odd?", "what digit is this?"]])
    assert [len(a) for a in answers] == [1, 2] and all(isinstance(a, str) for r in answers for a in r)
    assert 1 <= len(desc[0].tags) <= 3 and set(desc[0].tags) <= set(digit_qa.all_tags())
    assert 1 <= len(desc[0].captions) <= 3
    assert LENS.prompt(Description(["7"], [], ["a 7"]), "what?").startswith("Tags: 7. Attributes: . Captions: a 7.")


def test_top_k_above_threshold():
    probs = torch.tensor([[0.6, 0.3, 0.05, 0.05], [0.02, 0.01, 0.01, 0.96]])
    assert LENS._top(probs, list("abcd"), 3, 0.1) == [["a", "b"], ["d"]]
    assert LENS._top(torch.tensor([[0.3, 0.3, 0.4]]), list("abc"), 2, 0.9) == [["c"]]  # the best one always


def test_lens_bad_input(clip_parts, captioner, tok):
    clip, tk = clip_parts
    lm = genzoo.build("llama-tiny", vocab_size=tok.vocab_size, n_layers=1)
    with pytest.raises(InputError, match="tag vocabulary is empty"):
        LENS(clip, tk, captioner, lm, tok, [], digit_qa.all_attributes())
    with pytest.raises(InputError, match="attribute vocabulary is empty"):
        LENS(clip, tk, captioner, lm, tok, ["seven"], [])
    lens = LENS(clip, tk, captioner, lm, tok, ["seven"], ["seven which is odd"])
    with pytest.raises(InputError, match="CLIP module expects"):
        lens.describe(torch.zeros(2, 3, 8, 8))
    with pytest.raises(InputError, match="CLIP module expects"):
        lens.describe(torch.zeros(2, 1, 28, 28))
    with pytest.raises(InputError, match="2 images but 1 lists"):
        lens.answer(torch.zeros(2, 1, 8, 8), [["what?"]])
    with pytest.raises(InputError, match=r"expected \(batch, \*\(1, 8, 8\)\)"):
        captioner.generate(torch.zeros(1, 1, 9, 9))
    with pytest.raises(ConfigError, match="tag_top_k"):
        from genzoo.models.vl import LENSConfig

        LENSConfig(tag_top_k=0)


def test_closed_set_answer_is_the_likeliest_candidate(tok):
    torch.manual_seed(0)
    lm = genzoo.build("llama-tiny", vocab_size=tok.vocab_size, n_layers=1).eval()
    prompts, cands = [[0, 5, 6, 7, 8], [0, 9]], [[20, 21, 22], [30, 31]]  # different lengths: left padding
    got = next_token_among(lm, prompts, cands, pad=0)
    for p, c, g in zip(prompts, cands, got.tolist()):  # one prompt at a time, no padding
        with torch.no_grad():
            logits = lm(torch.tensor([p])).logits[0, -1]
        assert g == c[int(logits[c].argmax())]
    with pytest.raises(InputError, match="candidate ids"):
        next_token_among(lm, prompts, [[20], []], pad=0)


def test_image_first_layout_and_its_episodes(tok):
    """Frozen's layout: evidence first, the label after "is"; its training episodes mark every label the prompt so
    far answers (the class shown before), and the query's label last."""
    from genzoo.models.vl.incontext import CLASSIFY_LAYOUTS, copy_episode, image_first_episode

    w = PromptWords.of(tok)
    ids = classification_prompt([(7, [100, 101]), (8, [102, 103])], [100, 103], w, "image-first")
    assert ids == [w.bos, 100, 101, w.is_, 7, w.end, 102, 103, w.is_, 8, w.end, 100, 103, w.is_]
    with pytest.raises(ConfigError, match="unknown in-context classification layout 'nope'"):
        classification_prompt([(7, [100])], [100], w, "nope")
    pool, labels = list(range(40, 90)), list(range(20, 30))
    for seed in range(30):
        ids, targets = image_first_episode(random.Random(seed), w, pool, labels)
        assert targets and targets[-1] == len(ids) - 1 and ids[-2] == w.is_  # ends with the query's label
        shown = set()
        for i, t in enumerate(ids):
            if t in labels:
                assert ids[i - 1] == w.is_ and ((i in targets) == (t in shown))  # a target iff seen before
                shown.add(t)
    ids, targets = copy_episode(random.Random(0), w, pool)
    span = targets[0] - 1
    assert all(ids[t] == ids[t - span] for t in targets) and targets[-1] == len(ids) - 1
    assert CLASSIFY_LAYOUTS.get("label-first").episode(random.Random(1), w, pool, labels)[1] == 2  # label, end
    for seed in range(200):  # several answered queries after label-first support; always within the LM's 256
        ids, targets = CLASSIFY_LAYOUTS.get("label-first-queries").episode(random.Random(seed), w, pool, labels)
        assert len(ids) <= 256 and len(targets) >= 2
        assert all(ids[t - 1] == w.ask and ids[t] in labels and ids[t + 1] == w.end for t in targets)


def test_attribute_reliability_of_the_training_text():
    """attribute_right=None keeps the first recipe's text; a share p makes each attribute name the digit with
    probability p, the others independently drawn wrong digits."""
    old = [digit_qa.qa_example(random.Random(i)) for i in range(50)]
    assert old == [digit_qa.qa_example(random.Random(i), None) for i in range(50)]
    right = wrong_digits = n = 0
    for i in range(3000):
        rng = random.Random(i)
        c = rng.randrange(10)
        _, attributes, _ = digit_qa.text_context(c, rng, 0.25)
        named = [digit_qa.WORDS.index(a.split()[0]) for a in attributes]
        right += sum(d == c for d in named)
        wrong_digits += len({d for d in named if d != c}) > 1
        n += len(named)
    assert 0.22 < right / n < 0.28 and wrong_digits > 300  # several different wrong digits in one context
