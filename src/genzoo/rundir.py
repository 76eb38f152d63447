"""The run directory: where a training run's checkpoints are found, how they are named, which are complete.

    run/
      checkpoints/step-NNNNNNNN/     a complete checkpoint: a Hugging Face-format directory + trainer_state.pt
      checkpoints/.step-N.tmp-XXXX/  a save in progress (or killed): never picked, removed at the next start
      config.json, model.safetensors the final model, once training has ended

A checkpoint is complete when its directory has the `step-N` name (it is renamed there only after every file
is written, `interop.atomic_dir`) and holds `trainer_state.pt` (written last).

Both `interop` (loading a run directory) and `train` (writing and resuming one) import this module; it
imports neither, so the two never import each other.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from .errors import CheckpointError

STEP_DIR = re.compile(r"^step-(\d{8})$")
# the files a model directory is recognised by: config.json, or a checkpoint format's own (GLiNER's)
MODEL_CONFIG_FILES = ("config.json", "gliner_config.json")
STATE = "trainer_state.pt"
CHECKPOINTS = "checkpoints"
# the names `interop.atomic_dir` gives a directory while it is written / while it is being replaced
TMP_MARK = ".tmp-"
OLD_MARK = ".old-"


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
    """Remove what a killed save left under run/checkpoints (temporary and half-replaced directories)."""
    root = Path(run) / CHECKPOINTS
    if root.is_dir():
        for p in root.iterdir():
            if TMP_MARK in p.name or OLD_MARK in p.name:
                shutil.rmtree(p, ignore_errors=True)


def resolve_checkpoint_dir(path: str | os.PathLike) -> Path:
    """The directory to load from `path`: an HF directory (or a finished run, whose final model is at its top
    level) as it is; a run directory without a top-level model config (MODEL_CONFIG_FILES) -> its latest complete
    checkpoint."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such directory")
    if not p.is_dir():
        raise CheckpointError(f"{p}: not a directory")
    if not any((p / name).exists() for name in MODEL_CONFIG_FILES):
        latest = latest_checkpoint(p)
        if latest is not None:
            return latest
    return p
