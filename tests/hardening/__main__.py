"""`python -m tests.hardening [--verbose] [FILTER]`: try every case of the catalogue and print the counts
(cases tried / clean errors / tracebacks / silent accepts / data losses / payloads executed)."""

import sys
import tempfile
import time
from pathlib import Path

from .cases import CASES
from .harness import Workspace, attempt, tally


def main(argv: list[str]) -> int:
    verbose = "--verbose" in argv
    words = [a for a in argv if not a.startswith("--")]
    cases = [c for c in CASES if not words or any(w in f"{c.family} {c.name}" for w in words)]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="genzoo-hostile-") as root:
        ws = Workspace(Path(root) / "ws")
        outcomes, by_family = {}, {}
        for i, c in enumerate(cases):
            o = attempt(c, ws, Path(root) / f"case-{i}")
            outcomes[f"{c.family}: {c.name}"] = o
            by_family.setdefault(c.family, {})[c.name] = o
            if verbose or o.kind != "clean":
                print(f"[{o.kind:9s}] {c.family}: {c.name}: {o.detail[:220]}")
    print()
    print(f"{'family':14s} {'tried':>5s} {'clean':>5s} {'traceback':>9s} {'silent':>6s} {'data-loss':>9s} "
          f"{'executed':>8s}")
    for family, outs in by_family.items():
        t = tally(outs)
        print(f"{family:14s} {t['tried']:5d} {t['clean']:5d} {t['traceback']:9d} {t['silent']:6d} "
              f"{t['data-loss']:9d} {t['executed']:8d}")
    t = tally(outcomes)
    print(f"{'all':14s} {t['tried']:5d} {t['clean']:5d} {t['traceback']:9d} {t['silent']:6d} {t['data-loss']:9d} "
          f"{t['executed']:8d}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0 if t["clean"] == t["tried"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
