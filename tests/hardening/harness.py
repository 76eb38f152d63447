"""The machinery behind the hostile-input catalogue (`cases.py`): a workspace of small real artefacts (HF-format
model directories, a trained run), the two ways a case acts (a Python API call, a `genzoo` command run in this
process through `cli.main`), and the classification of what happened:

    clean      the genzoo error (API) or one line on stderr with the right exit status (CLI), naming the problem
    traceback  any other exception (a Python traceback)
    unclear    a genzoo error, but not the one due: another class, a message that does not name the problem, a
               CLI error of more than one line or with the wrong exit status, or a refused legitimate input
    silent     no error for a bad input (or, for a case that expects success, no warning where one is due)
    data-loss  a file the case protects changed or went (bytes or mode)
    litter     a refused command left new files where the case protects
    executed   a pickle payload ran (its marker file appeared)
    n/a        the case could not be set up (only with an older genzoo, which lacks what it needs)
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import genzoo
from genzoo.errors import GenzooError
try:
    from genzoo.rundir import LOCK
except ImportError:  # the harness also measures genzoo versions from before the lock (python -m tests.hardening)
    LOCK = ".genzoo-run.lock"

KINDS = ("clean", "traceback", "unclear", "silent", "data-loss", "litter", "executed", "n/a")

# tiny training settings: seconds per run on 2 CPU cores
TINY = ["data.max_bytes=60000", "data.vocab_size=300", "data.block_size=16", "batch_size=4", "model.d_model=32",
        "model.n_layers=1", "model.n_heads=2", "model.d_ff=64", "eval_batches=1", "log_every=1", "warmup_steps=1",
        "progress=false"]


def sets(extra=()) -> list[str]:
    out = []
    for s in [*TINY, *extra]:
        out += ["--set", s]
    return out


@dataclass
class Action:
    """What a case does. kind "api": call(); kind "cli": cli.main(argv). protect: paths whose files must not
    change. ok: the input is legitimate and must succeed (then `warns`, a regex, must match a warning)."""

    kind: str
    call: Callable | None = None
    argv: list[str] = field(default_factory=list)
    protect: list[Path] = field(default_factory=list)
    ok: bool = False
    warns: str | None = None
    cleanup: Callable | None = None
    match: str | None = None  # overrides the case's match (for a message known only once the case is set up)


def api(call, protect=(), **kw) -> Action:
    return Action("api", call=call, protect=list(protect), **kw)


def cli(*argv, protect=(), **kw) -> Action:
    return Action("cli", argv=[str(a) for a in argv], protect=list(protect), **kw)


@dataclass
class Case:
    family: str
    name: str
    make: Callable  # (workspace, tmp) -> Action
    error: type = GenzooError  # API: the error class expected
    match: str | None = None  # a regex the error message (or stderr line) must match
    status: int = 1  # CLI: the exit status expected


@dataclass
class Outcome:
    kind: str
    detail: str = ""


def snapshot(paths) -> dict:
    out = {}
    for root in paths:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        for p in files:
            if p.name != LOCK:  # the lock file holds the pid of whoever last took the lock, by design
                out[str(p)] = (p.read_bytes(), p.stat().st_mode)
        if not root.exists():
            out[str(root)] = None
    return out


class Workspace:
    """Shared artefacts, made on first use in `root`: HF-format directories of tiny models and a trained run."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.payload_marker = self.root / "PAYLOAD-RAN"
        self._cache: dict[str, Path] = {}

    def _once(self, name: str, make) -> Path:
        if name not in self._cache:
            path = self.root / name
            if not path.exists():
                make(path)
            self._cache[name] = path
        return self._cache[name]

    def model_dir(self, fmt: str) -> Path:
        """A saved tiny model: fmt one of llama, gpt2, bert, t5, clip, genzoo."""
        presets = {"llama": ("llama-tiny", {}), "gpt2": ("gpt2-tiny", {}), "bert": ("bert-tiny", {}),
                   "t5": ("t5-tiny", {}), "clip": ("clip-tiny", {}), "genzoo": ("llama-tiny", {})}

        def make(path):
            import torch

            torch.manual_seed(0)
            preset, kw = presets[fmt]
            model = genzoo.build(preset, **kw)
            genzoo.save(model, path, format="genzoo" if fmt == "genzoo" else None)

        return self._once(f"model-{fmt}", make)

    def copy_of(self, src: Path, dst: Path) -> Path:
        shutil.copytree(src, dst)
        return dst

    def run(self) -> Path:
        """A finished tiny gpt-nano run (2 steps, a checkpoint at step 2, the final model at the top)."""
        def make(path):
            rc, out, err = run_cli(["train", "gpt-nano", "--out", str(path), "--steps", "2", *sets(["save_every=2"])])
            assert rc == 0, err

        return self._once("run", make)

    def run_copy(self, dst: Path) -> Path:
        return self.copy_of(self.run(), dst)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """cli.main(argv) in this process: (exit status, stdout, stderr). An exception escaping main propagates."""
    from genzoo.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("always")
        saved = warnings.showwarning
        warnings.showwarning = lambda m, c, f, n, file=None, line=None: err.write(warnings.formatwarning(m, c, f, n))
        try:
            try:
                rc = main(argv)
            except SystemExit as e:  # --help
                rc = e.code or 0
        finally:
            warnings.showwarning = saved
    return rc, out.getvalue(), err.getvalue()


