"""Every recipe trains (20 steps lower the loss) and its run directory loads with genzoo.load and
with transformers' AutoModelForCausalLM / AutoTokenizer."""

import pytest
import torch

import genzoo
from genzoo.train import load_recipe, recipe_names, train

from .common import SMALL


@pytest.mark.parametrize("name", recipe_names())
def test_recipe_learns_and_loads(name, tmp_path):
    recipe = load_recipe(name, SMALL + ["eval_every=20", "save_every=20"])
    result = train(recipe, tmp_path / "run", steps=20)
    assert result["step"] == 20
    import json

    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    loss = [r["loss"] for r in recs if "loss" in r]
    assert len(loss) == 20
    first, last = sum(loss[:3]) / 3, sum(loss[-3:]) / 3
    assert last < first - 0.5, f"loss did not fall: {first:.3f} -> {last:.3f}"
    for f in ("config.json", "model.safetensors", "tokenizer.json", "loss.png", "data.json", "recipe.yaml"):
        assert (tmp_path / "run" / f).exists(), f

    ours = genzoo.load(tmp_path / "run")
    tf = pytest.importorskip("transformers")
    ref = tf.AutoModelForCausalLM.from_pretrained(tmp_path / "run").eval()
    tok = tf.AutoTokenizer.from_pretrained(tmp_path / "run")
    from genzoo.tokenizers import Tokenizer

    text = "def main(argv):\n    return 0\n"
    assert tok(text).input_ids == Tokenizer.from_dir(tmp_path / "run").encode(text)
    ids = torch.tensor([tok(text).input_ids])
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, ref(ids).logits, atol=1e-5, rtol=0)
    assert tok.decode(ids[0]) == text
