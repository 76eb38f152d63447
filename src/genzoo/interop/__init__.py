"""Checkpoint I/O: `load` and `save` for Hugging Face-format directories and genzoo run directories."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..config import GENRES
from ..errors import CheckpointError, ConfigError
from ..rundir import resolve_checkpoint_dir
from .atomic import atomic_dir, file_mode
from .files import SAFETENSORS, SAFETENSORS_INDEX, read_config, read_weights, weight_bytes
from .formats import FORMATS, CheckpointFormat, KeyMap
from .lora import is_lora, load_adapter, merged, save_adapter
from .meta import assign_weights, empty_parameters
from .schema import check_hf_config, fits_in_memory

__all__ = ["FORMATS", "CheckpointFormat", "KeyMap", "atomic_dir", "check_state", "checked_state", "directory_format",
           "empty_parameters", "load", "load_weights_into", "resolve_checkpoint_dir", "save"]


def tied_parameters(model) -> list[str]:
    """Names under which a model holds a second reference to another parameter (tied embeddings)."""
    return model.tied_parameters() if hasattr(model, "tied_parameters") else []


def directory_format(directory: Path) -> tuple[CheckpointFormat, dict]:
    """The checkpoint format of a model directory and its config: a format with its own config file (GLiNER's
    gliner_config.json) when the directory holds that file, else the format config.json's model_type names."""
    for name in FORMATS.names():
        fmt = FORMATS.get(name)()
        if fmt.config_file != "config.json" and (directory / fmt.config_file).exists():
            return fmt, fmt.read_config(directory)
    hf_config = read_config(directory)
    return format_for(hf_config, directory / "config.json"), hf_config


def format_for(hf_config: dict, file: Path) -> CheckpointFormat:
    model_type = hf_config.get("model_type")
    if model_type is None:
        raise CheckpointError(f"{file}: config.json has no 'model_type'")
    if not isinstance(model_type, str):
        raise ConfigError(f"{file}: config field model_type={model_type!r} is invalid: must be a string")
    if model_type not in FORMATS:
        raise CheckpointError(
            f"{file}: model_type {model_type!r} is not supported; supported: {', '.join(FORMATS.names())}"
        )
    return FORMATS.get(model_type)()


def config_from_file(fmt: CheckpointFormat, hf_config: dict, file: Path):
    """The genzoo config a checkpoint's config.json describes, after the schema check of its fields
    (`schema.check_hf_config`): a missing required field, or a value of the wrong type or range, is a
    ConfigError naming the file and the field, never an exception from inside the format."""
    if fmt.config_file == "config.json":  # a format's own config file (GLiNER's) is checked by that format
        check_hf_config(hf_config, file)
    try:
        return fmt.config_from_hf(hf_config)
    except KeyError as e:
        raise ConfigError(f"{file}: config.json lacks the field {e.args[0]!r}, which a {fmt.model_type!r} checkpoint "
                          "needs") from None
    except ConfigError as e:
        raise ConfigError(f"{file}: {e}") from None
    except CheckpointError as e:  # an option the format refuses: name the file
        raise CheckpointError(str(e) if str(e).startswith(str(file)) else f"{file}: {e}") from None
    except (TypeError, ValueError, AttributeError, ArithmeticError, IndexError) as e:
        raise ConfigError(f"{file}: config.json has a field of the wrong type or range ({type(e).__name__}: {e})"
                          ) from None


def build_empty(config, where):
    """The model of `config` with its parameters on the meta device (`meta.empty_parameters`), after checking that
    it fits in memory; an allocation that still fails (a buffer too large) is a ConfigError."""
    cls = GENRES.get(config.genre)
    try:  # buffers on the CPU even under an ambient meta device (a size probe whose build loads a checkpoint)
        with torch.device("cpu"), empty_parameters():
            return cls(config)
    except (RuntimeError, MemoryError) as e:
        if isinstance(e, RuntimeError) and "alloc" not in str(e):
            raise
        raise ConfigError(f"{where}: the model's config asks for more memory than there is ({str(e)[:200]})") from None


