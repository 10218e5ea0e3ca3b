"""Scores kept, not recomputed: a suite's ``score`` behind the store's stored scores.

A score that takes more than a moment (COCO and LVIS AP, dense-captioning METEOR/CIDEr,
temporal-detection mAP) is stored with its run the first time it is computed and read back
the next time. It is kept per (run, label set asked for, metric version, options): a different
metric version or option is a different entry, computed afresh. When the run or a label set it
was computed from has been rewritten since (a resumed run, a replaced label set), it is computed
again (``Store.get_score``). Classification scores are one SQL query and are
always computed.

``recompute=True`` computes and replaces the stored entry (``harness score --recompute``).
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping

from .store import Store

# Tasks whose scores are stored: everything but classification, which is one query.
STORED_TASKS = ("detection", "dense-captioning", "temporal-detection")


def is_stored(suite) -> bool:
    return getattr(suite, "task", "classification") in STORED_TASKS


def score(store: Store, suite, run_id: str, label_set: str | None = None, recompute: bool = False,
          **options) -> dict:
    """``suite.score(store, run_id, label_set, **options)``, from the store when it was computed before."""
    if not is_stored(suite):
        return suite.score(store, run_id, label_set, **options)
    key = {"suite": suite.name, "label_set": label_set, "metric_version": suite.metric_version,
           "options": _plain(options)}
    if not recompute:
        entry = store.get_score(run_id, key)
        if entry is not None:
            return entry["result"]
    result = _plain(suite.score(store, run_id, label_set, **options))
    store.put_score(run_id, key, {"label_set": result.get("label_set"), "metric_version": suite.metric_version,
                                  "result": result},
                    label_sets=_label_set_names(result.get("label_set") or label_set))
    return result


def score_per_split(store: Store, suite, runs: Mapping[str, str], recompute: bool = False) -> dict:
    """The per-split protocol (``suite.per_split_mean``) over stored per-split scores."""
    parts = {ls: score(store, suite, run_id, ls, recompute=recompute) for ls, run_id in runs.items()}
    return suite.per_split_mean(parts)


def _label_set_names(label_set: str | None) -> list[str]:
    if not label_set:
        return []
    return [n for part in label_set.split("|") for n in part.split("+") if n]


def _plain(value: Any) -> Any:
    """JSON's values (numpy scalars and arrays, tuples made plain) so a stored score reads back equal;
    NaN stays NaN."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array
        return _plain(value.tolist())
    if isinstance(value, float) and math.isnan(value):
        return value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.loads(json.dumps(value, default=str))
