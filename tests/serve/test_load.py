"""`genzoo bench serve` shrunk (a tiny random Llama; the real run uses SmolLM2): a bounded load over loopback stops
by itself with every request answered (no 5xx, no dropped connection), latency percentiles and memory reported,
and the batched server really decodes requests together while the one-at-a-time server does not. Then the
server is hammered with bad requests among good ones and stays up."""

import asyncio

import httpx
import pytest

from genzoo.bench import BENCHMARKS
from genzoo.serve.loadtest import percentile

from .conftest import serving


def test_percentile_is_numpys_linear():
    np = pytest.importorskip("numpy")
    values = [0.3, 0.1, 0.9, 0.4, 0.2, 0.25, 1.5]
    for q in (0, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


@pytest.mark.slow
def test_bench_serve_small(llama_dir, capsys):
    out = BENCHMARKS.get("serve")(model=llama_dir, requests=40, concurrency=8, max_tokens=8, max_batch=8,
                                  compare_clients=4, compare_requests=12, max_context=96)
    load = out["load"]
    assert load["ok"] == 40 and load["errors_5xx"] == 0 and load["no_answer"] == 0 and load["status"] == {"200": 40}
    assert load["tokens"] == 40 * 8 and 0 < load["latency_p50"] <= load["latency_p99"]
    assert load["second_round_5xx"] == 0 and load["peak_batch"] > 1
    assert load["rss_after_second_round_mib"] < load["rss_before_mib"] + 200  # no growth per request
    runs = out["batching"]["runs"]
    assert runs["batched"][0]["mean_batch"] > 1 and runs["one_at_a_time"][0]["mean_batch"] == 1
    assert all(r["status"] == {"200": 12} for v in runs.values() for r in v)
    printed = capsys.readouterr().out
    assert "latency p50" in printed and "one at a time" in printed and "x" in printed


@pytest.mark.slow
def test_bad_requests_among_good_ones_leave_it_up(llama_dir):
    bad = [b'{"prompt": ', b'{"prompt": "x", "max_tokens": 1000000}', b'{"messages": []}', b'[]',
           b'{"prompt": "x", "temperature": "hot"}']

    async def mixed():
        async with httpx.AsyncClient(timeout=60) as http:
            good = [http.post(url + "/v1/completions", json={"prompt": "the cab", "max_tokens": 6, "temperature": 0})
                    for _ in range(12)]
            wrong = [http.post(url + ("/v1/chat/completions" if b"messages" in b else "/v1/completions"), content=b,
                               headers={"Content-Type": "application/json"}) for b in bad * 3]
            return await asyncio.gather(*good, *wrong)

    with serving(llama_dir, max_batch=4, max_tokens=64) as (url, app):
        rs = asyncio.run(mixed())
        codes = [r.status_code for r in rs]
        assert codes[:12] == [200] * 12 and all(400 <= c < 500 for c in codes[12:]), codes
        assert len({r.json()["choices"][0]["text"] for r in rs[:12]}) == 1  # greedy: the same answer for all
        assert httpx.get(url + "/health").json()["status"] == "ok"
        assert app.state.serve["scheduler"].stats.as_dict()["finished"] == 12
