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
