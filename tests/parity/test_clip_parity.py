"""CLIP against transformers' CLIPModel (tiny random config, save_pretrained -> genzoo.load):
image_embeds, text_embeds and logits_per_image within atol 1e-5; round trips both ways; loss
invariant under permutation of the batch; the loss equals transformers' when there is one rank."""

import pytest
import torch

import genzoo
from genzoo.models.clip import recall_at_k
from tests.hf_models import VOCAB, save_for_transformers, tiny_clip

import transformers


def batch(n=5, t=12, eos=VOCAB - 1):
    ids = torch.randint(1, VOCAB - 2, (n, t))
    mask = torch.ones_like(ids)
    for i in range(n):  # right-padded captions ending with the end-of-text token, as CLIP's tokenizer writes
        length = t - (i % 4)
        ids[i, length - 1] = eos
        ids[i, length:] = 0
        mask[i, length:] = 0
    return ids, mask, torch.randn(n, 3, 16, 16)


@pytest.fixture(scope="module", params=["eos_id", "legacy_eos2"])
def pair(request, tmp_path_factory):
    torch.manual_seed(0)
    kw = {} if request.param == "eos_id" else {"eos_token_id": 2}
    ref = tiny_clip(**kw)
    d = tmp_path_factory.mktemp("clip")
    ref.save_pretrained(d)
    return ref, genzoo.load(d), request.param


def test_embeddings_and_logits_match(pair):
    ref, ours, kind = pair
    ids, mask, pixels = batch()
    if kind == "legacy_eos2":  # the legacy rule pools at the highest token id
        ids[:, 3] = VOCAB - 1
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask, pixel_values=pixels, return_loss=True)
        got = ours(ids, pixels, attention_mask=mask, return_loss=True)
    for field in ("image_embeds", "text_embeds", "logits_per_image", "logits_per_text"):
        torch.testing.assert_close(getattr(got, field), getattr(want, field), atol=1e-5, rtol=0)
    torch.testing.assert_close(got.loss, want.loss, atol=1e-5, rtol=0)


def test_round_trips(pair, tmp_path):
    ref, ours, _ = pair
    back = save_for_transformers(ours, transformers.CLIPModel, tmp_path / "out")
    ids, mask, pixels = batch()
    with torch.no_grad():
        a = back(input_ids=ids, attention_mask=mask, pixel_values=pixels)
        b = ours(ids, pixels, attention_mask=mask)
        torch.testing.assert_close(a.logits_per_image, b.logits_per_image, atol=1e-5, rtol=0)
        again = genzoo.load(tmp_path / "out")
        assert torch.equal(again(ids, pixels, attention_mask=mask).logits_per_image, b.logits_per_image)


def test_loss_is_invariant_to_permuting_the_batch():
    torch.manual_seed(0)
    model = genzoo.build("clip-tiny").eval()
    ids = torch.randint(0, 512, (6, 10))
    pixels = torch.randn(6, 3, 16, 16)
    perm = torch.randperm(6)
    with torch.no_grad():
        a = model(ids, pixels, return_loss=True).loss
        b = model(ids[perm], pixels[perm], return_loss=True).loss
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_logit_scale_starts_at_1_over_0_07_and_is_clamped():
    model = genzoo.build("clip-tiny")
    assert abs(model.scale().item() - 1 / 0.07) < 1e-4
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert model.scale().item() == 100.0


def test_zero_shot_prompt_ensemble_and_recall():
    torch.manual_seed(0)
    model = genzoo.build("clip-tiny").eval()

    def tokenize(texts):  # characters as tokens, end-of-text 511, right padding
        rows = [[min(ord(c), 510) for c in t[:20]] + [511] for t in texts]
        n = max(map(len, rows))
        ids = torch.tensor([r + [0] * (n - len(r)) for r in rows])
        return ids, torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in rows])

    templates = ["a {}", "the {}!"]
    w = model.class_embeddings(["cat", "dog"], templates, tokenize)
    manual = torch.nn.functional.normalize(model.encode_text(*tokenize(["a cat", "the cat!"])).mean(0), dim=-1)
    torch.testing.assert_close(w[0], manual)
    assert torch.allclose(w.norm(dim=-1), torch.ones(2))
    pred, probs = model.classify(torch.randn(4, 3, 16, 16), ["cat", "dog"], templates, tokenize)
    assert pred.shape == (4,) and torch.allclose(probs.sum(-1), torch.ones(4))
    keys = torch.nn.functional.normalize(torch.randn(8, 4), dim=-1)
    r = recall_at_k(keys, keys, ks=(1, 5))
    assert r[1] == 1.0 and r[5] == 1.0
    shuffled = recall_at_k(keys, keys.roll(1, 0), ks=(1, 8))
    assert shuffled[8] == 1.0 and shuffled[1] < 1.0


def test_bad_image_shape_is_refused():
    with pytest.raises(genzoo.InputError, match=r"pixel_values has shape \(1, 3, 8, 8\); expected"):
        genzoo.build("clip-tiny").encode_image(torch.randn(1, 3, 8, 8))
