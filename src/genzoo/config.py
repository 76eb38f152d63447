"""What every model config shares: validation helpers, override with nearest-name errors, and the
preset/genre registries behind `genzoo.build`."""

from __future__ import annotations

import dataclasses
from typing import Any

from .errors import ConfigError
from .registry import Registry, nearest

# preset name -> Preset (a config of its genre that chooses parts)
PRESETS: Registry = Registry("preset")
# genre name -> model class, built as `cls(config)`; `cls.config_class` is its config dataclass
GENRES: Registry = Registry("genre")


class Preset:
    """A named config: the config class and the field values it sets. Derived fields (head_dim, ...)
    are left to the config, so an override of d_model re-derives them."""

    def __init__(self, cls, **fields):
        self.cls, self.fields = cls, fields

    def make(self, **overrides):
        names = {f.name for f in dataclasses.fields(self.cls)}
        for key in overrides:
            if key not in names:
                raise ConfigError(
                    f"unknown config field {key!r} for {self.cls.__name__}{nearest(key, names)}; "
                    f"fields: {', '.join(sorted(names))}"
                )
        return self.cls(**{**self.fields, **overrides})


def check(cond: bool, field: str, value: Any, allowed: str) -> None:
    """Raise ConfigError naming the field, its value and the allowed range unless `cond` holds."""
    if not cond:
        raise ConfigError(f"config field {field}={value!r} is invalid: {allowed}")


def check_positive(config, *fields: str) -> None:
    for f in fields:
        v = getattr(config, f)
        check(isinstance(v, int) and not isinstance(v, bool) and v > 0, f, v, "must be a positive integer")


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def from_dict(cls, data: dict):
    """Build a config from a dict, refusing unknown keys."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config field(s) {unknown} for {cls.__name__}; fields: {', '.join(sorted(names))}")
    return cls(**data)
