"""GLiNER beyond the package: bad input raises InputError before any compute, long texts run in windows that cover
every word once, more labels than max_types run in groups, label_order="average" removes the dependence on the
order of the labels, and checkpoints the format cannot honour are refused naming the field."""

import json
import random

import pytest
import torch

import genzoo
from genzoo import CheckpointError, ConfigError, InputError
from genzoo.models.gliner import GLiNERTokenizer, split_words
from genzoo.models.gliner.decoding import Candidate, greedy
from genzoo.models.gliner.inference import run_rows
from genzoo.models.gliner.processing import Row, encode_row, owned, prompt_words, windows
from tests.gliner_models import bert_tokenizer

TEXT = "John Smith was born in Paris, and Marie Curie moved to Warsaw in 1867!"
LABELS = ["person", "city", "date"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    bert_tokenizer(d)
    tok = GLiNERTokenizer.from_dir(d)
    tok.add_special_tokens(["[FLERT]", "<<ENT>>", "<<SEP>>"])
    torch.manual_seed(0)
    m = genzoo.build("gliner-tiny", encoder={"preset": "bert-tiny", "vocab_size": len(tok)}, max_len=16,
                     max_width=4, max_types=3, class_token_index=tok.token_id("<<ENT>>"))
    with torch.no_grad():  # spread the random scores
        m.prompt_rep.down.weight.mul_(8.0)
    m.tokenizer = tok
    return m.eval()


@pytest.mark.parametrize("labels", [[], None, [""], ["person", "  "], [3], "", {"person": 1}])
def test_bad_labels(model, labels):
    with pytest.raises(InputError, match="label"):
        model.predict_entities(TEXT, labels)


@pytest.mark.parametrize("texts", [[""], ["   \n"], [TEXT, ""], [None], []])
def test_bad_texts(model, texts):
    with pytest.raises(InputError, match="text"):
        model.batch_predict_entities(texts, LABELS)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, "0.5", True, float("nan")])
def test_bad_threshold(model, threshold):
    with pytest.raises(InputError, match="threshold"):
        model.predict_entities(TEXT, LABELS, threshold=threshold)


def test_bad_options(model):
    with pytest.raises(InputError, match="label_order"):
        model.predict_entities(TEXT, LABELS, label_order="random")
    with pytest.raises(InputError, match="prompt"):  # a prompt longer than the encoder's 128 positions
        model.predict_entities(TEXT, [" ".join(["x"] * 200)])
    with pytest.raises(InputError, match="sub-tokens"):  # one word longer than what fits beside the prompt
        model.predict_entities("a " + "-".join(["ab"] * 80), LABELS)  # one regex word, 159 word pieces


def test_no_tokenizer():
    m = genzoo.build("gliner-tiny")
    with pytest.raises(ConfigError, match="tokenizer"):
        m.predict_entities(TEXT, LABELS)


def test_forward_checks_its_inputs(model):
    ids, mask = encode_row(model.tokenizer, prompt_words(LABELS, "<<ENT>>", "<<SEP>>"), ["a", "b"])
    ids, mask = torch.tensor([ids]), torch.tensor([mask])
    ones = torch.ones_like(ids)
    with pytest.raises(InputError, match="words_mask"):
        model(ids, ones, mask[:, :-1], torch.tensor([2]))
    with pytest.raises(InputError, match="text_lengths"):
        model(ids, ones, mask, torch.tensor([0]))
    with pytest.raises(InputError, match="past"):
        model(ids, ones, mask, torch.tensor([1]))
    with pytest.raises(InputError, match="<<ENT>>"):
        model(ids.masked_fill(ids == model.config.class_token_index, 5), ones, mask, torch.tensor([2]))


def test_windows_cover_every_word_once():
    rng = random.Random(0)
    for _ in range(200):
        counts = [rng.randint(1, 4) for _ in range(rng.randint(1, 200))]
        max_words, budget, k = rng.randint(16, 40), rng.randint(40, 120), 4
        spans = windows(counts, max_words, budget, 2 * k)
        assert spans[0][0] == 0 and spans[-1][1] == len(counts)
        for a, b in spans:
            assert b - a <= max_words and sum(counts[a:b]) <= budget
        regions = owned(spans)
        assert [w for lo, hi in regions for w in range(lo, hi)] == list(range(len(counts)))  # each word owned once
        for (a, b), (lo, hi) in zip(spans, regions):  # a span owned by a window lies in it
            assert a <= lo and all(min(s + k, len(counts)) <= b for s in range(lo, hi))