def load(path: str | os.PathLike, *, dtype: torch.dtype | None = None, device: str | torch.device = "cpu",
         allow_nonfinite: bool = False):
    """Load a Hugging Face-format directory, a genzoo run directory or a GGUF file; returns the model in eval mode.

    Loading is strict: tensors the model lacks, tensors the checkpoint lacks and mis-shaped tensors
    raise `CheckpointError`, listing them; so does a tensor whose dtype is of another kind than the model's (an
    integer tensor in place of a floating-point one), and, unless allow_nonfinite=True, a floating-point
    tensor holding NaN or Inf. Before anything is built, config.json's fields are checked (type, range) and the
    size of the model it describes is compared with the memory available (`interop.schema`).

    The model is built with its parameters on the meta device (no allocation, no random initialisation) and
    the checkpoint's tensors become its parameters (`interop.meta`): a safetensors tensor that needs no change
    stays a view of the memory-mapped file (read from disk when first used; training it copies the pages, never
    writes the file), so loading itself adds almost no memory. GPT-2's Conv1D weights stay in their stored
    layout, as transposed views (`train.distributed.wrap` makes them contiguous for DDP/FSDP).
    dtype: floating-point tensors are converted to it one by one as they are read (default: the model's own
    dtype, fp32); device: each tensor is moved there as it is assigned.
    """
    if Path(path).suffix == ".gguf":  # a single GGUF file (interop.gguf)
        from .gguf import load_gguf

        return load_gguf(path, dtype=dtype, device=device, allow_nonfinite=allow_nonfinite)
    directory = resolve_checkpoint_dir(path)
    for name in FORMATS.names():  # a format with a layout of its own (a diffusers pipeline directory)
        if FORMATS.get(name).detect(directory):
            return FORMATS.get(name)().load_directory(directory, dtype=dtype, device=device,
                                                      allow_nonfinite=allow_nonfinite)
    fmt, hf_config = directory_format(directory)
    config_file = directory / fmt.config_file
    config = fmt.read_extras(config_from_file(fmt, hf_config, config_file), directory)
    # weights memory-mapped from the files need no memory of their own: count the files as available
    fits_in_memory(lambda: GENRES.get(config.genre)(config), device=device, dtype=dtype, spare=weight_bytes(directory),
                   where=f"{directory}: ")
    model = build_empty(config, directory)
    floating = {p.dtype for p in model.parameters() if p.is_floating_point()}
    cast = dtype or (floating.pop() if len(floating) == 1 else None)  # read each tensor in the dtype it will have
    state = checked_state(model, directory, fmt, cast, allow_nonfinite)
    assign_weights(model, state, tied_parameters(model), dtype=dtype, device=device, where=directory)
    if dtype is not None:
        model.to(dtype)  # the buffers (parameters already have it)
    attach_tokenizer(model, directory)
    fmt.read_files(model, directory)  # after the generic tokenizer: a format's own files (GLiNER's tokenizer)
    return model.to(device).eval()


def attach_tokenizer(model, directory: Path) -> None:
    """`model.tokenizer`: the directory's tokenizer, when it has one, so that `save` writes it again."""
    if (directory / "tokenizer.json").exists():
        from ..tokenizers import Tokenizer

        model.tokenizer = Tokenizer.from_dir(directory)


def load_weights_into(model, directory: Path, fmt: CheckpointFormat | None = None,
                      allow_nonfinite: bool = False) -> None:
    """Copy `directory`'s weights into the parameters `model` already has, strictly. fmt: the directory's
    checkpoint format, when the caller has already read its config.json. A model with LoRA adapters gets the
    adapter saved beside the weights (`interop.lora`); its base weights are the ones it was built with."""
    if is_lora(model):
        load_adapter(model, directory)
        return
    model.load_state_dict(checked_state(model, directory, fmt, allow_nonfinite=allow_nonfinite), strict=False)


def checked_state(model, directory: Path, fmt: CheckpointFormat | None = None,
                  cast: torch.dtype | None = None, allow_nonfinite: bool = False) -> dict[str, torch.Tensor]:
    """`directory`'s weights as `model`'s state dict (tied names left out), after checking that the keys, shapes
    and dtype kinds are exactly the model's: otherwise CheckpointError lists what is missing, unexpected,
    mis-shaped, mis-typed. cast: floating-point tensors are read in this dtype (`files.read_weights`);
    allow_nonfinite: accept NaN / Inf in floating-point tensors."""
    config = model.config
    if fmt is None:
        fmt = directory_format(directory)[0]
    state, unexpected = fmt.state_from_hf(read_weights(directory, cast, allow_nonfinite), config)
    return check_state(model, state, unexpected, directory)


