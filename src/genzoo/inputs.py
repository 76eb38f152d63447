"""Checks of model inputs, made before any compute (DESIGN.md, principle 5); one place for every genre."""

from __future__ import annotations

import torch

from .errors import InputError


def check_token_ids(input_ids, vocab_size: int, max_positions: int, attention_mask=None, *, start: int = 0,
                    name: str = "input_ids") -> None:
    """input_ids: an integer (batch, seq_len) tensor of ids in [0, vocab_size), start + seq_len <= max_positions;
    attention_mask, when given, of the same shape."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.dtype not in (
        torch.long, torch.int32, torch.int64
    ):
        raise InputError(f"{name} must be an integer tensor of shape (batch, seq_len); got "
                         f"{getattr(input_ids, 'dtype', type(input_ids))} {tuple(getattr(input_ids, 'shape', ()))}")
    b, t = input_ids.shape
    if b == 0:
        raise InputError(f"{name} has batch size 0: give at least one sequence")
    if t == 0:
        raise InputError(f"{name} has seq_len 0")
    lo, hi = int(input_ids.min()), int(input_ids.max())
    if lo < 0 or hi >= vocab_size:
        where = "" if name == "input_ids" else f" in {name}"
        raise InputError(f"token id {hi if hi >= vocab_size else lo}{where} is out of range: vocab_size is "
                         f"{vocab_size} (ids 0..{vocab_size - 1})")
    if start + t > max_positions:
        raise InputError(f"sequence length {start + t} exceeds the model's max_positions={max_positions}")
    if attention_mask is not None and tuple(attention_mask.shape) != (b, t):
        raise InputError(f"attention_mask has shape {tuple(attention_mask.shape)}; expected (batch, seq_len) = "
                         f"{(b, t)}")


def check_labels(labels, input_shape: tuple, vocab_size: int, name: str = "labels") -> None:
    """labels: an integer tensor of input_ids' shape, each a class in [0, vocab_size) or -100 (not scored)."""
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise InputError(f"{name} must be an integer tensor; got {getattr(labels, 'dtype', type(labels))}")
    if tuple(labels.shape) != tuple(input_shape):
        raise InputError(f"{name} has shape {tuple(labels.shape)}; expected {tuple(input_shape)} (as the inputs)")
    scored = labels[labels != -100]
    if scored.numel() and (int(scored.min()) < 0 or int(scored.max()) >= vocab_size):
        bad = int(scored.max()) if int(scored.max()) >= vocab_size else int(scored.min())
        raise InputError(f"label {bad} in {name} is out of range: vocab_size is {vocab_size} (labels 0.."
                         f"{vocab_size - 1}, or -100 to skip a position)")
