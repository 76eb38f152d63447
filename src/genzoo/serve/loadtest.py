"""A bounded load test of a running server: `requests` completions sent by `concurrency` asyncio clients over
loopback (each client sends its next request when its last one is answered), then it stops. Reports throughput
(requests/s, new tokens/s), latency percentiles, the status codes and the server's memory.

    from genzoo.serve.loadtest import load_test
    report = load_test("http://127.0.0.1:8000", requests=200, concurrency=16, max_tokens=32)
"""

from __future__ import annotations

import asyncio
import statistics
import time

PROMPTS = [
    "def fibonacci(n):", "The capital of France is", "import os\nimport sys\n", "Once upon a time",
    "class Stack:\n    def push(self, item):", "The three laws of motion are", "for i in range(10):",
    "Water boils at", "SELECT name FROM users WHERE", "A haiku about the sea:", "def parse_args(argv):",
    "The largest planet in the solar system", "try:\n    import numpy", "In 1969, the first", "# a binary search",
    "Photosynthesis is the process",
]


def rss_mib() -> float | None:
    """This process's resident memory (MiB), from /proc (None where there is none)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's default)."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


async def _load(url: str, requests: int, concurrency: int, max_tokens: int, prompts: list[str], api_key, timeout):
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    results: list[tuple[int, float, int]] = []  # (status, seconds, completion tokens)
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client(http):
        for i in counter:
            body = {"prompt": prompts[i % len(prompts)], "max_tokens": max_tokens, "temperature": 0,
                    "ignore_eos": True}
            t = time.perf_counter()
            try:
                r = await http.post(url + "/v1/completions", json=body, headers=headers)
                tokens = r.json().get("usage", {}).get("completion_tokens", 0) if r.status_code == 200 else 0
                results.append((r.status_code, time.perf_counter() - t, tokens))
            except httpx.HTTPError:
                results.append((0, time.perf_counter() - t, 0))  # no answer at all (connection refused, reset)

    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        return results, time.perf_counter() - t0


def load_test(url: str, requests: int = 200, concurrency: int = 16, max_tokens: int = 32,
              prompts: list[str] | None = None, api_key: str | None = None, timeout: float = 600.0) -> dict:
    """Run the load and summarise it (latencies in seconds)."""
    results, seconds = asyncio.run(_load(url, requests, concurrency, max_tokens, prompts or PROMPTS, api_key,
                                         timeout))
    ok = [r for r in results if r[0] == 200]
    lat = [r[1] for r in ok]
    codes: dict[str, int] = {}
    for r in results:
        codes[str(r[0])] = codes.get(str(r[0]), 0) + 1
    tokens = sum(r[2] for r in ok)
    return {"requests": requests, "concurrency": concurrency, "max_tokens": max_tokens, "seconds": round(seconds, 3),
            "ok": len(ok), "status": codes, "errors_5xx": sum(1 for r in results if r[0] >= 500),
            "no_answer": sum(1 for r in results if r[0] == 0),
            "requests_per_s": round(len(ok) / seconds, 3), "tokens_per_s": round(tokens / seconds, 2),
            "tokens": tokens,
            "latency_p50": round(percentile(lat, 50), 4), "latency_p99": round(percentile(lat, 99), 4),
            "latency_mean": round(statistics.fmean(lat), 4) if lat else float("nan")}
