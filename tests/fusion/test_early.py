"""Early fusion: interleaved sequences (ids, labels: the loss on the right tokens), the image grammar at
generation, images out of generated ids, save/load, and the bad inputs (unterminated images, codes outside an
image, a wrong image size)."""

import pytest
import torch
import torch.nn.functional as F

import genzoo
from genzoo.errors import InputError
from genzoo.models.fusion import EarlyFusionLM, ImageGrammar, JointVocab, Segment, build, check_interleaved
from genzoo.models.fusion.sequence import images_in

TEXT = 40  # text ids 0..39; <boi> = 1, <eoi> = 2; 16 codes of 16 per image (vq-tiny: 4x4 grid)


class Chars:
    """A tokenizer stand-in: one id per character (3 + ord % 30)."""

    def encode(self, text):
        return [3 + ord(c) % 30 for c in text]


def model():
    return genzoo.build("early-fusion-tiny", text_vocab_size=TEXT, boi_token_id=1, eoi_token_id=2,
                        bos_token_id=0, eos_token_id=0, pad_token_id=0).eval()


def vocab():
    return JointVocab(TEXT, 16, 1, 2, 16)


def test_joint_vocabulary_and_config():
    m = model()
    assert m.config.vocab_size == TEXT + 16 and m.lm_head.out_features == TEXT + 16
    assert m.vocab == vocab()
    with pytest.raises(genzoo.ConfigError, match="boi_token_id"):
        genzoo.build("early-fusion-tiny", text_vocab_size=TEXT, boi_token_id=TEXT)


def test_build_puts_loss_on_the_right_tokens():
    v, tok = vocab(), Chars()
    codes = torch.arange(16).view(4, 4)
    segs = [Segment(image=codes), Segment(text="ab"), Segment(text="cd", loss=True)]
    ids, labels = build(segs, v, tok, bos=0, eos=0)
    image = [1, *range(TEXT, TEXT + 16), 2]
    assert ids == [0, *image, *tok.encode("ab"), *tok.encode("cd"), 0]
    assert labels == [-100] * (1 + 18 + 2) + tok.encode("cd") + [0]  # only the answer and eos
    ids, labels = build([Segment(text="draw"), Segment(image=codes, loss=True)], v, tok, bos=0)
    assert labels == [-100] * 5 + image  # text -> image: the loss on <boi>, the codes and <eoi>
    with pytest.raises(InputError, match="text or an image"):
        build([Segment()], v, tok, bos=0)
    with pytest.raises(InputError, match="codes"):
        v.image(torch.arange(9))


