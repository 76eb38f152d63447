"""`genzoo bench quant` runs every scheme on a tiny preset and prints bytes and tokens/s against fp32."""

import pytest

from genzoo.bench import BENCHMARKS


@pytest.mark.slow
def test_bench_quant_prints_bytes_and_tokens_per_second(capsys):
    r = BENCHMARKS.get("quant")(preset="llama-tiny", new=2, prefill=(2, 16), repeats=1)
    out = capsys.readouterr().out
    assert "decode tok/s" in out and "prefill tok/s" in out and "machine:" in out
    assert set(r) == {"fp32", "bf16", "int8", "int8-weight", "int4-weight"}
    assert all(v["decode_tok_s"] > 0 and v["prefill_tok_s"] > 0 for v in r.values())
    assert r["int4-weight"]["bytes"] < r["int8-weight"]["bytes"] < r["fp32"]["bytes"]
    assert r["bf16"]["bytes"] < r["fp32"]["bytes"]
