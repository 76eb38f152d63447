"""The run directory: what makes a directory a genzoo run, the lock a run holds on it, where its checkpoints
are found, how they are named, which are complete, and whether its final model is complete.

    run/
      genzoo-run.json                the marker: written by genzoo when a run starts; a directory without it
                                     (and without the files of a run made before markers) is not a run, and
                                     `train` refuses to write into it unless it is empty
      .genzoo-run.lock               the lock file: a run holds an exclusive `fcntl.flock` on it while it runs
      checkpoints/step-NNNNNNNN/     a complete checkpoint: a Hugging Face-format directory + trainer_state.pt
      checkpoints/.step-N.tmp-XXXX/  a save in progress (or killed): never picked, removed at the next start
      config.json, model.safetensors the final model, once training has ended

A checkpoint is complete when its directory has the `step-N` name (it is renamed there only after every file
is written, `interop.atomic_dir`) and holds `trainer_state.pt` (written last).

The final model is written at the top of the run, file by file; the marker's `final` field says whether that
set is complete: it is cleared before the first file is replaced and set to the step once the last one is in
place. A loader (`resolve_checkpoint_dir`) that finds a run whose final export was interrupted loads the newest
complete checkpoint instead, and says so.

Both `interop` (loading a run directory) and `train` (writing and resuming one) import this module; it
imports neither, so the two never import each other.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import socket
import time
import warnings
from pathlib import Path

from .errors import CheckpointError, GenzooWarning, RunDirError

STEP_DIR = re.compile(r"^step-(\d{8})$")
# the files a model directory is recognised by: config.json, or a checkpoint format's own (GLiNER's)
MODEL_CONFIG_FILES = ("config.json", "gliner_config.json")
STATE = "trainer_state.pt"
CHECKPOINTS = "checkpoints"
MARKER = "genzoo-run.json"
LOCK = ".genzoo-run.lock"
# the names `interop.atomic_dir` gives a directory while it is written / while it is being replaced
TMP_MARK = ".tmp-"
OLD_MARK = ".old-"
# the files of the final model at the top of a run (besides the tokenizer, there from the start)
FINAL_FILES = ("config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json")
# a temporary directory genzoo left at the top of a run (`.NAME.tmp-XXXXXXXX`, `.NAME.old-XXXXXXXX`)
TOP_TMP = re.compile(r"^\..+\.(tmp|old)-[0-9a-f]{8}$|^\.export\.tmp$")


def step_dir(run: Path, step: int) -> Path:
    """The directory of the checkpoint of `step`: run/checkpoints/step-NNNNNNNN."""
    return Path(run) / CHECKPOINTS / f"step-{step:08d}"


def complete_checkpoints(run: Path) -> list[Path]:
    """The run's complete checkpoints, oldest step first."""
    root = Path(run) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and STEP_DIR.match(p.name) and (p / STATE).exists()]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(run: Path) -> Path | None:
    """The complete checkpoint of the highest step, or None."""
    found = complete_checkpoints(run)
    return found[-1] if found else None


def clean_partial(run: Path) -> None:
    """Remove what a killed save left under run/checkpoints and at the top of the run (temporary and half-replaced
    directories). Only the holder of the run's lock may call this: another live run's saves look the same."""
    for root in (Path(run) / CHECKPOINTS, Path(run)):
        if root.is_dir():
            for p in root.iterdir():
                partial = (TMP_MARK in p.name or OLD_MARK in p.name) if root.name == CHECKPOINTS else \
                    bool(TOP_TMP.match(p.name))
                if partial and p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)


# ---------------------------------------------------------------- the marker
def read_marker(run: Path) -> dict | None:
    """The run's marker as a dict; None when there is none; {} when it is unreadable."""
    f = Path(run) / MARKER
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def write_marker(run: Path, **fields) -> None:
    """Create or update the marker (fields merged into it), atomically: a temporary file renamed over it."""
    run = Path(run)
    data = {**(read_marker(run) or {}), "genzoo_run": 1, **fields}
    tmp = run / f".{MARKER}.tmp-{os.getpid():x}"
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, run / MARKER)
    _fsync_dir(run)


def is_run(path: Path) -> bool:
    """Whether `path` is a genzoo run directory: it has the marker, or (a run made before markers existed) a
    recipe.yaml beside a data.json or a checkpoints/ directory."""
    p = Path(path)
    if (p / MARKER).is_file():
        return True
    return (p / "recipe.yaml").is_file() and ((p / "data.json").is_file() or (p / CHECKPOINTS).is_dir())


def check_out_dir(run: Path, resume: bool = False) -> None:
    """Raise RunDirError unless a run may be written into `run`: a path that does not exist yet, an empty
    directory, or a genzoo run (with resume: only a genzoo run). Nothing is created or changed."""
    run = Path(run)
    if resume and not (run.is_dir() and is_run(run)):
        raise RunDirError(f"{run}: nothing to resume: not a genzoo run directory (no {MARKER})")
    for parent in run.parents:  # a path under a file fails later with ENOTDIR; name the file now
        if parent.exists():
            if not parent.is_dir():
                raise RunDirError(f"{run}: cannot create the run directory: {parent} is a file")
            break
    if not (run.exists() or run.is_symlink()):
        return
    if not run.is_dir():
        raise RunDirError(f"{run}: exists and is not a directory; choose a new or empty directory for the run")
    if is_run(run):
        return
    entries = sorted(p.name for p in run.iterdir() if p.name != LOCK)
    if entries:
        shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
        raise RunDirError(f"{run}: not a genzoo run directory (no {MARKER}) and not empty ({len(entries)} "
                          f"entries: {shown}); genzoo never writes into it: choose a new or empty directory")


