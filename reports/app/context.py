"""What every view shares: the store, the board cache, and the error a URL naming nothing gets."""
from __future__ import annotations

from dataclasses import dataclass

from harness.errors import HarnessError
from harness.store import Store

from .boards import BoardCache


class NotFound(HarnessError):
    """A URL naming something the store does not hold (answered 404)."""


@dataclass
class Context:
    store: Store
    boards: BoardCache
