"""Name -> factory registries. Configs hold names; a registry resolves them (DESIGN.md, principle 1)."""

from __future__ import annotations

import difflib
from typing import Generic, Iterator, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def nearest(name: str, choices) -> str:
    """A ' (did you mean ...?)' hint naming the closest choices, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


class Registry(Generic[T]):
    """A named table of parts; `get` on an unknown name raises ConfigError listing what exists."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T | None = None):
        """Register `item` under `name`; usable as a decorator when `item` is omitted."""

        def add(obj: T) -> T:
            if name in self._items:
                raise ConfigError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add(item) if item is not None else add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}{nearest(str(name), self._items)}; "
                f"known: {', '.join(sorted(self._items))}"
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)
