"""harness.metrics: the availability rule as a table of cases, the classes a run keeps, the registry."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.errors import HarnessError
from harness.metrics import (classes_kept, get_metric, leaderboard_metrics, metric_versions, metrics_for,
                             unknown_count)


@pytest.mark.parametrize("name,classes,multi_label,soft,available", [
    ("top1", 1, False, False, True),
    ("top1", 0, False, False, False),  # no sample, or an unknown count
    ("top5", 4, False, False, False),
    ("top5", 5, False, False, True),
    ("top5", 5, True, True, True),
    ("pred2_in_labels", 3, True, False, True),
    ("pred2_in_labels", 2, True, False, False),
    ("pred2_in_labels", 3, False, False, False),  # one label per sample
    ("pred3_in_labels", 3, True, False, True),
    ("pred3_in_labels", 5, False, True, False),
    ("human_agreement", 1, False, True, True),
    ("human_agreement", 10, True, False, False),  # no weights
])
def test_which_metric_a_run_can_give(name, classes, multi_label, soft, available):
    assert get_metric(name).available(classes, multi_label=multi_label, soft_labels=soft) is available


@pytest.mark.parametrize("counts,kept", [
    ([5, 5, 5], 5),
    ([5, 1, 5], 1),
    ([3], 3),
    ([], 0),
    ([5, None, 5], 0),
    ([5, float("nan")], 0),
    (pd.array([5, pd.NA, 5], dtype="Int64"), 0),  # an error row read into a nullable integer column
    (pd.array([5, 3], dtype="Int64"), 3),
    (np.array([10, 10, 2]), 2),
])
def test_classes_kept_is_the_fewest_and_unknown_is_none(counts, kept):
    assert classes_kept(counts) == kept and isinstance(classes_kept(counts), int)


@pytest.mark.parametrize("value,unknown", [(None, True), (float("nan"), True), (pd.NA, True), (np.nan, True),
                                           (0, False), (5, False), (np.int64(3), False)])
def test_unknown_count(value, unknown):
    assert unknown_count(value) is unknown


def test_registry_lists_and_versions():
    names = [m.name for m in leaderboard_metrics()]
    assert names[0] == "top1" and "top5" in names
    assert "human_agreement" not in names and "pred2_in_labels" not in names  # not per-sample right/wrong on any set
    assert all(m.column for m in leaderboard_metrics())
    assert {m.name for m in metrics_for("temporal-detection")} == {"average_mAP", "AUC"}
    assert len(metrics_for("dense-captioning")) == 7
    assert metric_versions(["top1", "coco_ap"]) == {"top1": "classification-1", "coco_ap": "coco-1"}
    with pytest.raises(HarnessError, match="unknown metric 'top6'"):
        get_metric("top6")
