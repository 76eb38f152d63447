"""The fusion and meta-transformer experiments, shrunken (tiny parts, a few steps), write their reports, figures
and results with every target the issue names."""

import json

import pytest

from genzoo.experiments import EXPERIMENTS


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_fusion_experiment_writes_outputs(tmp_path, workers):
    r = EXPERIMENTS.get("fusion")(out=str(tmp_path), small=True, workers=workers)
    for f in ("report.md", "results.json", "accuracy.png", "drawings.png", "vq.png"):
        assert (tmp_path / f).exists(), f
    saved = json.loads((tmp_path / "results.json").read_text())
    arms = ("early", "late-prefix")  # the shrunken run leaves out the cross-attention arm
    assert set(saved["accuracy"]) == {f"{a}@{p}%" for a in arms for p in (100, 10)}
    for key, acc in saved["accuracy"].items():
        assert set(acc) >= {"digit", "parity", "plus3", "caption"} and all(0 <= v <= 1 for v in acc.values())
        assert ("text_to_image" in acc) == key.startswith("early")
    # the same training FLOPs for every method: each bridge's steps buy (within one step) what early fusion's do
    fl, per = saved["training_flops"], saved["flops_per_step"]
    for a in arms:
        assert abs(fl[a] - fl["early"]) <= per[a] / 2 + 1
        assert 0 < saved["parameters"][a]["trainable"] <= saved["parameters"][a]["total"]
    assert saved["parameters"]["late-prefix"]["trainable_share"] < saved["parameters"]["early"]["trainable_share"]
    assert saved["low_paired"]["winner"] in arms and saved["vq_psnr_db"] > 0
    assert len(saved["targets"]) == 4 and all(set(t) == {"value", "target", "met"} for t in saved["targets"].values())
    assert "Low paired data" in (tmp_path / "report.md").read_text()
    assert r["setup"]["small"] and saved["seconds"] > 0
    # timing: every job's CPU seconds, the measured wall time as the target, the idle-core estimate beside it
    t = saved["timing"]
    jobs = {"vq-digits", "clip-digits", "digit-lm", *saved["accuracy"]}
    assert set(t["job_cpu_s"]) == set(t["job_wall_span_s"]) == set(t["idle_replay_spans_s"]) == jobs
    assert all(v > 0 for v in t["job_cpu_s"].values()) and t["workers"] == workers
    assert saved["targets"]["minutes"]["value"] == pytest.approx(t["wall_s"] / 60, abs=0.01)
    assert t["wall_s"] >= t["graph_wall_s"] > 0 and t["idle_estimate_s"] >= t["idle_replay_s"] > 0
    assert t["idle_replay_s"] >= max(t["job_cpu_s"].values())
    order = t["launch_order"]
    for arm in arms:  # the parts each method needs are ready before it starts (measured and replayed)
        for p in (100, 10):
            needs = ["vq-digits"] if arm == "early" else ["vq-digits", "clip-digits", "digit-lm"]
            for part in needs:
                assert order.index(part) < order.index(f"{arm}@{p}%")
                assert t["job_wall_span_s"][f"{arm}@{p}%"][0] >= t["job_wall_span_s"][part][1]
                assert t["idle_replay_spans_s"][f"{arm}@{p}%"][0] >= t["idle_replay_spans_s"][part][1]
    report = (tmp_path / "report.md").read_text()
    assert "## Timing" in report and "Idle-core estimate" in report
    if workers:  # one-thread workers, started once each
        assert len(t["worker_startup_cpu_s"]) == workers


def test_answer_budget_fits_every_caption_and_answer(tmp_path):
    """The evaluation's generation budget holds the longest caption (a fixed 8 tokens cut "a picture of a seven"
    after "a picture of", so every caption read as wrong)."""
    from genzoo.data.digit_fusion import CAPTIONS, answer
    from genzoo.data.digits import WORDS
    from genzoo.data.digit_fusion import all_texts
    from genzoo.experiments.fusion import answer_budget
    from genzoo.tokenizers import train_bpe

    tok = train_bpe(all_texts() * 4, 320, min_frequency=1)  # the digit world's tokenizer (recipes' vocab_size)
    budget = answer_budget(tok)
    longest = max(len(tok.encode(" " + c.format(w))) for c in CAPTIONS for w in WORDS)
    assert budget == longest + 1 > 8
    assert all(len(tok.encode(" " + answer("plus3", d))) < budget for d in range(10))


@pytest.mark.slow
def test_meta_transformer_experiment_writes_outputs(tmp_path):
    r = EXPERIMENTS.get("meta-transformer")(out=str(tmp_path), small=True, data_sets=("digits", "wine"))
    for f in ("report.md", "results.json", "accuracy.png"):
        assert (tmp_path / f).exists(), f
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["accuracy"]) == {"digits", "wine"}
    for acc in saved["accuracy"].values():
        assert set(acc) == {"frozen-pretrained", "frozen-random", "fine-tuned"} and all(0 <= v <= 1
                                                                                        for v in acc.values())
    assert saved["parameters"]["digits"]["modality"] == "image" and saved["parameters"]["wine"]["modality"] == "tabular"
    assert all(0 < p["trainable_share"] < 1 for p in saved["parameters"].values())
    assert len(saved["targets"]) == 3 and all(set(t) == {"value", "target", "met"} for t in saved["targets"].values())
    assert r["setup"]["small"] and saved["seconds"] > 0
