"""The mixtral-nano recipe's load-balancing loss keeps every layer's expert load within a factor of 2 (largest
over smallest share of top-k assignments on held-out text); without it the loads drift far apart."""

import genzoo
from genzoo.data import stdlib_corpus
from genzoo.experiments.moe_locality import measure
from genzoo.tokenizers import Tokenizer
from genzoo.train import load_recipe, train

SMALL = ("progress=false", "data.max_bytes=400000", "data.vocab_size=512", "data.block_size=64", "batch_size=16",
         "model.d_model=64", "model.n_layers=2", "model.n_heads=4", "model.n_kv_heads=2", "model.d_ff=64",
         "eval_every=300", "save_every=300")


def _load_ratios(tmp_path, name, *sets):
    recipe = load_recipe("mixtral-nano", [*SMALL, *sets])
    train(recipe, tmp_path / name, steps=300)
    model, tok = genzoo.load(tmp_path / name), Tokenizer.from_dir(tmp_path / name)
    corpus = stdlib_corpus(max_bytes=recipe.data.max_bytes, val_percent=recipe.data.val_percent)
    return recipe, [layer["max_min_ratio"] for layer in measure(model, tok, corpus.read("val"), 64, 20000)["layers"]]


def test_balancing_loss_keeps_expert_shares_within_2x(tmp_path):
    recipe, balanced = _load_ratios(tmp_path, "balanced")
    assert recipe.model["router_aux_loss_scope"] == "per-layer" and recipe.model["router_aux_loss_coef"] > 0
    assert max(balanced) <= 2.0, balanced
    _, free = _load_ratios(tmp_path, "free", "model.router_aux_loss_coef=0.0")
    assert max(free) > 4.0, free  # the loss, not the data, is what balances
