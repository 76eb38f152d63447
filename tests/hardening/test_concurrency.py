"""Two `genzoo train` processes into one --out: exactly one proceeds, the other exits non-zero within 5 s naming
the holder's pid, and the finished run's recipe.yaml, metrics and weights are the winner's (one set, in order:
its weights equal its last checkpoint's and a run of the same recipe elsewhere).

The 5 s are counted from when the command starts (`cli.main`), after Python has imported genzoo (torch): that
import alone takes 1-2 s on an idle 2-core machine (torch itself; `import genzoo` no longer imports torch._dynamo,
tests/test_import.py) and far more on a loaded one, which no lock can shorten; the wall time is printed (-s).
Each process writes the seconds its `main` ran to a file."""

import json
import subprocess
import sys
import time

import pytest
import yaml
from safetensors.torch import load_file

from tests.train.common import env

from .harness import sets

STEPS = 4


TIMED = """
import sys, time
from genzoo.cli import main
t0 = time.monotonic()
try:
    rc = main(sys.argv[2:])
finally:
    open(sys.argv[1], "w").write(str(time.monotonic() - t0))
sys.exit(rc)
"""


def args(out, seed):
    return ["train", "gpt-nano", "--out", str(out), "--steps", str(STEPS), *sets([f"seed={seed}", "save_every=2"])]


def start(out, seed, timing):
    return subprocess.Popen([sys.executable, "-c", TIMED, str(timing), *args(out, seed)], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_writers_one_run(tmp_path):
    run = tmp_path / "run"
    a = start(run, seed=1, timing=tmp_path / "a.s")
    t0 = time.monotonic()
    b = start(run, seed=2, timing=tmp_path / "b.s")
    ended = {}
    while len(ended) < 2:  # note when each exits
        for name, p in (("a", a), ("b", b)):
            if name not in ended and p.poll() is not None:
                ended[name] = time.monotonic() - t0
        time.sleep(0.02)
    out = {name: (p.returncode, *p.communicate()) for name, p in (("a", a), ("b", b))}
    winners = [n for n in out if out[n][0] == 0]
    assert len(winners) == 1, out
    win, lose = winners[0], "b" if winners[0] == "a" else "a"
    rc, _, err = out[lose]
    pid = (a if win == "a" else b).pid
    assert rc == 1 and f"in use by another genzoo run (pid {pid}" in err, out[lose]
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    in_main = float((tmp_path / f"{lose}.s").read_text())
    print(f"refused writer: {in_main:.2f} s in main, {ended[lose]:.2f} s from its start (Python + import genzoo)")
    assert in_main < 5.0, f"the refused writer took {in_main:.1f} s in main ({ended[lose]:.1f} s with Python's start)"
    assert ended[lose] < ended[win]

    seed = 1 if win == "a" else 2
    assert yaml.safe_load((run / "recipe.yaml").read_text())["seed"] == seed
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, STEPS + 1))  # one writer, in order
    final = load_file(run / "model.safetensors")
    last = load_file(run / "checkpoints" / f"step-{STEPS:08d}" / "model.safetensors")
    alone = tmp_path / "alone"
    subprocess.run([sys.executable, "-m", "genzoo", *args(alone, seed)], env=env(), check=True, capture_output=True)
    again = load_file(alone / "model.safetensors")
    for k in final:
        assert final[k].equal(last[k]) and final[k].equal(again[k]), k
    assert [json.loads(line).get("loss") for line in (alone / "metrics.jsonl").read_text().splitlines()] == \
        [r.get("loss") for r in records]
