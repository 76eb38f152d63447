"""The run directory module: checkpoint naming and discovery, and the import graph it exists for (interop and
train both import genzoo.rundir; interop never imports train; rundir imports neither)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import genzoo
from genzoo import CheckpointError
from genzoo.rundir import (STATE, clean_partial, complete_checkpoints, latest_checkpoint, resolve_checkpoint_dir,
                           step_dir)

SRC = Path(genzoo.__file__).parent


def imported_modules(file: Path, package: str) -> set[str]:
    """Absolute names of every module `file` imports (at any depth: imports inside functions count).
    package: the dotted package the file belongs to, to resolve relative imports."""
    out = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # `from .. import train` imports genzoo.train
    return out


def test_interop_never_imports_train_and_rundir_imports_neither():
    interop = {f: imported_modules(f, "genzoo.interop") for f in sorted((SRC / "interop").glob("*.py"))}
    assert interop and all(
        not any(m == "genzoo.train" or m.startswith("genzoo.train.") for m in mods) for mods in interop.values()
    ), {f.name: sorted(m for m in mods if m.startswith("genzoo.train")) for f, mods in interop.items()}
    rundir = imported_modules(SRC / "rundir.py", "genzoo")
    bad = sorted(m for m in rundir if m.split(".")[:2] in (["genzoo", "interop"], ["genzoo", "train"]))
    assert not bad, bad
    assert "genzoo.errors" in rundir  # the resolution of relative imports works


def test_the_relative_import_resolution_sees_a_cycle_it_should(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from ..train.checkpoint import latest_checkpoint\nfrom .. import train\n")
    mods = imported_modules(f, "genzoo.interop")
    assert "genzoo.train.checkpoint" in mods and "genzoo.train" in mods


@pytest.mark.parametrize("order", [
    ["genzoo.interop", "genzoo.train"],
    ["genzoo.train", "genzoo.interop"],
    ["genzoo.train.checkpoint", "genzoo.interop"],
    ["genzoo.rundir", "genzoo.train.trainer"],
])
def test_interop_and_train_import_in_either_order(order):
    code = "; ".join(f"import {m}" for m in order) + "; import genzoo.rundir as r; assert r.latest_checkpoint"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)


def test_train_checkpoint_reexports_the_run_directory_names():
    from genzoo import rundir
    from genzoo.train import checkpoint

    for name in ("STEP_DIR", "STATE", "step_dir", "complete_checkpoints", "latest_checkpoint", "clean_partial"):
        assert getattr(checkpoint, name) is getattr(rundir, name)


def make_ckpt(run: Path, step: int, complete: bool = True) -> Path:
    d = step_dir(run, step)
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    if complete:
        (d / STATE).write_bytes(b"")
    return d


def test_checkpoint_discovery_orders_by_step_and_skips_partial(tmp_path):
    run = tmp_path / "run"
    assert complete_checkpoints(run) == [] and latest_checkpoint(run) is None
    assert step_dir(run, 7).name == "step-00000007"
    a, b = make_ckpt(run, 9), make_ckpt(run, 100)
    make_ckpt(run, 200, complete=False)  # no trainer_state.pt: not complete
    tmp = run / "checkpoints" / ".step-00000300.tmp-abcd1234"  # a save killed before its rename
    tmp.mkdir()
    (tmp / STATE).write_bytes(b"")
    old = run / "checkpoints" / ".step-00000009.old-abcd1234"
    old.mkdir()
    assert complete_checkpoints(run) == [a, b] and latest_checkpoint(run) == b
    clean_partial(run)
    assert not tmp.exists() and not old.exists() and a.exists() and b.exists()


def test_resolve_checkpoint_dir(tmp_path):
    with pytest.raises(CheckpointError, match="no such directory"):
        resolve_checkpoint_dir(tmp_path / "nope")
    (tmp_path / "file").write_text("")
    with pytest.raises(CheckpointError, match="not a directory"):
        resolve_checkpoint_dir(tmp_path / "file")
    run = tmp_path / "run"
    make_ckpt(run, 1)
    latest = make_ckpt(run, 2)
    assert resolve_checkpoint_dir(run) == latest  # training not finished: the latest complete checkpoint
    (run / "config.json").write_text("{}")
    assert resolve_checkpoint_dir(run) == run  # the final model at the top level
    from genzoo.interop import resolve_checkpoint_dir as from_interop

    assert from_interop is resolve_checkpoint_dir


def test_a_save_in_progress_carries_the_mark_clean_partial_removes(tmp_path):
    from genzoo.interop.atomic import atomic_dir

    run = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with atomic_dir(step_dir(run, 1)) as tmp:
            (tmp / STATE).write_text("x")
            assert tmp.name.startswith(".step-00000001.tmp-") and latest_checkpoint(run) is None
            clean_partial(run)  # what the next start does after a kill here
            assert not tmp.exists()
            raise RuntimeError
