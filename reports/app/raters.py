"""The raw human answers behind ReaL (``raters.npz``: 85 raters, 184,962 (image, label) questions, yes / maybe
/ no), for the sample page. Loading them takes tens of seconds, so it happens once, in the background, when a
sample page first asks; until then the page says so."""
from __future__ import annotations

import threading

import numpy as np
import pandas as pd

from relabel.ratings import Ratings

LOADING, FAILED = "loading", "failed"


def answers_by_key(ratings: Ratings) -> tuple[np.ndarray, pd.DataFrame]:
    """(sorted sample keys, their answers ``key, rater, label, answer`` in the same order): a key's answers are
    the rows between ``searchsorted`` left and right. File names lose their extension (keys do not have one)."""
    long = ratings.to_long()
    long["key"] = long["key"].astype(str).str.replace(r"\.[A-Za-z]+$", "", regex=True)
    long = long.sort_values(["key", "label", "rater"], kind="stable").reset_index(drop=True)
    return long["key"].to_numpy(), long[["key", "rater", "label", "answer"]]


def answers_of(index: tuple[np.ndarray, pd.DataFrame], key: str) -> pd.DataFrame:
    keys, rows = index
    return rows.iloc[np.searchsorted(keys, key, "left"):np.searchsorted(keys, key, "right")]


class RealRaters:
    """The answers, loaded on first request in a thread; ``get()`` is the index, LOADING or FAILED."""

    def __init__(self):
        self._lock = threading.Lock()
        self._value = None
        self.error = ""

    def get(self):
        with self._lock:
            if self._value is None:
                self._value = LOADING
                threading.Thread(target=self._load, daemon=True).start()
            return self._value

    def _load(self) -> None:
        try:
            from relabel.real import load_real_data

            value = answers_by_key(load_real_data().ratings)
        except Exception as exc:  # noqa: BLE001  (a page says why; the rest of the app goes on)
            self.error, value = str(exc), FAILED
        with self._lock:
            self._value = value
