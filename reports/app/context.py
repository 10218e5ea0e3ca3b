"""What every view shares: the store, the board cache, the open reviews and their reviewers, a memo of what
views read from the store, and the errors a URL can get."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from harness.errors import HarnessError
from harness.store import Store

from .boards import BoardCache
from .classes import class_names
from .raters import RealRaters

STATE_TTL_S = 1.0  # how long the store's state is trusted before it is read again


class NotFound(HarnessError):
    """A URL naming something the store does not hold (answered 404)."""


class Forbidden(HarnessError):
    """A write without a reviewer's token, or from another site (answered 403)."""


def _status(store: Store, run_id: str) -> str | None:
    try:
        return store.run_meta(run_id).get("status")
    except HarnessError:  # a run folder being claimed has no run.json yet
        return None


def store_state(store: Store) -> tuple:
    """What a view's memo depends on: the runs (id and status, from run.json alone: a review run's many answer
    chunks are not opened) and the label sets (name and creation time)."""
    runs = tuple((run_id, _status(store, run_id)) for run_id in store.run_ids())
    label_sets = tuple(sorted((m["name"], m.get("created_at")) for m in store.list_label_sets()))
    return runs, label_sets


@dataclass
class Context:
    store: Store
    boards: BoardCache
    reviews: dict = field(default_factory=dict)  # ranking -> reports.app.review.Review
    reviewers: dict = field(default_factory=dict)  # token -> reviewer name
    real_raters: RealRaters = field(default_factory=RealRaters)  # ReaL's raw answers, loaded when first asked

    def __post_init__(self):
        self._lock = threading.Lock()
        self._state: tuple[float, tuple] | None = None
        self._refreshing = False
        self._memo: dict[Any, tuple[tuple, Any]] = {}

    def state(self) -> tuple:
        """The store's state. Read once, then again in the background when a second old, so that no request
        waits for it (a page may be a second or two behind the store)."""
        with self._lock:
            known = self._state
            refresh = known is not None and time.monotonic() - known[0] >= STATE_TTL_S and not self._refreshing
            if refresh:
                self._refreshing = True
        if known is None:
            return self._read_state()
        if refresh:
            threading.Thread(target=self._read_state, daemon=True).start()
        return known[1]

    def _read_state(self) -> tuple:
        try:
            state = store_state(self.store)
            with self._lock:
                self._state = (time.monotonic(), state)
            return state
        finally:
            with self._lock:
                self._refreshing = False

    def class_names(self, dataset: str) -> dict[int, str]:
        return self.memo(("classes", dataset), lambda: class_names(self.store, dataset))

    def memo(self, key, build: Callable[[], Any]):
        """``build()``, kept while the store's state stays the same."""
        state = self.state()
        with self._lock:
            hit = self._memo.get(key)
        if hit is not None and hit[0] == state:
            return hit[1]
        value = build()
        with self._lock:
            self._memo[key] = (state, value)
        return value
