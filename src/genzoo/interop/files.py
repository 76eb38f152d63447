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
import math
import mmap
import os
import struct
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from ..errors import CheckpointError

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"


# bytes per element of each safetensors dtype
DTYPE_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8}
# a floating dtype's non-finite values, as a bit test on its raw bits: (bits & mask) == mask (exponent all ones;
# float8 e4m3fn has no infinity, and its NaN is every magnitude bit set)
_NONFINITE_BITS = {"F16": (np.uint16, 0x7C00), "BF16": (np.uint16, 0x7F80), "F32": (np.uint32, 0x7F800000),
                   "F64": (np.uint64, 0x7FF0000000000000), "F8_E5M2": (np.uint8, 0x7C), "F8_E4M3": (np.uint8, 0x7F)}
MAX_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit
_CHUNK = 4 * 1024 * 1024  # bytes scanned at a time by the non-finite check


def _entry_error(file: Path, key: str, what: str) -> CheckpointError:
    return CheckpointError(f"{file}: corrupt safetensors header: tensor {key!r}: {what}")


def verify_safetensors(file: Path) -> tuple[int, dict]:
    """Raise CheckpointError unless `file` is a regular file with a well-formed safetensors header whose tensors
    fit the file: every entry names a known dtype, a shape of non-negative integers and [begin, end) offsets
    that hold exactly shape x dtype bytes, inside the file, overlapping no other tensor. -> (header length,
    header)."""
    try:
        if not file.is_file():
            raise CheckpointError(f"{file}: not a regular file (a safetensors file was expected)")
        size = file.stat().st_size
        if size < 8:
            raise CheckpointError(f"{file}: {size} bytes is too short for a safetensors file (8-byte header length)")
        with open(file, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if 8 + n > size or n > MAX_HEADER:
                raise CheckpointError(
                    f"{file}: safetensors header length {n} runs past the end of the file ({size} bytes) or past "
                    f"{MAX_HEADER} bytes; the file is truncated or not a safetensors file"
                )
            raw = f.read(n)
    except OSError as e:
        raise CheckpointError(f"{file}: cannot read: {e.strerror or e}") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{file}: corrupt safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{file}: corrupt safetensors header (not a JSON object)")
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise CheckpointError(f"{file}: corrupt safetensors header: __metadata__ must map strings to strings")
    spans = []
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise _entry_error(file, key, "not a JSON object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPE_SIZES:
            raise _entry_error(file, key, f"dtype {dtype!r} is not one of {', '.join(DTYPE_SIZES)}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise _entry_error(file, key, f"shape {shape!r} must be a list of non-negative integers")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise _entry_error(file, key, f"data_offsets {offsets!r} must be [begin, end] with 0 <= begin <= end")
        nbytes = math.prod(shape) * DTYPE_SIZES[dtype]
        if offsets[1] - offsets[0] != nbytes:
            raise _entry_error(file, key, f"data_offsets {offsets} hold {offsets[1] - offsets[0]} bytes; shape "
                                          f"{shape} of {dtype} needs {nbytes}")
        spans.append((offsets[0], offsets[1], key))
    spans.sort()
    for (b0, e0, k0), (b1, e1, k1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise CheckpointError(f"{file}: corrupt safetensors header: tensors {k0!r} and {k1!r} overlap")
    end = max((e for _, e, _ in spans), default=0)
    if 8 + n + end > size:
        raise CheckpointError(
            f"{file}: truncated: its tensors need {end} bytes after the header, the file has {size - 8 - n}"
        )
    return n, header


def check_finite_safetensors(file: Path, n: int, header: dict) -> None:
    """Raise CheckpointError naming the tensors of `file` (header length n, header) that hold NaN or Inf.
    The file is scanned through a mapping of its own, a few MB at a time, each range released once counted, so
    the check reads the file once but never holds it resident (a loaded model's views stay unread)."""
    bad = []
    with open(file, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        page = mmap.PAGESIZE
        for key, entry in header.items():
            if key == "__metadata__" or entry["dtype"] not in _NONFINITE_BITS:
                continue
            kind, mask = _NONFINITE_BITS[entry["dtype"]]
            width = np.dtype(kind).itemsize
            begin, end = (8 + n + o for o in entry["data_offsets"])
            count = 0
            for start in range(begin, end, _CHUNK):
                stop = min(end, start + _CHUNK)
                bits = np.frombuffer(mm, dtype=kind, count=(stop - start) // width, offset=start)
                count += int(np.count_nonzero((bits & kind(mask)) == kind(mask)))
                del bits
                lo = start - start % page
                if hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
                    mm.madvise(mmap.MADV_DONTNEED, lo, stop - lo)
            if count:
                bad.append(f"{key!r} ({count} of {math.prod(entry['shape'])})")
    if bad:
        raise nonfinite_error(file, bad)


def nonfinite_error(file: Path, bad: list[str]) -> CheckpointError:
    return CheckpointError(f"{file}: non-finite weights (NaN or Inf) in {len(bad)} tensor(s): {', '.join(bad[:10])}; "
                           "genzoo.load(..., allow_nonfinite=True) loads them anyway")


def nonfinite_entries(tensors: dict[str, torch.Tensor]) -> list[str]:
    """"'name' (count of numel)" for each floating-point tensor holding NaN or Inf."""
    return [f"{k!r} ({int((~torch.isfinite(v)).sum())} of {v.numel()})" for k, v in tensors.items()
            if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def check_finite_tensors(file: Path, tensors: dict[str, torch.Tensor]) -> None:
    bad = nonfinite_entries(tensors)
    if bad:
        raise nonfinite_error(file, bad)


def read_safetensors(file: Path, cast: torch.dtype | None = None, allow_nonfinite: bool = False
                     ) -> dict[str, torch.Tensor]:
    """The file's tensors (CPU), after `verify_safetensors` (and, unless allow_nonfinite, the non-finite check):
    memory-mapped views of the file, except that with `cast`, a floating-point tensor of another dtype is read
    into memory of its own (safetensors' pread backend) and converted, one tensor at a time, so the file's pages
    do not stay mapped beside the copies."""
    n, header = verify_safetensors(file)
    try:
        if not allow_nonfinite:
            check_finite_safetensors(file, n, header)
        with safe_open(str(file), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # views of the mapping: no page is read yet
        convert = [k for k, v in tensors.items() if cast is not None and v.is_floating_point() and v.dtype != cast]
        if convert:
            with _unmapped(file) as f:
                for k in convert:
                    tensors[k] = f.get_tensor(k).to(cast)  # one tensor in both dtypes at a time
        return tensors
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise CheckpointError(f"{file}: cannot read safetensors: {e}") from None


def _unmapped(file: Path):
    """A safetensors reader that reads each tensor into its own memory (pread); safetensors versions without
    that backend map the file."""
    try:
        return safe_open(str(file), framework="pt", backend="pread")
    except TypeError:
        return safe_open(str(file), framework="pt")


def torch_load_reason(e: Exception) -> str:
    """The line of a torch.load error that says what is wrong, without torch's advice to retry with
    weights_only=False (which would run the file's code)."""
    text = str(e)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported" in line or "unsupported" in line:
            return line
    useful = [line for line in lines if not line.startswith(("Weights only load failed", "Check the documentation",
                                                            "Please file an issue"))]
    return (useful[0] if useful else lines[0] if lines else type(e).__name__)[:300]


def read_pickle(file: Path, cast: torch.dtype | None = None, allow_nonfinite: bool = False
                ) -> dict[str, torch.Tensor]:
    """A pickle checkpoint's tensors, read with weights_only=True (memory-mapped where the format allows);
    floating-point tensors converted to `cast` where given; NaN / Inf refused unless allow_nonfinite."""
    if not file.is_file():
        raise CheckpointError(f"{file}: not a regular file (a pickle checkpoint was expected)")
    try:
        try:
            state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:  # the legacy (pre-zip) format cannot be mapped: read it whole
            if "mmap" not in str(e):
                raise
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses any non-tensor global; say so plainly
        raise CheckpointError(f"{file}: refused or unreadable pickle checkpoint (read with weights_only=True, which "
                              f"runs no code): {torch_load_reason(e)}") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"{file}: expected a dict of tensors")
    if not allow_nonfinite:
        check_finite_tensors(file, state)
    if cast is not None:
        state = {k: v.to(cast) if v.is_floating_point() else v for k, v in state.items()}
    return state


def read_index(index_file: Path) -> dict[str, str]:
    """The weight map of a shard index ({tensor name: shard file name}), after checking its schema: a JSON
    object whose `weight_map` maps names to file names in the same directory, every one of which exists."""
    try:
        index = json.loads(index_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{index_file}: not a valid shard index ({e})") from None
    if not isinstance(index, dict) or not isinstance(index.get("weight_map"), dict):
        raise CheckpointError(f"{index_file}: not a valid shard index: expected a JSON object with a 'weight_map' "
                              "object ({tensor name: shard file})")
    weight_map = index["weight_map"]
    for key, shard in weight_map.items():
        if not isinstance(shard, str) or not shard:
            raise CheckpointError(f"{index_file}: weight_map[{key!r}] = {shard!r}: expected a shard file name")
        if Path(shard).name != shard or shard in (".", ".."):
            raise CheckpointError(f"{index_file}: shard name {shard!r} must be a file in the same directory")
    for shard in sorted(set(weight_map.values())):
        if not (index_file.parent / shard).is_file():
            raise CheckpointError(f"{index_file}: names shard {shard!r}, which is not a file in "
                                  f"{index_file.parent}")
    return weight_map


def _read_index(directory: Path, index_name: str, reader) -> dict[str, torch.Tensor]:
    index_file = directory / index_name
    weight_map = read_index(index_file)
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        tensors.update(reader(directory / shard))
    missing = sorted(k for k, shard in weight_map.items() if k not in tensors)
    if missing:
        raise CheckpointError(f"{index_file}: keys listed in the index but absent from their shards: {missing[:20]}")
    return tensors


def read_weights(directory: Path, cast: torch.dtype | None = None, allow_nonfinite: bool = False
                 ) -> dict[str, torch.Tensor]:
    """All tensors of an HF-format directory, from whichever weight layout it has; with `cast`, floating-point
    tensors converted to that dtype as they are read; NaN / Inf refused unless allow_nonfinite."""
    def safetensors(file):
        return read_safetensors(file, cast, allow_nonfinite)

    def pickle(file):
        return read_pickle(file, cast, allow_nonfinite)

    for name, read in ((SAFETENSORS, safetensors), (SAFETENSORS_INDEX, None), (PICKLE, pickle), (PICKLE_INDEX, None)):
        if (directory / name).exists() or (directory / name).is_symlink():
            if read is not None:
                return read(directory / name)
            return _read_index(directory, name, safetensors if name == SAFETENSORS_INDEX else pickle)
    raise CheckpointError(
        f"{directory}: no weights found (looked for {SAFETENSORS}, {SAFETENSORS_INDEX}, {PICKLE}, {PICKLE_INDEX})"
    )


def weight_bytes(directory: Path) -> int:
    """The total size of the weight files of an HF-format directory (0 where it cannot tell)."""
    total = 0
    for p in directory.iterdir():
        if p.name.endswith((".safetensors", ".bin")) and p.is_file():
            total += p.stat().st_size
    return total


def read_config(directory: Path, name: str = "config.json") -> dict:
    """config.json (or the config file `name` a checkpoint format reads) as a dict; a config that asks for remote
    code is refused."""
    file = directory / name
    if not file.exists():
        raise CheckpointError(f"{directory}: no {name}")
    if not file.is_file():
        raise CheckpointError(f"{file}: not a regular file")
    try:
        cfg = json.loads(file.read_text())
    except OSError as e:
        raise CheckpointError(f"{file}: cannot read: {e.strerror or e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
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
