"""Training checkpoints: `run/checkpoints/step-NNNNNNNN/`, each a Hugging Face-format directory
(config.json, model.safetensors, tokenizer.json) plus `trainer_state.pt`, written atomically
(temporary directory, then rename). A directory whose name is not `step-N` (a temporary one left by
a kill during a save) is never picked for resume, and is removed at the next start.

trainer_state.pt holds only tensors and plain Python values, so it loads with `weights_only=True`:
the optimizer and scheduler state dicts, the RNG states as tensors, the data position and the step.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..interop import save as save_model
# where checkpoints are found and named lives in genzoo.rundir (imported by interop too); re-exported here
from ..rundir import STATE, STEP_DIR, clean_partial, complete_checkpoints, latest_checkpoint, step_dir

__all__ = ["STATE", "STEP_DIR", "clean_partial", "complete_checkpoints", "latest_checkpoint", "load_trainer_state",
           "rng_state", "save_checkpoint", "set_rng_state", "step_dir"]


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run: Path, step: int, model, save_files, trainer_state: dict, keep: int) -> Path:
    """save_files(directory): the task's files (tokenizer) written beside the weights."""
    def extra(tmp: Path):
        save_files(tmp)
        torch.save(trainer_state, tmp / STATE)

    path = save_model(model, step_dir(run, step), extra_files=extra)
    for old in complete_checkpoints(run)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def load_trainer_state(ckpt: Path) -> dict:
    try:
        return torch.load(ckpt / STATE, map_location="cpu", weights_only=True)
    except Exception as e:
        from ..interop.files import torch_load_reason

        raise CheckpointError(f"{ckpt / STATE}: cannot read trainer state ({torch_load_reason(e)})") from None