def attempt(case: Case, ws: Workspace, tmp: Path) -> Outcome:
    """Set the case up in `tmp`, run it, and classify what happened."""
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        action = case.make(ws, tmp)
    except Exception as e:  # noqa: BLE001 - a case this genzoo version cannot even set up (an older one)
        return Outcome("n/a", f"setup failed: {type(e).__name__}: {e}")
    before = snapshot(action.protect)
    try:
        with chdir(tmp):  # a command's default output (runs/...) lands in the case's directory
            outcome = _act(case, action)
    finally:
        if action.cleanup is not None:
            action.cleanup()
    if ws.payload_marker.exists():
        ws.payload_marker.unlink()
        return Outcome("executed", "a pickle payload ran")
    after = snapshot(action.protect)
    lost = sorted(k for k, v in before.items() if v is not None and after.get(k) != v)
    if lost:
        return Outcome("data-loss", f"changed or removed: {lost[:5]}")
    new = sorted(k for k, v in after.items() if v is not None and before.get(k) is None)
    if new and outcome.kind == "clean" and not action.ok:
        return Outcome("litter", f"refused, but left new files: {new[:5]}")
    return outcome


def _act(case: Case, action: Action) -> Outcome:
    if action.match is not None:
        case = Case(case.family, case.name, case.make, case.error, action.match, case.status)
    if action.kind == "api":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                action.call()
            except GenzooError as e:
                if action.ok:
                    return Outcome("unclear", f"refused a legitimate input: {type(e).__name__}: {e}")
                if not isinstance(e, case.error):
                    return Outcome("unclear", f"{type(e).__name__} where {case.error.__name__} was due: {e}")
                if case.match and not re.search(case.match, str(e)):
                    return Outcome("unclear", f"message does not match {case.match!r}: {e}")
                return Outcome("clean", f"{type(e).__name__}: {e}")
            except Exception as e:  # noqa: BLE001 - what the harness counts
                return Outcome("traceback", f"{type(e).__name__}: {str(e)[:300]}")
        if action.ok:
            said = [str(w.message) for w in caught]
            if action.warns and not any(re.search(action.warns, m) for m in said):
                return Outcome("silent", f"no warning matching {action.warns!r}: {said}")
            return Outcome("clean", "accepted" + (f", warned: {said[0]}" if said else ""))
        return Outcome("silent", "accepted")
    try:
        rc, out, err = run_cli(action.argv)
    except Exception as e:  # noqa: BLE001
        return Outcome("traceback", f"{type(e).__name__} escaped main: {str(e)[:300]}")
    lines = [line for line in err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if not line.startswith("genzoo: warning:")]
    if action.ok:
        if rc != 0:
            kind = "traceback" if "Traceback" in err else "unclear"
            return Outcome(kind, f"refused a legitimate input ({rc}): {err.strip()[:300]}")
        if action.warns and not any(re.search(action.warns, line) for line in lines):
            return Outcome("silent", f"no warning matching {action.warns!r}: {err.strip()[:300]}")
        return Outcome("clean", "accepted" + (f", warned: {lines[0]}" if lines else ""))
    if rc == 0:
        return Outcome("silent", f"exit 0: {out.strip()[-200:]}")
    if "Traceback" in err:
        return Outcome("traceback", err.strip()[-400:])
    if len(errors) != 1:
        return Outcome("unclear", f"{len(errors)} error lines: {err.strip()[:400]}")
    if rc != case.status:
        return Outcome("unclear", f"exit status {rc}, expected {case.status}: {errors[0]}")
    if case.match and not re.search(case.match, errors[0]):
        return Outcome("unclear", f"message does not match {case.match!r}: {errors[0]}")
    return Outcome("clean", errors[0])


def tally(outcomes: dict[str, Outcome]) -> dict[str, int]:
    counts = {k: 0 for k in KINDS}
    for o in outcomes.values():
        counts[o.kind] += 1
    return {"tried": len(outcomes), **counts}


def chdir(path):
    return contextlib.chdir(path) if hasattr(contextlib, "chdir") else _chdir(path)


@contextlib.contextmanager
def _chdir(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)
