"""Accuracy variants for multi-label label sets (ReaL, CIFAR-10H ReaL-style), as pure functions of a
run's ranked classes and a label set's label lists. ``harness.metrics`` registers two of them
(``variable_topk``, ``per_class_top1``), which ``harness.score`` computes from the stored rows in SQL and
:func:`class_average`; these functions are their reference.

- ReaL top-1 (in ``harness.score``): the top-1 class is one of the sample's labels.
- :func:`variable_topk_accuracy` (Anzaku et al. 2024, "variable top-k"): with k the number of valid
  labels of a sample, the sample counts when the run's k best classes are exactly its k labels; on
  single-label samples it is top-1 accuracy.
- :func:`per_class_accuracy` (Vasudevan et al. 2022 report accuracy per class): ReaL top-1 over the
  samples whose labels hold class c, averaged over the classes that have samples, so that large
  classes do not dominate; on single-label sets it is balanced accuracy (mean per-class recall).

Samples with no label (dropped by the raters) count for neither.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import HarnessError


def _check(ranked: Sequence[Sequence[int]], labels: Sequence[Sequence[int]]) -> None:
    if len(ranked) != len(labels):
        raise HarnessError(f"{len(ranked)} ranked predictions but {len(labels)} label lists; expected one "
                           "of each per sample, in the same order")


def variable_topk_correct(ranked: Sequence[Sequence[int]], labels: Sequence[Sequence[int]]) -> np.ndarray:
    """Per labelled sample (in order, unlabelled ones skipped): are its k best classes exactly its k labels?"""
    _check(ranked, labels)
    out = []
    for i, (top, valid) in enumerate(zip(ranked, labels)):
        valid = {int(v) for v in valid}
        if not valid:
            continue
        if len(top) < len(valid):
            raise HarnessError(f"sample {i} has {len(valid)} labels but the run stored only {len(top)} ranked "
                               "classes; variable top-k needs at least as many as the sample has labels")
        out.append({int(c) for c in list(top)[:len(valid)]} == valid)
    return np.array(out, bool)


def variable_topk_accuracy(ranked: Sequence[Sequence[int]], labels: Sequence[Sequence[int]]) -> float:
    correct = variable_topk_correct(ranked, labels)
    return float(correct.mean()) if len(correct) else float("nan")


def per_class_accuracy(top1: Sequence[int], labels: Sequence[Sequence[int]], num_classes: int
                       ) -> tuple[np.ndarray, float]:
    """(ReaL top-1 per class, NaN where no sample holds the class; their mean over the classes with samples)."""
    _check(top1, labels)
    hits, totals = np.zeros(num_classes), np.zeros(num_classes)
    for i, (pred, valid) in enumerate(zip(top1, labels)):
        valid = [int(v) for v in valid]
        if any(v < 0 or v >= num_classes for v in valid):
            raise HarnessError(f"sample {i} has a label outside 0..{num_classes - 1}: {valid}")
        correct = int(pred) in valid
        for v in set(valid):
            totals[v] += 1
            hits[v] += correct
    per_class = np.divide(hits, totals, out=np.full(num_classes, np.nan), where=totals > 0)
    return per_class, float(np.nanmean(per_class)) if (totals > 0).any() else float("nan")


def class_average(values: Sequence[float], labels: Sequence[Sequence[int]]) -> float:
    """The mean of a per-sample value among the samples whose labels hold class c, averaged over the
    classes that have samples (each class of a sample counted once); NaN without labels. With the
    top-1 correctness as ``values`` it is :func:`per_class_accuracy`'s mean."""
    _check(values, labels)
    counts = np.array([len(set(int(v) for v in x)) for x in labels], np.int64)
    if counts.sum() == 0:
        return float("nan")
    classes = np.concatenate([np.unique(np.asarray(x, np.int64)) for x in labels if len(x)])
    sample_values = np.repeat(np.asarray(values, float), counts)
    return float(mean_by_key(classes, sample_values).mean())


def mean_by_key(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The mean of ``values`` per distinct key, in key order."""
    distinct, inverse = np.unique(keys, return_inverse=True)
    return np.bincount(inverse, weights=values) / np.bincount(inverse)
