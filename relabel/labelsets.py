"""Label sets produced here, registered in the harness store so stored runs can be re-scored.

A label set row is ``key, labels, weights`` (the store's ``labels`` table): the sample key,
its valid labels (empty = the sample is left out of scoring, as in real.json) and one
weight per label (the posterior for aggregated labels, the human share for soft labels).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.store import Store


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


def register_label_set(store: Store, name: str, frame: pd.DataFrame, *, dataset: str,
                       description: str, provenance: Mapping) -> dict:
    """Store (or replace) the label set; returns its metadata."""
    store.put_label_set(name, {"dataset": dataset, "description": description,
                               "source": "relabel", **dict(provenance)}, {"labels": frame})
    return store.label_set_meta(name)


def weights_for(labels: Sequence[Sequence[int]], score: Mapping[tuple[int, int], float],
                default: float = 1.0) -> list[list[float]]:
    """Per image i and label l, ``score[(i, l)]`` (e.g. the posterior), else ``default``."""
    return [[float(score.get((i, lab), default)) for lab in labs] for i, labs in enumerate(labels)]


def posterior_lookup(images: np.ndarray, labels: np.ndarray, p: np.ndarray) -> dict:
    return {(int(i), int(lab)): float(v) for i, lab, v in zip(images, labels, p)}
