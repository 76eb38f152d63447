"""`python -m tests.hardening [--verbose] [--skip WORDS] [FILTER ...]`: try every case of the catalogue (or those
whose family or name holds a FILTER word, less those whose name holds a --skip word) and print the counts: cases
tried / clean errors / tracebacks / unclear errors / silent accepts / data losses / litter / payloads executed.

To count an older genzoo: PYTHONPATH=OLD/src:. python -m tests.hardening --skip "10**6 layers" (an older genzoo
builds a million layers until the machine runs out of memory)."""

import sys
import tempfile
import time
from pathlib import Path

from .cases import CASES
from .harness import Workspace, attempt, tally


def main(argv: list[str]) -> int:
    verbose = "--verbose" in argv
    skip = [argv[i + 1] for i, a in enumerate(argv) if a == "--skip" and i + 1 < len(argv)]
    words = [a for i, a in enumerate(argv) if not a.startswith("--") and (i == 0 or argv[i - 1] != "--skip")]
    cases = [c for c in CASES if (not words or any(w in f"{c.family} {c.name}" for w in words))
             and not any(w in c.name for w in skip)]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="genzoo-hostile-") as root:
        ws = Workspace(Path(root) / "ws")
        outcomes, by_family = {}, {}
        for i, c in enumerate(cases):
            o = attempt(c, ws, Path(root) / f"case-{i}")
            outcomes[f"{c.family}: {c.name}"] = o
            by_family.setdefault(c.family, {})[c.name] = o
            if verbose or o.kind != "clean":
                print(f"[{o.kind:9s}] {c.family}: {c.name}: {o.detail[:220]}", flush=True)
    print()
    print(f"{'family':14s} {'tried':>5s} {'clean':>5s} {'traceback':>9s} {'unclear':>7s} {'silent':>6s} "
          f"{'data-loss':>9s} {'litter':>6s} {'executed':>8s} {'n/a':>4s}")
    for family, outs in [*by_family.items(), ("all", outcomes)]:
        t = tally(outs)
        print(f"{family:14s} {t['tried']:5d} {t['clean']:5d} {t['traceback']:9d} {t['unclear']:7d} {t['silent']:6d} "
              f"{t['data-loss']:9d} {t['litter']:6d} {t['executed']:8d} {t['n/a']:4d}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0 if t["clean"] == t["tried"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
