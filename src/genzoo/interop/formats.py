"""Checkpoint formats: how a genzoo config and state dict are written as (and read from) a Hugging Face
directory of one architecture. A format is registered under the `model_type` it reads; a config names
the format it saves as (`checkpoint_format`).

`KeyMap` states a key renaming once, as pairs of patterns, and applies it both ways: ``{i}`` stands for
a layer index and ``{p}`` for ``weight`` or ``bias``.
"""

from __future__ import annotations

import re

import torch

from ..config import GENRES, from_dict, to_dict
from ..errors import CheckpointError, ConfigError
from ..registry import Registry

FORMATS: Registry = Registry("checkpoint format")

_SLOTS = {"i": r"(?P<i>\d+)", "p": r"(?P<p>weight|bias)", "n": r"(?P<n>\d+)"}


def _compile(pattern: str) -> re.Pattern:
    out = re.escape(pattern)
    for slot, rx in _SLOTS.items():
        out = out.replace(re.escape("{" + slot + "}"), rx)
    return re.compile(out + "$")


class KeyMap:
    """Bidirectional renaming between genzoo keys and checkpoint keys."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self.pairs = [(g, h, _compile(g), _compile(h)) for g, h in pairs]

    @staticmethod
    def _apply(key: str, rules) -> str | None:
        for src, dst in rules:
            m = src.match(key)
            if m:
                return dst.format(**m.groupdict())
        return None

    def to_genzoo(self, key: str) -> str | None:
        return self._apply(key, [(hr, g) for g, h, gr, hr in self.pairs])

    def to_hf(self, key: str) -> str | None:
        return self._apply(key, [(gr, h) for g, h, gr, hr in self.pairs])

    def rename_in(self, tensors: dict) -> tuple[dict, list[str]]:
        """Checkpoint tensors -> (genzoo state, checkpoint keys with no genzoo counterpart)."""
        state, unexpected = {}, []
        for k, v in tensors.items():
            g = self.to_genzoo(k)
            (unexpected.append(k) if g is None else state.__setitem__(g, v))
        return state, unexpected

    def rename_out(self, state: dict) -> dict:
        out = {}
        for k, v in state.items():
            h = self.to_hf(k)
            if h is None:
                raise CheckpointError(f"no checkpoint name for genzoo parameter {k!r}")
            out[h] = v
        return out


def split_fused(tensors: dict, fused: str, parts: list[str], sizes: list[int] | None = None) -> dict:
    """Keys containing `fused` (e.g. "attn.Wqkv") are split along dim 0 into `parts` (equal pieces, or
    `sizes`), each named by putting that part in place of `fused`. The pieces are views of the fused tensor
    (no copy: a memory-mapped checkpoint stays mapped)."""
    out = {}
    for k, v in tensors.items():
        if fused in k:
            pieces = v.split(sizes, dim=0) if sizes else v.chunk(len(parts), dim=0)
            out.update({k.replace(fused, p): t for p, t in zip(parts, pieces)})
        else:
            out[k] = v
    return out


def merge_fused(tensors: dict, fused: str, parts: list[str]) -> dict:
    """The inverse of `split_fused`: the `parts` of each key are concatenated back under `fused`."""
    out, first = {}, parts[0]
    for k, v in tensors.items():
        if first in k:
            out[k.replace(first, fused)] = torch.cat([tensors[k.replace(first, p)] for p in parts], dim=0)
        elif not any(p in k for p in parts[1:]):
            out[k] = v
    return out


class CheckpointFormat:
    """Subclasses set `model_type` and implement the four conversions. A format whose directories name their
    architecture in another file than config.json sets `config_file` (`interop.directory_format` recognises a
    directory by it); one whose tokenizer is not the generic one implements `read_files` (`save` writes any
    `model.tokenizer` with its own `save`)."""

    model_type: str = ""
    config_file: str = "config.json"

    def read_config(self, directory) -> dict:
        """The directory's `config_file` as a dict (remote code refused, `files.read_config`)."""
        from .files import read_config

        return read_config(directory, self.config_file)

    def read_files(self, model, directory) -> None:
        """After the weights are loaded: read what else the directory holds for the model (default: nothing)."""

    def config_from_hf(self, hf: dict):
        raise NotImplementedError

    def config_to_hf(self, config) -> dict:
        raise NotImplementedError

    def state_from_hf(self, tensors: dict[str, torch.Tensor], config) -> tuple[dict, list[str]]:
        """-> (genzoo state dict, unexpected checkpoint keys)."""
        raise NotImplementedError

    def state_to_hf(self, state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # optional: files beside config.json that carry settings of their own (sentence-transformers modules)
    def read_extras(self, config, directory):
        """The config completed from the directory's other files (default: as it is)."""
        return config

    def write_extras(self, model, directory) -> None:
        """Write the files `read_extras` reads (default: none)."""

    # optional: a format with a directory layout of its own (diffusers pipelines), read and written whole
    @classmethod
    def detect(cls, directory) -> bool:
        """True when `directory` is in this format's own layout (then `load_directory` reads it)."""
        return False

    writes_directory = False  # True: `save_directory(model, tmp)` writes the whole directory

    def load_directory(self, directory, *, dtype=None, device="cpu", allow_nonfinite=False):
        """The model in `directory` (this format's layout), checked as `interop.load` checks an HF directory."""
        raise NotImplementedError

    def save_directory(self, model, directory) -> None:
        raise NotImplementedError


def require(config, field: str, ok: bool, fmt: str, allowed: str) -> None:
    """A config field the target format cannot express is an error, never a silent change."""
    if not ok:
        raise ConfigError(
            f"config field {field}={getattr(config, field)!r} cannot be written as a {fmt!r} checkpoint "
            f"({allowed}); save with format='genzoo' instead"
        )


@FORMATS.register("genzoo")
class GenzooFormat(CheckpointFormat):
    """genzoo's own format for any model: the config dataclass as JSON, the state dict as it is."""

    model_type = "genzoo"

    def config_from_hf(self, hf: dict):
        try:
            genre, fields = hf["genre"], hf["genzoo_config"]
        except KeyError as e:
            raise CheckpointError(f"genzoo config.json lacks {e}") from None
        return from_dict(GENRES.get(genre).config_class, fields)

    def config_to_hf(self, config) -> dict:
        return {"model_type": "genzoo", "genre": config.genre, "genzoo_config": to_dict(config)}

    def state_from_hf(self, tensors, config):
        return dict(tensors), []

    def state_to_hf(self, state, config):
        return dict(state)
