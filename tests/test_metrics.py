"""The metric registry: names, versions, the one "cannot give this metric" rule, and what follows from it."""
from __future__ import annotations

import pandas as pd
import pytest

from harness.data import resolve_file
from harness.errors import HarnessError
from harness.metrics import METRICS, classes_kept, get_metric, leaderboard_metrics, metric_versions, metrics_for
from harness.suites import TASKS, get_suite


def test_every_task_has_versioned_metrics_and_the_modules_record_those_versions():
    from harness import score
    from harness.activitynet import densevid, temporal
    from harness.activitynet.suites import ANET_CAPTIONS, ANET_DETECTION
    from harness.cifar import SOFT_METRIC_VERSION
    from harness.detection.suite import COCO, LVIS

    assert all(metrics_for(task) for task in TASKS)
    assert metric_versions(["top1", "top5", "human_agreement", "coco_ap", "lvis_ap", "METEOR", "average_mAP"]) == {
        "top1": score.METRIC_VERSION, "top5": score.METRIC_VERSION, "human_agreement": SOFT_METRIC_VERSION,
        "coco_ap": COCO.metric_version, "lvis_ap": LVIS.metric_version, "METEOR": ANET_CAPTIONS.metric_version,
        "average_mAP": ANET_DETECTION.metric_version}
    assert [m.name for m in metrics_for("dense-captioning")] == list(densevid.METRICS)
    assert get_metric("AUC").version == temporal.METRIC_VERSION
    assert all(m.version and m.label and m.needs and ":" in m.compute for m in METRICS)
    with pytest.raises(HarnessError, match=r"unknown metric 'top-5'; did you mean 'top5'"):
        get_metric("top-5")


def test_one_rule_for_a_metric_a_run_cannot_give():
    top5, pred2, human = get_metric("top5"), get_metric("pred2_in_labels"), get_metric("human_agreement")
    assert top5.available(5) and not top5.available(4) and not top5.available(0)
    assert pred2.available(3, multi_label=True) and not pred2.available(3) and not pred2.available(2, True)
    assert human.available(1, soft_labels=True) and not human.available(5)
    assert classes_kept([5, 10, 7]) == 5 and classes_kept([]) == 0 and classes_kept([5, None]) == 0
    assert classes_kept([5.0, float("nan")]) == 0
    # An error row's count read from DuckDB into pandas' nullable integers is NA
    assert classes_kept(pd.Series([5, None], dtype="Int64")) == 0 and classes_kept(pd.Series([5, 7], dtype="Int64")) == 5


def test_scoring_and_leaderboard_columns_follow_the_registry(store):
    from reports.spec import COLUMNS, METRICS

    assert [m.name for m in leaderboard_metrics()] == ["top1", "top5"] == list(METRICS)
    assert [c for c in COLUMNS if c.endswith("_top5")] == ["relabelled_top5", "reference_top5"]
    # A file of one class per image cannot give top-5; probabilities over the 10 classes keep five per image.
    cifar10 = get_suite("cifar10")
    top1_only = cifar10.import_predictions(store, resolve_file(*cifar10.example), "r56")
    probabilities = cifar10.import_predictions(store, resolve_file("cifar10-test", "cifar/cifar10_test_pyx.npy"), "cv")
    assert "top5" not in cifar10.score(store, top1_only)
    scored = cifar10.score(store, probabilities)
    assert 0 < scored["top1"] < scored["top5"] <= 1
    assert "pred2_in_labels" not in scored  # single-label set: 2nd/3rd in labels is left out