def test_long_text_runs_in_windows(model):
    text = " ".join([TEXT] * 6)  # 108 words, max_len 16
    ents = model.predict_entities(text, LABELS, threshold=0.3)
    assert ents.words == len(split_words(text)) and ents.windows >= 108 // 16
    assert all(text[e["start"]:e["end"]] == e["text"] for e in ents)
    assert max(e["end"] for e in ents) > len(text) - len(TEXT)  # the last sentence is read too
    spans = [(e["start"], e["end"]) for e in ents]
    assert spans == sorted(spans) and all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # flat: no overlaps


def test_more_labels_than_max_types_run_in_groups(model):
    labels = ["person", "city", "date", "organization", "year", "country", "thing"]  # max_types = 3
    ents = model.predict_entities(TEXT, labels, threshold=0.3, flat_ner=False, multi_label=True)
    assert ents.label_groups == 3 and ents
    words = [w for w, _, _ in split_words(TEXT)]
    starts = {s: i for i, (_, s, _) in enumerate(split_words(TEXT))}
    for g in range(3):
        group = labels[3 * g: 3 * g + 3]
        row = Row(0, list(range(len(group))), 0, len(words),
                  *encode_row(model.tokenizer, prompt_words(group, "<<ENT>>", "<<SEP>>"), words))
        probs = run_rows(model, [row], 1)[0]  # (W, K, C): the group alone
        for e in ents:
            if e["label"] in group:
                a = starts[e["start"]]
                b = len(split_words(TEXT[: e["end"]])) - 1
                assert abs(probs[a, b - a, group.index(e["label"])].item() - e["score"]) < 1e-5


def test_label_order_average_does_not_depend_on_the_order(model):
    labels = ["person", "city", "date", "organization"]
    given = [model.predict_entities(TEXT, p, threshold=0.0, flat_ner=False, multi_label=True)
             for p in (labels, labels[::-1], labels[1:] + labels[:1])]
    score = [{(e["start"], e["end"], e["label"]): e["score"] for e in g} for g in given]
    assert max(abs(score[0][k] - score[1].get(k, 0)) for k in score[0]) > 1e-3  # the package's behaviour: it moves
    avg = [model.predict_entities(TEXT, p, threshold=0.3, label_order="average") for p in
           (labels, labels[::-1], labels[2:] + labels[:2])]
    for other in avg[1:]:
        assert [(e["start"], e["end"], e["label"]) for e in other] == [(e["start"], e["end"], e["label"])
                                                                      for e in avg[0]]
        assert all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(other, avg[0]))


def test_greedy_decoding_equals_the_packages():
    from gliner.decoding.decoder import SpanDecoder, Span

    rng = random.Random(0)
    dec = SpanDecoder(None)
    for _ in range(100):
        cands = sorted({(s, s + rng.randint(0, 3), rng.randint(0, 2)) for s in range(rng.randint(1, 12))
                        for _ in range(3)})
        cands = [Candidate(s, e, c, round(rng.random(), 2)) for s, e, c in cands]  # rounded: ties happen
        for flat in (True, False):
            for multi in (True, False):
                ours = greedy(cands, flat, multi)
                ref = dec.greedy_search([Span(c.start, c.end, str(c.label), c.score) for c in cands], flat, multi)
                assert [(c.start, c.end, str(c.label)) for c in ours] == [(s.start, s.end, s.entity_type) for s in ref]


def test_loss_ignores_padding_types_and_spans(model):
    rows = [Row(0, [0, 1], 0, 3, *encode_row(model.tokenizer, prompt_words(["a", "b"], "<<ENT>>", "<<SEP>>"),
                                               ["x", "y", "z"])),
            Row(1, [0, 1, 2], 0, 5, *encode_row(model.tokenizer, prompt_words(["a", "b", "c"], "<<ENT>>",
                                                                              "<<SEP>>"), list("vwxyz")))]
    from genzoo.models.gliner.processing import collate

    inputs = collate(rows, model.tokenizer.pad_id)
    labels = torch.zeros(2, 5, 4, 3)
    labels[0, 0, 1, 0] = labels[1, 2, 0, 2] = 1.0
    base = model(**inputs, labels=labels).loss
    noisy = labels.clone()
    noisy[0, :, :, 2] = 1.0  # row 0 has two types: its third column is padding
    noisy[0, 3:] = 1.0  # row 0 has three words: spans from word 3 on are padding
    noisy[0, 2, 1:] = 1.0  # and spans running past its last word
    assert torch.equal(model(**inputs, labels=noisy).loss, base)


