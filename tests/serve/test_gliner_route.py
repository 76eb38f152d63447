"""/v1/ner with a real GLiNER model (genzoo's, saved in the gliner package's format and loaded by `genzoo serve`'s
loader): the route returns exactly what the model's own `predict_entities` returns."""

import httpx
import torch

import genzoo
from genzoo.models.gliner import GLiNERTokenizer
from tests.gliner_models import bert_tokenizer

from .conftest import serving

TEXT = "John Smith was born in Paris, and Marie Curie moved to Warsaw in 1867!"
LABELS = ["person", "city", "date"]


def test_ner_route_serves_a_saved_gliner_directory(tmp_path):
    bert_tokenizer(tmp_path / "tok")
    tok = GLiNERTokenizer.from_dir(tmp_path / "tok")
    tok.add_special_tokens(["[FLERT]", "<<ENT>>", "<<SEP>>"])
    torch.manual_seed(0)
    m = genzoo.build("gliner-tiny", encoder={"preset": "bert-tiny", "vocab_size": len(tok)}, max_len=16,
                     max_width=4, max_types=3, class_token_index=tok.token_id("<<ENT>>"))
    with torch.no_grad():  # spread the random scores so that some spans pass the threshold
        m.prompt_rep.down.weight.mul_(8.0)
    m.tokenizer = tok
    genzoo.save(m.eval(), tmp_path / "gliner")
    want = genzoo.load(tmp_path / "gliner").predict_entities(TEXT, LABELS, threshold=0.3)
    assert want, "the random model should find some spans at threshold 0.3"
    with serving(str(tmp_path / "gliner")) as (url, _):
        info = httpx.get(f"{url}/v1/models", timeout=30).json()
        assert info["data"][0]["genzoo"]["capabilities"] == ["ner"]
        r = httpx.post(f"{url}/v1/ner", json={"text": TEXT, "labels": LABELS, "threshold": 0.3}, timeout=60)
        assert r.status_code == 200, r.text
        got = r.json()["entities"]
    assert [(e["start"], e["end"], e["label"]) for e in got] == [(e["start"], e["end"], e["label"]) for e in want]
    assert [e["score"] for e in got] == [float(e["score"]) for e in want]