def test_forward_loss_is_cross_entropy_over_labelled_positions_only():
    m, v, tok = model(), vocab(), Chars()
    codes = torch.randint(16, (2, 4, 4))
    rows = [build([Segment(image=codes[i]), Segment(text="q?"), Segment(text="ans"[: 2 + i], loss=True)], v, tok,
                  bos=0, eos=0) for i in range(2)]
    width = max(len(r[0]) for r in rows)
    ids = torch.tensor([r[0] + [0] * (width - len(r[0])) for r in rows])
    labels = torch.tensor([r[1] + [-100] * (width - len(r[1])) for r in rows])
    mask = torch.tensor([[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows])
    out = m(ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (2, width, TEXT + 16)
    keep = labels[:, 1:] != -100  # logits at t predict labels[t + 1]
    assert int(keep.sum()) == (2 + 1) + (3 + 1)
    want = F.cross_entropy(out.logits[:, :-1][keep], labels[:, 1:][keep])
    torch.testing.assert_close(out.loss, want)
    # the loss does not depend on what the labels say at unlabelled positions: only the answers count
    other = labels.clone()
    other[:, 1:][~keep] = -100
    torch.testing.assert_close(m(ids, attention_mask=mask, labels=other).loss, out.loss)


@pytest.mark.parametrize("row, message", [
    ([0, 1, *range(TEXT, TEXT + 5)], "unterminated"),  # an image without its <eoi>
    ([0, 1, *range(TEXT, TEXT + 15), 2], "has 15 codes"),
    ([0, 5, TEXT + 3, 6], "outside an image"),
    ([0, 2, 5], "without a <boi>"),
    ([0, 1, TEXT, 1], "inside the image"),
    ([0, 1, TEXT, 7], "text token 7"),
])
def test_malformed_sequences_are_input_errors(row, message):
    with pytest.raises(InputError, match=message):
        check_interleaved(torch.tensor([row]), vocab())
    with pytest.raises(InputError):
        model()(torch.tensor([row]), labels=torch.tensor([row]))


def test_an_open_image_is_allowed_only_as_a_prompt():
    open_row = torch.tensor([[0, 5, 1, TEXT, TEXT + 1]])
    check_interleaved(open_row, vocab(), allow_open=True)
    m = model()
    assert m(open_row).logits.shape == (1, 5, TEXT + 16)  # no labels: a generation prompt
    with pytest.raises(InputError, match="unterminated"):
        m(open_row, labels=open_row)
    with pytest.raises(InputError, match="unterminated"):
        images_in(open_row[0], vocab())


def test_grammar_masks_scores():
    g, v = ImageGrammar(vocab()), vocab()
    scores = torch.zeros(3, TEXT + 16)
    ids = torch.tensor([[0, 5, 6, 7, 8, 9] + [5] * 12,  # outside an image
                        [0, 1, *range(TEXT, TEXT + 16)],  # 16 codes: only <eoi>
                        [0, 5, 1, *range(TEXT, TEXT + 15)]])  # 15 codes: only codes
    ok = torch.isfinite(g(ids, scores))
    assert ok[0, :TEXT].sum() == TEXT - 1 and not ok[0, v.eoi] and not ok[0, TEXT:].any()
    assert ok[1].nonzero().squeeze(1).tolist() == [v.eoi]
    assert ok[2, TEXT:].all() and not ok[2, :TEXT].any()


def test_generation_writes_well_formed_images_that_decode_to_pixels():
    m = model()
    prompt = torch.tensor([[0, 5, 6, 1], [0, 7, 8, 1]])  # "...<boi>": the model must write an image
    out = m.generate(prompt, max_new_tokens=20, do_sample=True, seed=0)
    new = out[:, 4:]
    assert (new[:, :16] >= TEXT).all() and (new[:, 16] == 2).all()  # exactly 16 codes, then <eoi>
    assert not (new[:, 17:] >= TEXT).any()  # after the image: no codes outside an image
    check_interleaved(out, m.vocab)
    images = m.images(out[0])
    assert len(images) == 1 and images[0].shape == (1, 8, 8)
    drawn = m.draw(prompt)
    assert drawn.shape == (2, 1, 8, 8)
    g = m.generate(prompt, max_new_tokens=17)
    torch.testing.assert_close(drawn[1], m.images(g[1])[0])  # draw = greedy codes -> VQ decoder
    with pytest.raises(InputError, match="end with <boi>"):
        m.draw(torch.tensor([[0, 5, 6]]))


def test_image_ids_round_trip_through_the_vq_tokenizer():
    m = model()
    pixels = torch.rand(2, 1, 8, 8) * 2 - 1
    ids = m.image_ids(pixels)
    assert ids.shape == (2, 18) and (ids[:, 0] == 1).all() and (ids[:, -1] == 2).all()
    row = torch.cat([torch.tensor([0, 5]), ids[0], torch.tensor([6]), ids[1]])
    got = m.images(row)
    want = m.image_tokenizer.decode(m.image_tokenizer.encode(pixels))
    assert len(got) == 2
    torch.testing.assert_close(torch.stack(got), want)
    with pytest.raises(InputError, match="shape"):
        m.image_ids(torch.zeros(2, 1, 16, 16))  # an image of the wrong size


def test_image_tokenizer_is_frozen_and_saved_with_the_model(tmp_path):
    m = model().train()
    assert not any(p.requires_grad for p in m.image_tokenizer.parameters())
    assert not m.image_tokenizer.training  # no EMA updates while the decoder trains
    ids = torch.tensor([[0, 5, *m.image_ids(torch.rand(1, 1, 8, 8))[0].tolist(), 6]])
    book = m.image_tokenizer.quantizer.embed.clone()
    m(ids, labels=ids).loss.backward()
    assert torch.equal(m.image_tokenizer.quantizer.embed, book)
    genzoo.save(m.eval(), tmp_path / "early")
    again = genzoo.load(tmp_path / "early")
    assert isinstance(again, EarlyFusionLM)
    torch.testing.assert_close(again(ids).logits, m(ids).logits)
    assert torch.equal(again.image_tokenizer.quantizer.embed, book)


def test_generate_logits_processor_is_applied_and_checked():
    """The shared decoding loop's logits_processor (transformers' protocol) sees the ids so far and masks tokens."""
    lm = genzoo.build("llama-tiny").eval()
    ids = torch.randint(1, 100, (2, 5))
    free = lm.generate(ids, max_new_tokens=6)
    banned = int(free[0, 5])
    seen = []

    def ban(input_ids, scores):
        seen.append(input_ids.shape[1])
        return scores.index_fill(1, torch.tensor([banned]), float("-inf"))

    out = lm.generate(ids, max_new_tokens=6, logits_processor=ban)
    assert not (out[:, 5:] == banned).any() and seen == list(range(5, 11))
    with pytest.raises(InputError, match="logits_processor"):
        lm.generate(ids, max_new_tokens=2, logits_processor=5)
