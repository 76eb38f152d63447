"""Training on the user's own data: `--data` (a table, a folder), a recipe given as a YAML path, exact resume on a
user source (bitwise, as test_resume_nodropout), a changed source refused on resume, and `genzoo eval --data`
(bits per byte checked against transformers' own loss on the same windows)."""

import json
import math
import sysconfig
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from genzoo import ConfigError
from genzoo.train import load_recipe, train

from .common import losses

SMALL = ["data.vocab_size=300", "data.block_size=32", "batch_size=4", "model.d_model=32", "model.n_layers=1",
         "model.n_heads=2", "model.d_ff=64", "eval_batches=1", "log_every=1", "progress=false", "model.dropout=0.0",
         "warmup_steps=100", "save_every=3", "eval_every=3"]


def stdlib_rows(n=12):
    root = Path(sysconfig.get_paths()["stdlib"]) / "json"
    return [{"text": f.read_text(), "name": f.name} for f in sorted(root.glob("*.py"))][:n]


@pytest.fixture
def table(tmp_path):
    f = tmp_path / "docs.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in stdlib_rows()))
    return f


def test_stop_and_resume_on_a_user_table_is_bitwise_uninterrupted(tmp_path, table):
    sets = SMALL + [f"data.source={table}"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(load_recipe("gpt-nano", sets), full, steps=6)
    train(load_recipe("gpt-nano", sets), cut, steps=3)
    train(load_recipe("gpt-nano", sets), cut, steps=6, resume=True)
    a, b = losses(full), losses(cut)
    assert sorted(a) == sorted(b) == list(range(1, 7)) and a == b
    wa, wb = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    record = json.loads((cut / "data.json").read_text())
    assert record["source"] == str(table) and record["tokens"]["val"] > 0 and len(record["sha256"]) == 64

    import genzoo  # `genzoo eval RUN` scores the run's own held-out rows, not the standard library's
    from genzoo.data.tokens import read_tokens
    from genzoo.train import evaluate_run
    from genzoo.train.distributed import Dist
    from genzoo.train.tasks import lm_validation, validation_blocks

    got = evaluate_run(cut)
    rec = load_recipe("gpt-nano", sets + ["batch_size=16", "eval_batches=1000000"])
    val = read_tokens(cut / "data", "val")
    rec.eval_batches = validation_blocks(val, 32, rec)[1]  # every block of the run's val.bin
    assert got["batches"] == rec.eval_batches
    want = lm_validation(genzoo.load(cut), val, rec, Dist(), None)["val_loss"]
    assert got["val_loss"] == pytest.approx(want, rel=1e-6)
    table.write_text(table.read_text() + json.dumps({"text": "one more row"}) + "\n")
    with pytest.raises(ConfigError, match="changed since this run's checkpoints"):
        train(load_recipe("gpt-nano", sets), cut, steps=9, resume=True)


def cli(*args):
    """`genzoo ARGS` in this process: (exit status, stdout, stderr)."""
    import contextlib
    import io

    from genzoo.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow
def test_cli_data_folder_with_a_yaml_recipe_then_eval(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    for r in stdlib_rows(6):
        (folder / (r["name"] + ".txt")).write_text(r["text"])
    (folder / "ignored.md").write_text("# not a .txt\n")
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("model: {preset: gpt2, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64}\n"
                      "data: {vocab_size: 300, block_size: 32}\nbatch_size: 4\nsteps: 2\neval_batches: 1\n")
    run = tmp_path / "run"
    code, out, _ = cli("train", str(recipe), "--data", str(folder), "--out", str(run), "--no-progress")
    assert code == 0 and "trained 2 steps" in out
    assert json.loads((run / "data.json").read_text())["files"] == sorted(f.name for f in folder.glob("*.txt"))
    code, _, err = cli("train", str(tmp_path / "nope.yaml"))
    assert code == 1 and "no such file" in err
    code, _, err = cli("train", "gpt-nano", "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "x"))
    assert code == 1 and "data.source=" in err and "no such file or folder" in err

    text = tmp_path / "eval.txt"
    text.write_text(stdlib_rows(8)[-1]["text"])
    code, out, _ = cli("eval", str(run), "--data", str(text), "--block-size", "16")
    assert code == 0 and "bits_per_byte" in out
    from genzoo.train.evaluate import evaluate_file
    got = evaluate_file(run, str(text), block_size=16)

    import transformers as tf  # the same windows scored by transformers' own model and loss
    from genzoo.tokenizers import Tokenizer

    ref = tf.AutoModelForCausalLM.from_pretrained(run).eval()
    ids = Tokenizer.from_dir(run).encode(text.read_text())
    total = 0.0
    with torch.no_grad():
        for s in range(0, len(ids) - 1, 16):
            w = torch.tensor([ids[s: s + 17]])
            total += ref(w, labels=w).loss.item() * (w.shape[1] - 1)
    assert got["tokens"] == len(ids) - 1
    assert got["bits_per_byte"] == pytest.approx(total / math.log(2) / len(text.read_text().encode()), rel=1e-5)
    assert got["ppl"] == pytest.approx(math.exp(total / (len(ids) - 1)), rel=1e-5)
