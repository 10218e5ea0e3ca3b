"""Reading a user's JSON file for an importer: every way valid JSON can still break Python is one HarnessError.

Python's ``json`` reads integers of any length, but one beyond a float's range makes ``float()``
and ``math.isfinite`` raise OverflowError, and one beyond Python's digit limit raises ValueError;
arrays or objects nested thousands deep raise RecursionError.  Such a file is refused here, so
importers only ever check numbers that convert.
"""
from __future__ import annotations

import json
import math
from numbers import Real
from pathlib import Path
from typing import Any

from .errors import HarnessError


class _RepeatedKey(Exception):
    def __init__(self, key: str):
        self.key = key


def _object(pairs: list) -> dict:
    """A JSON object whose keys are each given once: a repeated key would silently drop a value."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        raise _RepeatedKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return obj


class _Unconvertible:
    """An integer literal that no float can hold, kept as its text to report it."""

    def __init__(self, text: str):
        self.text = text


def read_json(path: str | Path, what: str) -> Any:
    """The parsed content of ``path``; ``what`` names the file's role in the messages (``"COCO results"``)."""
    path = Path(path)
    unconvertible = []  # their texts, while parsing

    def parse_int(text: str):
        if len(text) < 300:  # |n| < 1e299: any float holds it
            return int(text)
        try:
            value = int(text)
            float(value)
            return value
        except (OverflowError, ValueError):
            unconvertible.append(text)
            return _Unconvertible(text)

    try:
        with open(path, "rb") as f:
            data = json.load(f, parse_int=parse_int, object_pairs_hook=_object)
    except FileNotFoundError:
        raise HarnessError(f"{what} {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{what} {path} is not valid JSON ({exc})") from None
    except _RepeatedKey as exc:
        raise HarnessError(f"{what} {path} gives the key {exc.key[:80]!r} twice in one object; JSON readers keep "
                           "only the last value, so the other would be lost without a word: expected each key "
                           "once. Nothing was stored.") from None
    except RecursionError:
        raise HarnessError(f"{what} {path} is nested too deeply to read (arrays or objects thousands of levels "
                           "deep); expected a JSON file of the documented shape") from None
    found = _unconvertible(data) if unconvertible else []  # a repeated key may have replaced them all
    if found:
        where, text = found[0]
        raise HarnessError(f"{what} {path} holds {len(found)} integer(s) too large for a float; the first "
                           f"is {where or 'the whole file'}: {text[:12]}... ({len(text.lstrip('-'))} digits); "
                           "expected finite numbers. Nothing was stored.")
    return data


def _unconvertible(data) -> list[tuple[str, str]]:
    """Location (``["results"]["v_1"][0]["timestamp"][1]``) and text of every unconvertible number, in file order."""
    found, stack = [], [(data, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, _Unconvertible):
            found.append((where, value.text))
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        stack.extend((v, f"{where}[{json.dumps(k)}]") for k, v in reversed(list(items)))
    return found


def is_finite_number(v) -> bool:
    """A JSON number (not a bool) that converts to a finite float."""
    if not isinstance(v, Real) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False
