"""Label sets produced here, registered in the harness store so stored runs can be re-scored.

A label set row is ``key, labels, weights`` (the store's ``labels`` table): the sample key,
its valid labels (empty = the sample is left out of scoring, as in real.json) and one
weight per label (the posterior for aggregated labels, the human share for soft labels).
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.store import Store, check_identifier


def label_set_frame(keys: Sequence[str], labels: Sequence[Sequence[int]],
                    weights: Sequence[Sequence[float]] | None = None) -> pd.DataFrame:
    if len(keys) != len(labels):
        raise HarnessError(f"{len(keys)} keys but {len(labels)} label lists")
    if weights is None:
        weights = [[1.0] * len(x) for x in labels]
    if len(weights) != len(labels) or any(len(w) != len(x) for w, x in zip(weights, labels)):
        raise HarnessError("weights must give one number per label")
    if len(set(keys)) != len(keys):
        raise HarnessError("label set keys must be unique")
    return pd.DataFrame({"key": list(map(str, keys)),
                         "labels": [[int(v) for v in x] for x in labels],
                         "weights": [[float(v) for v in w] for w in weights]})


def dataset_suite(dataset: str):
    """A classification suite whose sample space is ``dataset``: its ``key_of`` tells a sample
    key, its ``class_index`` and ``num_classes`` the classes."""
    from harness.suites import get_suite, list_suites

    suites = [s for s in list_suites() if s.task == "classification"]
    for suite in suites:
        if suite.dataset == dataset:
            return get_suite(suite.name)
    raise HarnessError(f"unknown dataset {dataset!r} for a label set; expected one of "
                       f"{sorted({s.dataset for s in suites})}")


def check_registration(store: Store, name: str, dataset: str, keys: Iterable[str] | None = None,
                       replace: bool = False) -> None:
    """Refuse, before any work is done, a label set that would replace an existing one (unless
    ``replace``), names an unknown dataset, or has keys that are not that dataset's samples."""
    check_identifier(name, "label set name")
    if store.has_label_set(name) and not replace:
        old = store.label_set_meta(name)
        raise HarnessError(f"label set {name!r} already exists in store {store.root} (dataset "
                           f"{old.get('dataset')}, {old.get('description', 'no description')!r}, created "
                           f"{old.get('created_at', '?')}); pass --replace (replace=True) to replace it")
    suite = dataset_suite(dataset)
    if keys is None:
        return
    unknown = [k for k in dict.fromkeys(map(str, keys)) if suite.key_of(k) != k]
    if unknown:
        hint = ""
        if suite.key_of(unknown[0]):
            hint = f" (file names? the sample key of {unknown[0]!r} is {suite.key_of(unknown[0])!r})"
        raise HarnessError(f"label set {name!r}: {len(unknown):,} key(s) are not samples of dataset {dataset}, "
                           f"e.g. {unknown[:5]}{hint}; expected its sample keys")


def register_label_set(store: Store, name: str, frame: pd.DataFrame, *, dataset: str,
                       description: str, provenance: Mapping, replace: bool = False) -> dict:
    """Store the label set (checked as :func:`check_registration`); returns its metadata."""
    check_registration(store, name, dataset, frame["key"], replace)
    store.put_label_set(name, {"dataset": dataset, "description": description,
                               "source": "relabel", **dict(provenance)}, {"labels": frame})
    return store.label_set_meta(name)


def weights_for(labels: Sequence[Sequence[int]], score: Mapping[tuple[int, int], float],
                default: float = 1.0) -> list[list[float]]:
    """Per image i and label l, ``score[(i, l)]`` (e.g. the posterior), else ``default``."""
    return [[float(score.get((i, lab), default)) for lab in labs] for i, labs in enumerate(labels)]


def posterior_lookup(images: np.ndarray, labels: np.ndarray, p: np.ndarray) -> dict:
    return {(int(i), int(lab)): float(v) for i, lab, v in zip(images, labels, p)}
