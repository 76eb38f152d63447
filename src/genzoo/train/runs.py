"""What a training run does to its directory (`genzoo.rundir` says what a run directory is and claims it: refuses a
directory that is not a run, takes the lock): compare a resumed recipe with the stored one, keep every file as it
was when a start or resume is refused, and write the final model so that an interrupted export is recognised.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import uuid
from pathlib import Path

import yaml

from ..errors import CheckpointError, GenzooError, RunDirError
from ..interop import save as save_model
from ..interop.files import fsync_dir
from ..rundir import LOCK, STATE, TMP_MARK, read_marker, write_marker
from .recipe import Recipe, recipe_from_dict

# recipe fields whose change on resume would continue another training than the one checkpointed
RESUME_REFUSES = ("task", "model", "data", "init", "lora", "fuse", "seed", "batch_size", "grad_accum")
# ... and those no resume may change, forced or not: the tokenizer is trained once per run
RESUME_FIXED = ("data.vocab_size", "data.tokenizer")
_NOT_COMPARED = ("name", "description", "progress")
# files of a run that a fresh start writes again (a stale tokenizer would be reused, old metrics kept)
RUN_FILES = ("recipe.yaml", "data.json", "metrics.jsonl", "loss.png", "tokenizer.json", "tokenizer_config.json")
MODEL_FILE = re.compile(r"^(config\.json|generation_config\.json|model\.safetensors|model\.safetensors\.index\.json|"
                        r"model-\d+-of-\d+\.safetensors)$")


def recipe_changes(old: dict, new: dict) -> dict[str, tuple]:
    """{field: (old value, new value)} for each recipe field that differs; model, data, lora, fuse field by field."""
    out = {}
    for k in sorted(set(old) | set(new)):
        if k in _NOT_COMPARED:
            continue
        a, b = old.get(k), new.get(k)
        if k in ("model", "data", "lora", "fuse") and isinstance(a, dict) and isinstance(b, dict):
            out.update({f"{k}.{f}": (a.get(f), b.get(f)) for f in sorted(set(a) | set(b)) if a.get(f) != b.get(f)})
        elif a != b:
            out[k] = (a, b)
    return out


def stored_recipe(run: Path) -> dict | None:
    """The run's recipe.yaml as a recipe dict (defaults filled in where it parses as a recipe), or None."""
    try:
        data = yaml.safe_load((run / "recipe.yaml").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        return recipe_from_dict(data).to_dict()
    except GenzooError:  # written by another genzoo version: compare what is there
        return data


def check_resume(run: Path, recipe: Recipe, force: bool) -> dict[str, tuple]:
    """The recipe changes a resume would make (raising RunDirError for those it may not make); reads only."""
    old = stored_recipe(run)
    if old is None:
        if not force:
            raise RunDirError(f"{run}: no readable recipe.yaml to compare the resumed recipe with; pass --force "
                              "(force=True) to resume anyway")
        return {}
    changes = recipe_changes(old, recipe.to_dict())

    def show(keys):
        return "; ".join(f"{k} {changes[k][0]!r} -> {changes[k][1]!r}" for k in keys)

    fixed = [k for k in changes if k in RESUME_FIXED]
    if fixed:
        raise RunDirError(f"{run}: a resume cannot change {show(fixed)}: the run's tokenizer was trained with the "
                          "old value; start a new run in another directory")
    refused = [k for k in changes if k.split(".")[0] in RESUME_REFUSES]
    if refused and not force:
        raise RunDirError(f"{run}: the resumed recipe changes what is trained ({show(refused)}); pass --force "
                          "(force=True) to continue with it anyway, or choose another directory")
    return changes


@contextlib.contextmanager
def unchanged_on_error(run: Path, enabled: bool = True, remove: bool = False):
    """Inside the block, a failure leaves the top-level files of `run` as they were (a refused start or resume
    changes no file): their bytes are kept before it (model weights excluded: nothing writes them before training
    starts), restored if they changed, and files new since then removed; remove=True: the block's failure
    removes the whole directory (one this start made)."""
    if not enabled:
        yield
        return
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and not p.is_symlink()
              and p.name != LOCK and p.stat().st_size <= 64 * 2**20}
    names = {p.name for p in run.iterdir()}
    try:
        yield
    except BaseException:
        if remove:
            shutil.rmtree(run, ignore_errors=True)
            raise
        for p in run.iterdir():
            if p.name not in names and p.name != LOCK:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink()
        for name, data in before.items():
            f = run / name
            if not f.is_file() or f.read_bytes() != data:
                tmp = run / f".{name}{TMP_MARK}restore"
                tmp.write_bytes(data)
                os.replace(tmp, f)
        raise


def fresh_start(run: Path) -> None:
    """A new run in `run` (new, empty, or a run without checkpoints): the files an earlier start left (its
    tokenizer, metrics, data manifest) are removed so nothing of it is reused, and the marker is written."""
    if any((run / f).exists() for f in ("config.json", "model.safetensors", "model.safetensors.index.json")):
        raise RunDirError(f"{run} holds a trained model but no checkpoint to resume; choose another directory")
    seeded = set((read_marker(run) or {}).get("seeded", []))  # files put in before the start (`rundir.seed_run`)
    for name in RUN_FILES:
        if name not in seeded:
            (run / name).unlink(missing_ok=True)
    write_marker(run, final=None, created=time.strftime("%Y-%m-%d %H:%M:%S"))


def state_value(ckpt: Path, fn):
    """fn() -> its value; a trainer state that lacks a field or does not fit (another model, another task) is a
    CheckpointError naming the checkpoint."""
    try:
        return fn()
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
        raise CheckpointError(f"{ckpt / STATE}: the trainer state does not fit this run ({type(e).__name__}: "
                              f"{str(e)[:200]})") from None


def export_final(run: Path, model, save_files, step: int) -> None:
    """The final model at the top of the run directory. It is written whole into a temporary directory first;
    then the run's marker stops naming a complete final model, the files are moved to the top one by one
    (os.replace), and the marker names `step` again. A kill in between leaves a run that `genzoo.load`
    recognises (`rundir.export_incomplete`): it loads the newest checkpoint, which holds the same weights, and
    says so; `--resume` writes the export again."""
    tmp = run / f".final{TMP_MARK}{uuid.uuid4().hex[:8]}"
    save_model(model, tmp, extra_files=save_files)
    write_marker(run, final=None)
    new = {f.name for f in tmp.iterdir()}
    for f in run.iterdir():  # model files of an earlier export that this one does not have (sharded -> single)
        if f.name not in new and f.is_file() and MODEL_FILE.match(f.name):
            f.unlink()
    for f in sorted(tmp.iterdir()):
        if f.is_dir() and (run / f.name).is_dir():  # a folder (a LoRA run's adapter/) is replaced whole
            shutil.rmtree(run / f.name)
        os.replace(f, run / f.name)
    fsync_dir(run)
    write_marker(run, final=step)
    shutil.rmtree(tmp, ignore_errors=True)