def edit_config(directory, **changes):
    file = directory / "gliner_config.json"
    cfg = json.loads(file.read_text())
    cfg.update(changes)
    file.write_text(json.dumps(cfg))


@pytest.mark.parametrize("change, match", [
    ({"span_mode": "markerV1"}, "span_mode"),
    ({"model_type": "gliner_uni_encoder_token"}, "model_type"),
    ({"labels_encoder": "bert-base"}, "labels_encoder"),
    ({"post_fusion_schema": "l2l-l2t"}, "post_fusion_schema"),
    ({"subtoken_pooling": "mean"}, "subtoken_pooling"),
    ({"encoder_config": None, "model_name": "microsoft/deberta-v3-small"}, "never fetches"),
    ({"class_token_index": 5}, "class_token_index"),
    ({"auto_map": {"AutoModel": "x.Y"}}, "remote code|auto_map"),
])
def test_unsupported_checkpoints_are_refused(model, tmp_path, change, match):
    genzoo.save(model, tmp_path / "m")
    again = genzoo.load(tmp_path / "m")  # the untouched directory round-trips
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))
    edit_config(tmp_path / "m", **change)
    with pytest.raises(CheckpointError, match=match):
        genzoo.load(tmp_path / "m")


def test_backbone_config_beside_the_checkpoint(model, tmp_path):
    """An older gliner_config.json without encoder_config reads the backbone's config.json from the directory."""
    genzoo.save(model, tmp_path / "m")
    enc = json.loads((tmp_path / "m" / "gliner_config.json").read_text())["encoder_config"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(enc))
    edit_config(tmp_path / "m", encoder_config=None)
    again = genzoo.load(tmp_path / "m")
    assert again.predict_entities(TEXT, LABELS, threshold=0.3) == model.predict_entities(TEXT, LABELS, threshold=0.3)


def test_cli_ner(model, tmp_path, capsys):
    """`genzoo ner` prints one JSON line per entity (a note on stderr for a text read in windows); bad input is one
    line on stderr and exit status 1."""
    from genzoo.cli import main

    genzoo.save(model, tmp_path / "m")
    long = " ".join([TEXT] * 3)
    assert main(["ner", str(tmp_path / "m"), "--text", TEXT, "--text", long, "--label", "person", "--label", "city",
                 "--threshold", "0.3", "--nested"]) == 0
    out = capsys.readouterr()
    lines = [json.loads(x) for x in out.out.splitlines()]
    expected = model.batch_predict_entities([TEXT, long], ["person", "city"], threshold=0.3, flat_ner=False)
    assert lines == [{"text_index": i, **e} for i, ents in enumerate(expected) for e in ents] and lines
    assert "read in" in out.err and "windows" in out.err
    assert main(["ner", str(tmp_path / "m"), "--text", TEXT, "--label", "person", "--threshold", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "threshold=2.0 is invalid" in err[0]


def test_token_classification_pipeline(model, tmp_path):
    """genzoo.pipeline("token-classification", DIR): the entities of predict_entities, with transformers' grouped
    names beside the package's; labels are required."""
    genzoo.save(model, tmp_path / "m")
    ner = genzoo.pipeline("token-classification", tmp_path / "m")
    got = ner([TEXT, TEXT + " Bob"], labels=["person", "city"], threshold=0.3)
    expected = model.batch_predict_entities([TEXT, TEXT + " Bob"], ["person", "city"], threshold=0.3)
    assert got == [[{**e, "entity_group": e["label"], "word": e["text"]} for e in ents] for ents in expected]
    single = ner(TEXT, labels=["person", "city"], threshold=0.3)  # alone: no padding, scores equal to 1e-6
    assert got[0] and [(e["start"], e["end"], e["label"]) for e in single] == [(e["start"], e["end"], e["label"])
                                                                              for e in got[0]]
    assert [e["score"] for e in single] == pytest.approx([e["score"] for e in got[0]], abs=1e-6)
    with pytest.raises(InputError, match="label"):
        ner(TEXT, labels=[])
