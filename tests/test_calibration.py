"""Per-class accuracy, confusion matrix and calibration on shipped runs, checked against scikit-learn and an
independent computation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix, recall_score

from harness import calibration
from harness.errors import HarnessError
from harness.suites import get_suite

R56 = "cifar/cifar10_1_model_predictions/original_predictions/resnet_basic_56_predictions.json"


def test_per_class_accuracy_and_confusion_of_resnet56_on_cifar10(store, shared_data):
    cifar = get_suite("cifar10")
    cifar.ensure_label_sets(store)
    run_id = cifar.import_predictions(store, shared_data / R56, "r56")
    rows = calibration.run_arrays(store, run_id, "cifar10-original")
    truth = np.load(shared_data / "cifar/cifar10_test_labels.npy")
    assert len(rows["y_true"]) == 10_000 and (rows["y_true"] == truth[rows["key"].astype(int)]).all()
    table = calibration.per_class_accuracy(rows["y_true"], rows["y_pred"], 10)
    theirs = recall_score(truth, np.asarray(__import__("json").loads((shared_data / R56).read_text())), average=None)
    assert table["accuracy"].tolist() == pytest.approx(theirs.tolist(), abs=0)
    assert table["n"].tolist() == [1000] * 10
    assert (table["correct"].sum() / 10_000) == pytest.approx(cifar.score(store, run_id)["top1"], abs=0)
    matrix = calibration.confusion(rows["y_true"], rows["y_pred"], 10)
    assert (matrix == confusion_matrix(rows["y_true"], rows["y_pred"])).all() and matrix.sum() == 10_000


def test_calibration_of_resnet50_top1_probabilities(store, shared_data):
    real = get_suite("real")
    get_suite("imagenet").ensure_label_sets(store)
    run_id = real.import_predictions(store, shared_data / "imagenet/model_predictions/ResNet50.csv", "ResNet50")
    rows = calibration.run_arrays(store, run_id, "imagenet-original")
    assert len(rows["key"]) == 50_000 and not np.isnan(rows["confidence"]).any()
    correct = rows["y_true"] == rows["y_pred"]
    assert correct.mean() == pytest.approx(0.7613, abs=5e-5)
    ece = calibration.expected_calibration_error(rows["confidence"], correct)
    # Independently: scikit-learn's per-bin means (uniform bins, empty ones dropped) weighted by np.histogram counts.
    prob_true, prob_pred = calibration_curve(correct, rows["confidence"], n_bins=calibration.N_BINS)
    counts, _ = np.histogram(rows["confidence"], bins=np.linspace(0, 1, calibration.N_BINS + 1))
    counts = counts[counts > 0]
    assert ece == pytest.approx(float((counts / counts.sum() * np.abs(prob_true - prob_pred)).sum()), rel=1e-9)
    assert 0 < ece < 0.2
    bins = calibration.reliability(rows["confidence"], correct)
    assert bins["n"].sum() == 50_000
    png = calibration.reliability_diagram(bins, "ResNet50 on imagenet-original")
    assert png.startswith(b"\x89PNG") and png == calibration.reliability_diagram(bins, "ResNet50 on imagenet-original")
    with pytest.raises(HarnessError, match="confidences must be probabilities"):
        calibration.reliability(rows["confidence"] * 2, correct)


def test_nll_and_brier_of_the_shipped_cross_validated_probabilities(shared_data):
    pyx = np.load(shared_data / "cifar/cifar10_test_pyx.npy").astype(np.float64)
    truth = np.load(shared_data / "cifar/cifar10_test_labels.npy")
    pyx = pyx / pyx.sum(axis=1, keepdims=True)
    p_true = np.clip(pyx[np.arange(len(truth)), truth], np.finfo(np.float64).eps, 1)
    assert calibration.negative_log_likelihood(truth, pyx) == pytest.approx(-np.log(p_true).mean(), rel=1e-9)
    brier = calibration.brier_score(truth, pyx)
    assert brier == pytest.approx(float(pd.DataFrame(pyx).sub(np.eye(10)[truth]).pow(2).sum(axis=1).mean()), rel=1e-12)
    assert 0 < brier < 2