# ---------------------------------------------------------------- the lock
class RunLock:
    """An exclusive lock on a run directory for the lifetime of a run: `fcntl.flock` on run/.genzoo-run.lock,
    which holds the holder's pid, host and start time. The kernel drops the lock when the process ends however
    it ends (a SIGKILL included), so a lock is never stale. A second writer refuses at once, naming the holder.
    Within one process the lock is re-entrant (the CLI takes it before the training code is imported, so a
    second writer hears at once; `train` then takes it again).

        with RunLock(run):      # RunDirError if another process holds it
            ...
    """

    _held: dict[str, list] = {}  # realpath -> [fd, count]: the locks this process holds

    def __init__(self, run: Path):
        self.run = Path(run)
        self.fd: int | None = None
        self.key = os.path.realpath(self.run / LOCK)

    def acquire(self) -> "RunLock":
        held = RunLock._held.get(self.key)
        if held is not None:
            held[1] += 1
            self.fd = held[0]
            return self
        path = self.run / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _holder(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise RunDirError(f"{self.run} is in use by another genzoo run ({holder}); wait for it to end or "
                              "choose another directory") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self.fd = fd
        RunLock._held[self.key] = [fd, 1]
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        held = RunLock._held[self.key]
        held[1] -= 1
        if held[1] == 0:
            del RunLock._held[self.key]
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def seed_run(run: str | os.PathLike, files: dict[str, str | os.PathLike]) -> Path:
    """Start a new run directory holding `files` ({name in the run: source file}) before training starts, e.g. a
    tokenizer several runs must share: the directory is made, marked as a genzoo run that names the seeded files
    (so a fresh start keeps them, `train.runs.fresh_start`), and the files are copied in."""
    run = Path(run)
    check_out_dir(run)
    run.mkdir(parents=True, exist_ok=True)
    write_marker(run, seeded=sorted(set((read_marker(run) or {}).get("seeded", [])) | set(files)))
    for name, src in files.items():
        shutil.copy(src, run / name)
    return run


@contextlib.contextmanager
def claim_run(run: str | os.PathLike, resume: bool = False):
    """`with claim_run(run, resume) as created:` the run directory checked (`check_out_dir`), made when it does not
    exist (created: True), and locked (`RunLock`) for the block. A directory made here that holds nothing but the
    lock file when the block fails is removed again, so a refused start leaves nothing behind."""
    run = Path(run)
    check_out_dir(run, resume)
    created = False
    if not run.exists():
        run.parent.mkdir(parents=True, exist_ok=True)
        try:
            run.mkdir()
            created = True
        except FileExistsError:  # made by another start at the same moment: the lock decides
            pass
    try:
        with RunLock(run):
            check_out_dir(run, resume)  # again, now that no other run can change it
            yield created
    except BaseException:
        if created and run.is_dir() and {p.name for p in run.iterdir()} <= {LOCK}:
            shutil.rmtree(run, ignore_errors=True)
        raise


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {info['pid']} on {info['host']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown: it is still starting"


# ---------------------------------------------------------------- what a loader reads
def export_incomplete(run: Path) -> bool:
    """Whether `run` is a marked run whose top-level model files may be a mix of two exports (an export was
    interrupted): its marker does not name the step of a completed final export."""
    marker = read_marker(run)
    return marker is not None and not isinstance(marker.get("final"), int)


def resolve_checkpoint_dir(path: str | os.PathLike) -> Path:
    """The directory to load from `path`: an HF directory (or a finished run, whose final model is at its top
    level) as it is; a run directory without a top-level model config (MODEL_CONFIG_FILES) -> its latest complete
    checkpoint; a run whose final export was interrupted -> its latest complete checkpoint, with a warning."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such directory")
    if not p.is_dir():
        raise CheckpointError(f"{p}: not a directory")
    latest = latest_checkpoint(p)
    if export_incomplete(p):
        started = any((p / f).exists() for f in FINAL_FILES) or any(p.glob("model-*-of-*.safetensors"))
        if latest is None:
            if any((p / name).exists() for name in MODEL_CONFIG_FILES):
                raise CheckpointError(f"{p}: its final model is incomplete (the export was interrupted) and it has "
                                      "no complete checkpoint; resume the run to write it again")
            return p
        if started:  # top-level model files of an export that did not complete
            warnings.warn(f"{p}: its final export did not complete (interrupted?); loading its newest complete "
                          f"checkpoint {latest.relative_to(p)}", GenzooWarning, stacklevel=2)
        return latest
    if not any((p / name).exists() for name in MODEL_CONFIG_FILES) and latest is not None:
        return latest
    return p


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