def check_state(model, state: dict[str, torch.Tensor], unexpected: list[str], where) -> dict[str, torch.Tensor]:
    """`state` (tied names left out) if its keys, shapes and dtype kinds are exactly the model's; otherwise
    CheckpointError lists what is missing, unexpected (with the checkpoint keys no format name reads), mis-shaped,
    mis-typed (an integer tensor in place of a floating-point one)."""
    expected = model.state_dict()
    for name in tied_parameters(model):
        expected.pop(name, None)
        state.pop(name, None)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(unexpected + [k for k in state if k not in expected])
    shapes = sorted(
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    )
    types = sorted(f"{k}: checkpoint {_dtype(v)} vs model {_dtype(expected[k])}"
                   for k, v in state.items() if k in expected and _kind(v) != _kind(expected[k]))
    if missing or unexpected or shapes or types:
        parts = [f"{name} ({len(keys)}): {keys[:20]}" for name, keys in
                 (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes), ("mis-typed", types))
                 if keys]
        raise CheckpointError(f"{where}: checkpoint does not match the model; " + "; ".join(parts))
    return state


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _kind(t: torch.Tensor) -> str:
    """A dtype's kind: a tensor may change precision within its kind on loading (fp32 <-> bf16), never kind."""
    if t.dtype == torch.bool:
        return "bool"
    return "complex" if t.is_complex() else "float" if t.is_floating_point() else "int"


def save(
    model,
    path: str | os.PathLike,
    *,
    format: str | None = None,
    max_shard_bytes: int | None = None,
    extra_files=None,
) -> Path:
    """Write `model` as a Hugging Face-format directory, atomically (temp dir + rename).

    format: a registered checkpoint format (default: the config's `checkpoint_format`).
    max_shard_bytes: split the weights into shards with a `model.safetensors.index.json`.
    extra_files: a callable given the temporary directory, to add files (a tokenizer) before the rename.
    A model's `tokenizer` (set by `load`) is written too; a model with LoRA adapters is written merged, with the
    adapter in `adapter/` (`interop.lora`).
    """
    if is_lora(model):
        def with_adapter(tmp):
            save_adapter(model, tmp)
            if extra_files is not None:
                extra_files(tmp)

        return save(merged(model), path, format=format, max_shard_bytes=max_shard_bytes, extra_files=with_adapter)
    config = model.config
    fmt = FORMATS.get(format or config.checkpoint_format)()
    if fmt.writes_directory:  # a layout of its own (a diffusers pipeline)
        with atomic_dir(Path(path)) as tmp:
            fmt.save_directory(model, tmp)
            if extra_files is not None:
                extra_files(tmp)
        return Path(path)
    hf_config = fmt.config_to_hf(config)
    tied = set(tied_parameters(model))
    state = {k: v for k, v in model.state_dict().items() if k not in tied}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in fmt.state_to_hf(state, config).items()}
    dtype = next(iter(tensors.values())).dtype
    hf_config.setdefault("dtype", str(dtype).removeprefix("torch."))
    path = Path(path)
    with atomic_dir(path) as tmp:
        (tmp / fmt.config_file).write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
        gen = {k: getattr(config, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
               if getattr(config, k, None) is not None}
        if gen:
            (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
        _write_tensors(tmp, tensors, max_shard_bytes)
        if getattr(model, "tokenizer", None) is not None:
            model.tokenizer.save(tmp)
        fmt.write_extras(model, tmp)
        if extra_files is not None:
            extra_files(tmp)
    return path


def _write_tensors(directory: Path, tensors: dict, max_shard_bytes: int | None) -> None:
    meta = {"format": "pt"}
    if not max_shard_bytes:
        save_file(tensors, str(directory / SAFETENSORS), metadata=meta)
        os.chmod(directory / SAFETENSORS, file_mode())  # safetensors writes 0600; the other files get the umask's
        return
    shards, current, size = [], {}, 0
    for k in sorted(tensors):
        n = tensors[k].numel() * tensors[k].element_size()
        if current and size + n > max_shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[k] = tensors[k]
        size += n
    shards.append(current)
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(directory / name), metadata=meta)
        os.chmod(directory / name, file_mode())
        weight_map.update({k: name for k in shard})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / SAFETENSORS_INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
