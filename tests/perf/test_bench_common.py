"""Benchmarks say where they ran (machine, load, a warning past the cores), interleave their sides and report
medians with ranges over >= 5 rounds; bf16 support is detected from CPU flags and CUDA, never assumed."""

import inspect

import pytest
import torch

import genzoo.bench.common as common
import genzoo.precision as precision
from genzoo import ConfigError
from genzoo.bench import BENCHMARKS


def test_timing_median_range_and_paired_ratio():
    ours, ref = common.Timing([1.0, 3.0, 2.0, 2.0, 1.5]), common.Timing([2.0, 6.0, 4.0, 4.0, 2.25])
    assert float(ours) == 2.0 and (ours.low, ours.high) == (1.0, 3.0)
    assert common.rate(ours, 10) == "5.0 [3.3-10.0]"  # median [slowest-fastest] units/s
    mid, lo, hi = common.speedup(ours, ref)  # paired by round: 2, 2, 2, 1.5, 2
    assert (mid, lo, hi) == (2.0, 1.5, 2.0) and common.ratio(ours, ref) == "2.00x [1.50-2.00]"


def test_compare_interleaves_at_least_five_rounds(capsys):
    calls = []
    t = common.compare({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, warmup=0)
    assert calls == ["a", "b"] * common.MIN_ROUNDS and len(t["a"].times) == common.MIN_ROUNDS >= 5
    common.compare({"a": lambda: None}, repeats=2, warmup=0)
    assert "fewer than 5" in capsys.readouterr().err


def test_header_names_the_machine_and_warns_past_the_cores(monkeypatch, capsys):
    monkeypatch.setattr(common, "load_average", lambda: 0.5)
    text = common.header("bench x")
    assert common.cpu_model() in text and torch.__version__ in text and "torch threads" in text
    assert "load average 0.50" in text and "WARNING" not in text
    monkeypatch.setattr(common, "load_average", lambda: 99.0)
    assert "WARNING: load average 99.00 exceeds" in common.header("bench x")


@pytest.mark.parametrize("name", sorted(BENCHMARKS.names()))
def test_every_benchmark_prints_the_header(name):
    assert "header(" in inspect.getsource(inspect.getmodule(BENCHMARKS.get(name)))


@pytest.mark.parametrize("flags,supported", [("fpu sse avx512f avx512_bf16", True), ("fpu amx_bf16 amx_tile", True),
                                             ("fpu sse avx2 avx512f", False), ("", False)])
def test_bf16_detected_from_cpu_flags(flags, supported):
    got = precision.cpu_bf16(precision.cpu_flags(f"processor\t: 0\nflags\t\t: {flags}\n"))
    assert got.supported is supported
    assert ("without" not in got.reason) is supported and got.reason.startswith("CPU")


def test_resolve_precision(monkeypatch):
    monkeypatch.delenv("GENZOO_PRECISION", raising=False)
    monkeypatch.setattr(precision, "bf16_support", lambda device: precision.Support(False, "CPU without bf16"))
    assert precision.resolve_precision("auto") is None and precision.resolve_precision("fp32") is None
    with pytest.raises(ConfigError, match="precision='bf16' is not supported on cpu"):
        precision.resolve_precision("bf16")
    with pytest.raises(ConfigError, match="precision='fp16' is invalid"):
        precision.resolve_precision("fp16")
    monkeypatch.setattr(precision, "bf16_support", lambda device: precision.Support(True, "CPU amx_bf16"))
    assert precision.resolve_precision("auto") is torch.bfloat16  # auto = bf16 where the hardware has it
    monkeypatch.setenv("GENZOO_PRECISION", "fp32")
    assert precision.resolve_precision("auto") is None and precision.resolve_precision("bf16") is torch.bfloat16
    monkeypatch.setenv("GENZOO_PRECISION", "fp8")
    with pytest.raises(ConfigError, match="GENZOO_PRECISION='fp8'"):
        precision.resolve_precision("auto")


@pytest.mark.slow
def test_bench_train_step_reports_both_precisions(capsys, monkeypatch):
    monkeypatch.setattr("genzoo.bench.train_step.bf16_support", lambda d: precision.Support(True, "CPU (test)"))
    r = BENCHMARKS.get("train-step")(preset="llama-tiny", batch=2, seq_len=16, repeats=1)
    out = capsys.readouterr().out
    assert "machine:" in out and "fp32 genzoo" in out and "bf16 genzoo" in out and "bf16 / genzoo fp32" in out
    assert r["fp32"]["genzoo"]["tok_s"] > 0 and r["bf16"]["transformers"]["tok_s"] > 0 and r["bf16_over_fp32"] > 0


def test_linear_floor_multiplies_every_linear_weight_once(monkeypatch):
    """The roofline of a decoding step: one F.linear per nn.Linear of the model (its weight, a (batch, in) input),
    timed as a median; a model without linear layers is refused."""
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4, bias=False))
    seen = []
    real = torch.nn.functional.linear

    def spy(x, w, b=None):
        seen.append((tuple(x.shape), w.data_ptr()))
        return real(x, w, b)

    monkeypatch.setattr(torch.nn.functional, "linear", spy)
    floor = common.linear_floor(model, batch=3, repeats=4)
    assert floor > 0
    step = [((3, 8), model[0].weight.data_ptr()), ((3, 16), model[2].weight.data_ptr())]
    assert seen == step * 5  # one untimed pass, then 4 timed ones
    with pytest.raises(ValueError, match="no nn.Linear"):
        common.linear_floor(torch.nn.Sequential(torch.nn.ReLU()), batch=1)


