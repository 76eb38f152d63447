"""GLiNER against the `gliner` package (0.2.29) on random weights: tiny BERT and DeBERTa-v2 backbones, a directory
the package wrote itself (pytorch_model.bin for BERT, model.safetensors for DeBERTa), read by genzoo.load. Span
scores equal (atol 1e-5), predict_entities returns the same entities and scores, and genzoo.save writes a
directory the package loads with no missing or unexpected keys."""

import warnings

import pytest
import torch

import genzoo
from genzoo.models.gliner.processing import encode_row, prompt_words, split_words
from tests.gliner_models import tiny_gliner

warnings.filterwarnings("ignore", message=".*truncated.*")
ARCHS = ["bert", "deberta"]
LABELS = ["person", "city", "date", "organization"]
TEXTS = [
    "John Smith was born in Paris, and Marie Curie moved to Warsaw in 1867!",  # punctuation, two persons
    "Dr. Müller (née Ørsted) visited Tokyo — 東京 — in March 2021; ça va? Señor Ñandú & Åsa ß.",  # unicode
    "Paris, Paris and Paris again: John met John in London, then John met John in Paris.",  # repeated entities
    "Apple works with Google in New York",
    "x",  # a one-word text
]


@pytest.fixture(scope="module", params=ARCHS)
def pair(request, tmp_path_factory):
    """(package model, genzoo model loaded from the package's own directory, that directory)."""
    arch = request.param
    pkg, directory = tiny_gliner(arch, tmp_path_factory.mktemp(arch), safetensors=arch == "deberta")
    ours = genzoo.load(directory)
    return pkg, ours, directory


def package_batch(pkg, texts, labels):
    prepared = pkg.prepare_batch(texts, labels)
    batch = pkg.collate_batch(prepared["input_x"], prepared["entity_types"], pkg.create_collator())
    return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}


def ours_forward(ours, inputs):
    return ours(inputs["input_ids"], inputs["attention_mask"], inputs["words_mask"], inputs["text_lengths"].flatten())


def test_span_scores_equal(pair):
    pkg, ours, _ = pair
    inputs = package_batch(pkg, TEXTS, LABELS)
    with torch.no_grad():
        ref = pkg.model(**inputs)
        mine = ours_forward(ours, inputs)
    valid = mine.span_mask
    assert torch.equal(valid, inputs["span_mask"].view(valid.shape))  # the same spans lie inside the texts
    assert ref.logits[valid].abs().max() > 1.0  # scores spread enough for the comparisons to mean something
    torch.testing.assert_close(mine.logits[valid], ref.logits[valid], atol=1e-5, rtol=0)
    torch.testing.assert_close(mine.words_embedding[mine.mask], ref.words_embedding[mine.mask], atol=1e-5, rtol=0)
    assert torch.isinf(mine.logits[~valid]).all()


def test_rows_are_the_packages_inputs(pair):
    """genzoo's own text processing gives the package's input_ids and words_mask, row by row."""
    pkg, ours, _ = pair
    inputs = package_batch(pkg, TEXTS, LABELS)
    prompt = prompt_words(LABELS, ours.config.ent_token, ours.config.sep_token)
    for i, text in enumerate(TEXTS):
        ids, mask = encode_row(ours.tokenizer, prompt, [w for w, _, _ in split_words(text)])
        n = int(inputs["attention_mask"][i].sum())
        assert ids == inputs["input_ids"][i, :n].tolist()
        assert mask == inputs["words_mask"][i, :n].tolist()


def assert_same(mine, ref, context=None):
    """The same entities (offsets, text, label) in the same order, scores within 1e-5."""
    assert [(e["start"], e["end"], e["text"], e["label"]) for e in mine] == \
           [(e["start"], e["end"], e["text"], e["label"]) for e in ref], context
    assert all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(mine, ref)), context


@pytest.mark.slow
@pytest.mark.parametrize("flat_ner", [True, False])
@pytest.mark.parametrize("multi_label", [False, True])
def test_predict_entities_equal(pair, flat_ner, multi_label):
    pkg, ours, _ = pair
    found = 0
    for threshold in (0.25, 0.45, 0.65):
        kw = dict(threshold=threshold, flat_ner=flat_ner, multi_label=multi_label)
        refs = pkg.inference(TEXTS, LABELS, **kw)
        mines = ours.batch_predict_entities(TEXTS, LABELS, **kw)
        for text, ref, mine in zip(TEXTS, refs, mines):
            assert_same(mine, ref, (text, kw))
            if threshold == 0.45:
                assert_same(ours.predict_entities(text, LABELS, **kw), ref, (text, kw))
            assert mine.windows == 1 and mine.label_groups == 1
            found += len(ref)
    assert found > 20  # the thresholds leave candidates for the greedy decoding to choose between


def test_longer_than_max_len_equal_within_the_first_window(pair):
    """The package cuts a text at max_len words; genzoo reads it in windows. The first window's scores are the
    package's, and entities well inside it are the same."""
    pkg, ours, _ = pair
    max_len, k = ours.config.max_len, ours.config.max_width
    text = " ".join(["John Smith lives in Paris and works with Marie Curie in London ."] * 6)  # 78 words
    words = split_words(text)
    assert len(words) > 2 * max_len
    inputs = package_batch(pkg, [text], LABELS)
    with torch.no_grad():
        ref = pkg.model(**inputs).logits  # (1, max_len, K, C): the package's cut
    prompt = prompt_words(LABELS, ours.config.ent_token, ours.config.sep_token)
    ids, mask = encode_row(ours.tokenizer, prompt, [w for w, _, _ in words[:max_len]])
    with torch.no_grad():
        mine = ours(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long), torch.tensor([mask]),
                    torch.tensor([max_len]))
    torch.testing.assert_close(mine.logits[mine.span_mask], ref[mine.span_mask], atol=1e-5, rtol=0)

    theirs = pkg.predict_entities(text, LABELS, threshold=0.35)
    ents = ours.predict_entities(text, LABELS, threshold=0.35)
    assert ents.windows > 2 and ents.words == len(words)
    safe = words[max_len - 3 * k][1]  # well inside the first window's own words
    inside = [e for e in theirs if e["end"] <= safe]
    assert inside  # something to compare
    assert_same([e for e in ents if e["end"] <= safe], inside)
    assert any(e["start"] > words[max_len][1] for e in ents)  # words past the package's cut are read too
    assert all(text[e["start"]:e["end"]] == e["text"] for e in ents)


def test_save_loads_in_the_package(pair, tmp_path):
    from gliner import GLiNER
    from safetensors.torch import load_file

    pkg, ours, _ = pair
    genzoo.save(ours, tmp_path / "saved")
    back = GLiNER.from_pretrained(str(tmp_path / "saved"), local_files_only=True)
    saved = load_file(tmp_path / "saved" / "model.safetensors")
    expected = back.model.state_dict()
    assert set(saved) == set(expected)  # no missing, no unexpected keys
    assert all(torch.equal(saved[k], expected[k]) for k in expected)
    for text in TEXTS[:3]:
        assert back.predict_entities(text, LABELS, threshold=0.35) == pkg.predict_entities(text, LABELS,
                                                                                          threshold=0.35)
    again = genzoo.load(tmp_path / "saved")
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), ours.state_dict().values()))
