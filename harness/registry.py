"""A registry of named things (suites, metrics), as lm-evaluation-harness's ``Registry``.

An entry is declared data: its name and whatever a listing needs, plus where the object lives as
``"module:attribute"``, imported on first use. Listing therefore imports nothing but this package's
light modules; an unknown name is refused with the names that come closest.
"""
from __future__ import annotations

import fnmatch
import importlib
from typing import Generic, Iterator, TypeVar

from .errors import HarnessError, did_you_mean

T = TypeVar("T")


def load_object(target: str):
    """The object a ``"module:attribute"`` string names (``attribute`` may be dotted)."""
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise HarnessError(f"{target!r} is not 'module:attribute'")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Entries by name, in registration order; ``what`` names the kind in errors ("suite", "metric")."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise HarnessError(f"{self.what} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching an fnmatch ``pattern`` (``"cifar*"``)."""
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise HarnessError(f"unknown {self.what} {name!r}{did_you_mean(str(name), self.names())} (known "
                               f"{self.what}s: {', '.join(self.names())})") from None
