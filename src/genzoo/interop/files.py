"""Reading weight files safely.

- safetensors files are checked before they are parsed: the 8-byte header length must fit in the
  file and every tensor's byte range must lie inside it, so a truncated or corrupt file fails with a
  message naming the file and what is wrong, not deep inside a parser.
- A sharded checkpoint (`model.safetensors.index.json`) is read shard by shard; every key of the
  index must be in the shard it names.
- A pickle checkpoint (`pytorch_model.bin`) is read only with `torch.load(weights_only=True)`, which
  cannot execute code; anything else in it is refused.
- Nothing is copied on reading: safetensors tensors are views of the memory-mapped file (`safe_open`
  maps it; a page is read from disk when first touched), and a zip-format pickle checkpoint is read with
  `torch.load(mmap=True)` (the legacy pre-zip format cannot be mapped and is read whole). A tensor that
  must change dtype is read and converted on its own (`cast=`).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from ..errors import CheckpointError

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"


def verify_safetensors(file: Path) -> None:
    """Raise CheckpointError unless `file` has a well-formed safetensors header whose tensors fit the file."""
    size = file.stat().st_size
    if size < 8:
        raise CheckpointError(f"{file}: {size} bytes is too short for a safetensors file (8-byte header length)")
    with open(file, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if 8 + n > size:
            raise CheckpointError(
                f"{file}: safetensors header length {n} runs past the end of the file ({size} bytes); "
                "the file is truncated or not a safetensors file"
            )
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{file}: corrupt safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{file}: corrupt safetensors header (not a JSON object)")
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise CheckpointError(
            f"{file}: truncated: its tensors need {end} bytes after the header, the file has {size - 8 - n}"
        )


def read_safetensors(file: Path, cast: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The file's tensors (CPU), after `verify_safetensors`: memory-mapped views of the file, except that with
    `cast`, a floating-point tensor of another dtype is read into memory of its own (safetensors' pread
    backend) and converted, one tensor at a time, so the file's pages do not stay mapped beside the copies."""
    verify_safetensors(file)
    try:
        with safe_open(str(file), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # views of the mapping: no page is read yet
        convert = [k for k, v in tensors.items() if cast is not None and v.is_floating_point() and v.dtype != cast]
        if convert:
            with _unmapped(file) as f:
                for k in convert:
                    tensors[k] = f.get_tensor(k).to(cast)  # one tensor in both dtypes at a time
        return tensors
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{file}: cannot read safetensors: {e}") from None


def _unmapped(file: Path):
    """A safetensors reader that reads each tensor into its own memory (pread); safetensors versions without
    that backend map the file."""
    try:
        return safe_open(str(file), framework="pt", backend="pread")
    except TypeError:
        return safe_open(str(file), framework="pt")


def read_pickle(file: Path, cast: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """A pickle checkpoint's tensors, read with weights_only=True (memory-mapped where the format allows);
    floating-point tensors converted to `cast` where given."""
    try:
        try:
            state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:  # the legacy (pre-zip) format cannot be mapped: read it whole
            if "mmap" not in str(e):
                raise
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses any non-tensor global; say so plainly
        raise CheckpointError(f"{file}: refused or unreadable pickle checkpoint (read with weights_only=True): {e}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{file}: expected a dict of tensors")
    if cast is not None:
        state = {k: v.to(cast) if v.is_floating_point() else v for k, v in state.items()}
    return state


def _read_index(directory: Path, index_name: str, reader) -> dict[str, torch.Tensor]:
    index_file = directory / index_name
    try:
        weight_map = json.loads(index_file.read_text())["weight_map"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{index_file}: not a valid shard index ({e})") from None
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        if Path(shard).name != shard:
            raise CheckpointError(f"{index_file}: shard name {shard!r} must be a file in the same directory")
        tensors.update(reader(directory / shard))
    missing = sorted(k for k, shard in weight_map.items() if k not in tensors)
    if missing:
        raise CheckpointError(f"{index_file}: keys listed in the index but absent from their shards: {missing[:20]}")
    return tensors


def read_weights(directory: Path, cast: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """All tensors of an HF-format directory, from whichever weight layout it has; with `cast`, floating-point
    tensors converted to that dtype as they are read."""
    def safetensors(file):
        return read_safetensors(file, cast)

    def pickle(file):
        return read_pickle(file, cast)

    if (directory / SAFETENSORS).exists():
        return safetensors(directory / SAFETENSORS)
    if (directory / SAFETENSORS_INDEX).exists():
        return _read_index(directory, SAFETENSORS_INDEX, safetensors)
    if (directory / PICKLE).exists():
        return pickle(directory / PICKLE)
    if (directory / PICKLE_INDEX).exists():
        return _read_index(directory, PICKLE_INDEX, pickle)
    raise CheckpointError(
        f"{directory}: no weights found (looked for {SAFETENSORS}, {SAFETENSORS_INDEX}, {PICKLE}, {PICKLE_INDEX})"
    )


def read_config(directory: Path, name: str = "config.json") -> dict:
    """config.json (or the config file `name` a checkpoint format reads) as a dict; a config that asks for remote
    code is refused."""
    file = directory / name
    if not file.exists():
        raise CheckpointError(f"{directory}: no {name}")
    try:
        cfg = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{file}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{file}: expected a JSON object")
    for key in ("auto_map", "trust_remote_code"):
        if cfg.get(key):
            raise CheckpointError(f"{file}: refuses {key!r}: genzoo never runs code shipped with a checkpoint")
    return cfg


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
