"""The routing-locality metric is calibrated on a uniform random router, text kinds come from Python's
tokenizer, and the experiment writes its report, figures and results."""

import json

import torch

from genzoo.experiments import EXPERIMENTS
from genzoo.experiments.locality import char_kinds, locality, random_baselines


def test_random_baselines_for_8_experts_top2():
    first, shared = random_baselines(8, 2)
    assert first == 0.125
    assert abs(shared - (1 - (6 / 8) * (5 / 7))) < 1e-12  # ~ 46.4%


def test_metric_calibration_on_a_uniform_random_router():
    g = torch.Generator().manual_seed(0)
    chosen = torch.randn(100_000, 8, generator=g).topk(2, dim=-1).indices  # first choice first
    first, shared = locality(chosen)
    assert abs(first - 0.125) <= 0.01
    assert abs(shared - 0.464) <= 0.015


def test_metric_counts_repeats():
    chosen = torch.tensor([[0, 1], [0, 2], [2, 1], [4, 5]])  # same first; shares 2; nothing
    first, shared = locality(chosen)
    assert abs(first - 1 / 3) < 1e-6 and abs(shared - 2 / 3) < 1e-6


def test_text_kinds():
    src = 'def f(x):\n    """Doc."""\n    # note\n    return "s" + x\n'
    kinds = char_kinds(src)
    at = lambda text: kinds[src.index(text)]  # noqa: E731
    assert at("def") == 0 and at('"""Doc') == 1 and at("# note") == 1 and at('"s"') == 2 and at("return") == 0


def test_experiment_writes_report_figures_and_results(tmp_path):
    sets = ("data.max_bytes=300000", "data.vocab_size=384", "data.block_size=32", "batch_size=8",
            "model.d_model=64", "model.n_layers=2", "model.n_heads=4", "model.d_ff=64", "progress=false")
    r = EXPERIMENTS.get("moe-locality")(out=str(tmp_path), steps=6, max_tokens=3000, sets=sets)
    for f in ("report.md", "locality.png", "load.png", "results.json"):
        assert (tmp_path / f).exists(), f
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["with_balance"]["layers"]) == 2 == len(saved["no_balance"]["layers"])
    layer = saved["with_balance"]["layers"][0]
    assert 0 <= layer["all"][0] <= 1 and abs(sum(layer["expert_share"]) - 1) < 1e-6
    assert "Table 5" in (tmp_path / "report.md").read_text() and r["random_baseline"][0] == 0.125
    assert len(saved["targets"]) == 2 and all(set(t) == {"value", "target", "met"} for t in saved["targets"].values())
    assert saved["machine"]["cpu"] and saved["machine"]["cores"] > 0 and saved["seconds"] >= 0
