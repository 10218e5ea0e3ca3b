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
    return suite.task in STORED_TASKS


def score(store: Store, suite, run_id: str, label_set: str | None = None, recompute: bool = False,
          **options) -> dict:
    """``suite.score(store, run_id, label_set, **options)``, from the store when it was computed before."""
    if not is_stored(suite):
        return suite.score(store, run_id, label_set, **options)
    key = _key(suite, label_set, options)
    if not recompute:
        entry = store.get_score(run_id, key)
        if entry is not None:
            return entry["result"]
    result = _plain(suite.score(store, run_id, label_set, **options))
    store.put_score(run_id, key, {"label_set": result.get("label_set"), "metric_version": suite.metric_version,
                                  "result": result},
                    label_sets=_label_set_names(result.get("label_set") or label_set))
    return result


def stored_or_quick(store: Store, suite, run_id: str) -> dict | None:
    """A run's score on its suite's default label set when it costs nothing: classification's query, or
    the stored score of the slower tasks (None when it has not been computed yet)."""
    if not is_stored(suite):
        return suite.score(store, run_id)
    entry = store.get_score(run_id, _key(suite, None, {}))
    return entry["result"] if entry is not None else None


def headline(result: dict) -> dict:
    """``n``, ``coverage`` (share of the label set's samples scored), ``label_set``, ``metric`` and ``score``
    of a result, for one line in a listing."""
    out = {"n": result.get("n"), "label_set": result.get("label_set")}
    total = result.get("n_labelled_in_label_set") or result.get("n_images_in_label_set")
    if total:
        out["coverage"] = result["n"] / total
    if "top1" in result:
        out.update(metric="top1", score=result["top1"])
    elif result.get("iou_types"):
        first = result["iou_types"][0]
        out.update(metric=f"{first} AP", score=result[first]["AP"])
    elif "METEOR" in result:
        out.update(metric="METEOR", score=result["METEOR"])
    elif "average_mAP" in result:
        out.update(metric="average mAP", score=result["average_mAP"])
    elif "AUC" in result:
        out.update(metric="AUC", score=result["AUC"])
    return out


def _key(suite, label_set: str | None, options: dict) -> dict:
    return {"suite": suite.name, "label_set": label_set, "metric_version": suite.metric_version,
            "options": _plain(options)}


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
