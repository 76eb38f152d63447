"""genzoo.pipeline(task, path) against transformers' pipelines (or, for text2text-generation, which transformers 5
removed, its generate + decode) on tiny random checkpoints with a real tokenizer: the same texts, scores and
features; streaming; a model that cannot do the task is refused."""

import pytest
import torch

import genzoo
from genzoo.errors import ConfigError, InputError

from ..hf_models import tiny_bert, tiny_clip, tiny_hf, tiny_t5
from ..tiny_tokenizer import char_tokenizer

CHAT_TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
                 "{% if add_generation_prompt %}<s>assistant:{% endif %}")


def saved(tmp_path, model, **tok):
    model.save_pretrained(tmp_path)
    char_tokenizer(tmp_path, **tok)
    return tmp_path


def test_text_generation(tmp_path):
    import transformers as tf

    d = saved(tmp_path, tiny_hf("llama"), chat_template=CHAT_TEMPLATE)
    ours, ref = genzoo.pipeline("text-generation", d), tf.pipeline("text-generation", model=str(d))
    texts = ["the cab", "Hello there, ab cd"]
    got = ours(texts, max_new_tokens=8)
    assert got == [ref(t, max_new_tokens=8, do_sample=False) for t in texts]
    assert got[0][0]["generated_text"].startswith("the cab") and len(got[0][0]["generated_text"]) > 7
    chat = [{"role": "user", "content": "hi"}]
    assert ours(chat, max_new_tokens=6) == ref(chat, max_new_tokens=6, do_sample=False)
    assert ours("the cab", max_new_tokens=8, return_full_text=False)[0]["generated_text"] == \
        got[0][0]["generated_text"][len("the cab"):]
    pieces = list(ours("the cab", max_new_tokens=8, stream=True))
    assert len(pieces) > 1 and "the cab" + "".join(pieces) == got[0][0]["generated_text"]
    three = ours("the cab", max_new_tokens=4, do_sample=True, num_return_sequences=3, seed=0)
    assert len(three) == 3 and all(x["generated_text"].startswith("the cab") for x in three)


def test_text2text_generation(tmp_path):
    from genzoo.tokenizers import Tokenizer

    ref = tiny_t5("gated-gelu")
    d = saved(tmp_path, ref, wrap=True)
    tok = Tokenizer.from_dir(d)
    texts = ["translate: the cab", "ab cd"]
    got = genzoo.pipeline("text2text-generation", d)(texts, max_new_tokens=6)
    ids, mask = tok.batch(texts)
    want = ref.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False)
    assert got == [[{"generated_text": tok.decode(r[1:], skip_special_tokens=True)}] for r in want.tolist()]


def test_fill_mask_and_feature_extraction(tmp_path):
    import transformers as tf

    d = saved(tmp_path, tiny_bert(masked_lm=True), wrap=True)
    fill, ref = genzoo.pipeline("fill-mask", d), tf.pipeline("fill-mask", model=str(d))
    got, want = fill("the <mask>ab", top_k=3), ref("the <mask>ab", top_k=3)
    assert [x["token"] for x in got] == [x["token"] for x in want]
    assert [x["sequence"] for x in got] == [x["sequence"] for x in want]
    assert [x["token_str"] for x in got] == [x["token_str"] for x in want]
    assert [x["score"] for x in got] == pytest.approx([x["score"] for x in want], abs=1e-5)
    feats, ref_feats = genzoo.pipeline("feature-extraction", d), tf.pipeline("feature-extraction", model=str(d))
    torch.testing.assert_close(torch.tensor(feats("the cab")), torch.tensor(ref_feats("the cab")), rtol=0, atol=1e-5)
    with pytest.raises(InputError, match="no <mask> in"):
        fill("no mask here")


def test_zero_shot_image_classification(tmp_path):
    import numpy as np
    import transformers as tf
    from PIL import Image

    d = saved(tmp_path, tiny_clip(eos_token_id=1, bos_token_id=3), wrap=True)
    tf.CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}).save_pretrained(d)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)) for _ in range(2)]
    labels = ["cat", "dog", "the cab"]
    ours = genzoo.pipeline("zero-shot-image-classification", d)
    ref = tf.pipeline("zero-shot-image-classification", model=str(d))
    got, want = ours(images, candidate_labels=labels, hypothesis_template="a {}"), \
        ref(images, candidate_labels=labels, hypothesis_template="a {}")
    for g, w in zip(got, want):
        assert [x["label"] for x in g] == [x["label"] for x in w]
        assert [x["score"] for x in g] == pytest.approx([x["score"] for x in w], abs=1e-5)


def test_wrong_model_or_task_is_refused(tmp_path):
    d = saved(tmp_path, tiny_hf("llama"))
    with pytest.raises(InputError, match="pipeline 'fill-mask'.*lacks \\['mlm'\\]"):
        genzoo.pipeline("fill-mask", d)
    with pytest.raises(ConfigError, match="unknown pipeline task 'text-generatoin'"):
        genzoo.pipeline("text-generatoin", d)
