"""harness.calibration: reliability bins are numpy.histogram's (values on the edges included), the error
measures by hand and on random inputs, per-class counts by hand."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.calibration import (brier_score, expected_calibration_error, negative_log_likelihood,
                                 per_class_accuracy, reliability)
from harness.errors import HarnessError

PROPS = settings(max_examples=40, deadline=None, database=None, derandomize=True)


@st.composite
def confidences(draw):
    n_bins = draw(st.integers(1, 20))
    on_edges = st.integers(0, n_bins).map(lambda k: k / n_bins)
    anywhere = st.floats(0, 1, allow_nan=False)
    values = draw(st.lists(st.one_of(on_edges, anywhere), min_size=1, max_size=60))
    correct = draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values)))
    return n_bins, np.array(values), np.array(correct)


@PROPS
@given(data=confidences())
def test_reliability_bins_are_numpy_histograms(data):
    n_bins, conf, correct = data
    bins = reliability(conf, correct, n_bins)
    counts, edges = np.histogram(conf, bins=n_bins, range=(0.0, 1.0))
    assert bins["n"].tolist() == counts.tolist()
    assert np.allclose(bins["low"], edges[:-1]) and np.allclose(bins["high"], edges[1:])
    sums, _ = np.histogram(conf, bins=n_bins, range=(0.0, 1.0), weights=correct.astype(float))
    used = counts > 0
    assert np.allclose(bins["accuracy"][used], sums[used] / counts[used])
    assert bins["accuracy"][~used].isna().all() and bins["confidence"][~used].isna().all()
    ece = sum(c / len(conf) * abs(a - m) for c, a, m in zip(counts, bins["accuracy"], bins["confidence"]) if c)
    assert expected_calibration_error(conf, correct, n_bins) == pytest.approx(ece, abs=1e-12)


def test_reliability_by_hand_at_the_edges():
    bins = reliability([0.0, 0.5, 0.5, 0.75, 1.0, 0.25], [1, 0, 1, 1, 1, 0], n_bins=4)
    # [0, .25): 0.0; [.25, .5): 0.25; [.5, .75): 0.5, 0.5; [.75, 1]: 0.75, 1.0 (the last bin is closed)
    assert bins["n"].tolist() == [1, 1, 2, 2]
    assert bins["accuracy"].tolist() == [1.0, 0.0, 0.5, 1.0]
    assert bins["confidence"].tolist() == [0.0, 0.25, 0.5, 0.875]
    assert expected_calibration_error([0.0, 0.5, 0.5, 0.75, 1.0, 0.25], [1, 0, 1, 1, 1, 0], n_bins=4) == \
        pytest.approx((1 * 1 + 1 * 0.25 + 2 * 0 + 2 * 0.125) / 6)
    with pytest.raises(HarnessError, match="confidences must be probabilities in \\[0, 1\\]"):
        reliability([0.5, 1.5], [1, 0])
    with pytest.raises(HarnessError, match="correct has 1 entries for 2 samples"):
        reliability([0.5, 0.5], [1])


@PROPS
@given(data=st.data(), n_classes=st.integers(2, 6))
def test_nll_and_brier_by_hand_on_random_probabilities(data, n_classes):
    n = data.draw(st.integers(1, 20))
    raw = np.array(data.draw(st.lists(st.lists(st.floats(0.01, 1), min_size=n_classes, max_size=n_classes),
                                      min_size=n, max_size=n)))
    p = raw / raw.sum(1, keepdims=True)
    y = np.array(data.draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)))
    assert negative_log_likelihood(y, p) == pytest.approx(-np.mean(np.log(p[np.arange(n), y])))
    onehot = np.eye(n_classes)[y]
    assert brier_score(y, p) == pytest.approx(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def test_per_class_accuracy_by_hand_with_an_empty_class():
    frame = per_class_accuracy([0, 0, 1, 1, 1, 3], [0, 1, 1, 1, 0, 3], n_classes=4)
    assert frame["n"].tolist() == [2, 3, 0, 1] and frame["correct"].tolist() == [1, 2, 0, 1]
    assert frame["accuracy"][[0, 1, 3]].tolist() == pytest.approx([0.5, 2 / 3, 1.0]) and np.isnan(frame["accuracy"][2])