@pytest.mark.slow
def test_bench_decode_reports_the_roofline(capsys):
    r = BENCHMARKS.get("decode")(preset="llama-tiny", prompt=4, new=4, batches=(1,), repeats=1)
    out = capsys.readouterr().out
    b1 = r["batch1"]
    assert b1["identical"] and b1["linear_floor_s"] > 0
    assert b1["ceiling_tok_s"] == pytest.approx(1 / b1["linear_floor_s"])
    assert b1["ceiling_ratio"] == pytest.approx(b1["ceiling_tok_s"] / b1["transformers_tok_s"])
    assert "roofline: the 15 linear layers alone take" in out and "reached: genzoo" in out  # 2 layers x 7 + head


def test_linear_floor_skips_the_layers_a_step_does_not_run(monkeypatch):
    """seq2seq's roofline leaves out the encoder and cross-attention's keys and values (projected once per
    generate): exactly the decoder's per-step layers and the head remain."""
    import genzoo
    from genzoo.bench.seq2seq import once_per_generate

    model = genzoo.build("t5-tiny")
    kept = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and not once_per_generate(n)]
    assert kept and all(n.startswith("decoder.") or n == "lm_head" for n in kept)
    assert not any("cross_attn.k_proj" in n or "cross_attn.v_proj" in n for n in kept)
    assert any("cross_attn.q_proj" in n for n in kept) and "lm_head" in kept
    seen = []
    real = torch.nn.functional.linear
    monkeypatch.setattr(torch.nn.functional, "linear", lambda x, w, b=None: seen.append(w.data_ptr()) or real(x, w, b))
    common.linear_floor(model, batch=2, repeats=1, skip=once_per_generate)
    modules = dict(model.named_modules())
    assert seen == [modules[n].weight.data_ptr() for n in kept] * 2


@pytest.mark.slow
def test_bench_seq2seq_reports_compiled_greedy_and_the_roofline(capsys):
    r = BENCHMARKS.get("seq2seq")(batch=1, src_len=4, new=2, beams=2, repeats=1)
    out = capsys.readouterr().out
    assert set(r) == {"greedy", "beam2"} and r["greedy"]["identical"] and r["beam2"]["identical"]
    assert r["greedy"]["ratio_compiled"] > 0 and "ratio_compiled" not in r["beam2"]  # beam search runs eager
    for mode in r.values():
        assert mode["ceiling_tok_s"] == pytest.approx(1 / mode["linear_floor_s"])  # batch 1: one token a step
    assert out.count("roofline: the decoder's linear layers alone take") == 2 and "genzoo compiled" in out
