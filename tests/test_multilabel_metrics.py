"""The multi-label accuracies as registered metrics: scoring a stored run gives what the pure functions
of harness.multilabel give on the raw files."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from harness.metrics import get_metric, leaderboard_metrics
from harness.multilabel import per_class_accuracy, variable_topk_accuracy
from harness.suites import get_suite


def test_registered_with_the_one_rule():
    vk, pc = get_metric("variable_topk"), get_metric("per_class_top1")
    assert vk.available(5, multi_label=True) and not vk.available(1, multi_label=True) and not vk.available(5)
    assert pc.available(1, multi_label=True) and not pc.available(5)
    assert vk.version == pc.version == "multilabel-1" and pc.average == "classes"
    assert "variable_topk" not in [m.name for m in leaderboard_metrics()]


def test_cifar10h_real_variable_topk_and_per_class(store, shared_data):
    """The cross-validated probabilities (ranked classes) scored on the CIFAR-10H ReaL-style labels."""
    from reports.shipped import register_cifar10h_real
    from relabel.cifar import cifar10h_counts, label_sets

    cifar10 = get_suite("cifar10")
    pyx_path = shared_data / "cifar/cifar10_test_pyx.npy"
    run = cifar10.import_predictions(store, pyx_path, "cv")
    register_cifar10h_real(store)
    scored = cifar10.score(store, run, "cifar10h-real")
    labels, _ = label_sets(cifar10h_counts(), 0.2)
    ranked = np.argsort(-np.load(pyx_path), axis=1, kind="stable")
    assert scored["variable_topk"] == pytest.approx(variable_topk_accuracy(ranked, labels), abs=1e-12)
    assert scored["per_class_top1"] == pytest.approx(per_class_accuracy(ranked[:, 0], labels, 10)[1], abs=1e-12)
    assert scored["variable_topk"] < scored["top1"]   # it asks for every label of a multi-label image
    assert "variable_topk" not in cifar10.score(store, run, "cifar10-original")  # single-label: left out


def test_real_per_class_top1_of_a_top1_file(store, shared_data):
    """A top-1 file on ReaL gives the per-class average but not variable top-k (too few classes kept)."""
    real = get_suite("real")
    path = shared_data / "imagenet/model_predictions/ViT.csv"
    scored = real.score(store, real.import_predictions(store, path, "ViT"))
    assert "variable_topk" not in scored
    labels = json.loads((shared_data / "imagenet/real.json").read_text())
    pred = pd.read_csv(path)
    pred.index = pred.file_name.str[15:23].astype(int) - 1
    top1 = pred.predicted_class.sort_index().to_numpy()
    expected = per_class_accuracy(top1, labels, 1000)[1]
    assert scored["per_class_top1"] == pytest.approx(expected, abs=1e-12)
    assert round(100 * scored["per_class_top1"], 2) != round(100 * scored["top1"], 2)
