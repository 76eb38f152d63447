"""The pointe-rl experiment, shrunken (pointe-tiny, a few steps): trains the base and the prompt LM through the
shared loop, runs the five arms (baseline, +a, +b, +c, all) with the KL term kept, and writes report.md, the
figures and results.json with every target as value/target/met; reward hacking is measured along each curve."""

import json

import pytest
import torch

from genzoo.experiments import EXPERIMENTS
from genzoo.experiments.pointe_rl import ARMS, hacking
from genzoo.models.diffusion.rl.prompts import template_prompts, well_formed


def test_reward_hacking_is_a_judge_drop_while_the_reward_is_up():
    curve = [{"reward": 0.5, "judge_accuracy": 0.6}, {"reward": 0.6, "judge_accuracy": 0.5},  # hacking: 0.1
             {"reward": 0.4, "judge_accuracy": 0.2},  # judge drops, but so does the reward: not hacking
             {"reward": 0.7, "judge_accuracy": 0.7}]
    assert hacking(curve) == pytest.approx(0.1)
    assert hacking(curve[:1] + curve[2:]) == 0.0


def test_unknown_option_is_refused_before_any_training(tmp_path):
    import genzoo

    with pytest.raises(genzoo.ConfigError, match="iteratons"):
        EXPERIMENTS.get("pointe-rl")(out=str(tmp_path), iteratons=3)
    assert not (tmp_path / "base").exists()


@pytest.mark.slow
def test_experiment_writes_outputs(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a second thread costs more than it gives on a busy machine
    try:
        r = EXPERIMENTS.get("pointe-rl")(out=str(tmp_path), small=True)
    finally:
        torch.set_num_threads(threads)
    for f in ("report.md", "results.json", "curves.png", "samples_before.png", "samples.png", "base/model.safetensors",
              "lm/model.safetensors"):
        assert (tmp_path / f).exists(), f
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["arms"]) == set(ARMS)
    ran = {k: a for k, a in saved["arms"].items() if "final" in a}
    assert {"baseline", "a", "c"} <= set(ran)  # template prompts always exist; b and all need the LM's prompts
    for name, arm in saved["arms"].items():
        if name not in ran:
            assert arm["skipped"].endswith("synthesised prompts")
            continue
        assert arm["beta"] > 0  # the KL term is kept in every arm
        assert [p["iteration"] for p in arm["curve"]] == [0, 1, 2]
        assert 0 <= arm["final"]["judge_accuracy"] <= 1 and arm["hacking"] >= 0
    assert saved["arms"]["a"]["fields"]["normalise"] == "contrastive"
    assert saved["arms"]["c"]["fields"]["penalty"] == "inconsistency"
    synth = saved["synthesis"]
    assert synth["all_novel"] and all(well_formed(p) and p not in template_prompts() for p in synth["examples"])
    assert len(saved["targets"]) == 4 and all(set(t) == {"value", "target", "met"} for t in saved["targets"].values())
    assert saved["targets"]["KL term kept: smallest beta over the arms"]["met"]
    assert "Targets" in (tmp_path / "report.md").read_text() and r["seconds"] > 0
