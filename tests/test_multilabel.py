"""Multi-label accuracy variants on real data: the cross-validated CIFAR-10 model (top-5 stored) on
the original labels and on ReaL-style CIFAR-10H sets (every class >= 20% / 10% of ~51 annotators)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from harness import cifar
from harness.data import resolve_file
from harness.errors import HarnessError
from harness.multilabel import per_class_accuracy, variable_topk_accuracy, variable_topk_correct
from relabel.cifar import label_sets


@pytest.fixture(scope="module")
def ranked(shared_data):
    """The run's top-5 classes per test image, from the stored import of cifar10_test_pyx.npy."""
    from harness.store import Store
    from harness.suites import get_suite
    import tempfile

    store = Store(tempfile.mkdtemp(prefix="multilabel-"))
    run = get_suite("cifar10").import_predictions(
        store, resolve_file(cifar.CIFAR10_TEST, "cifar/cifar10_test_pyx.npy"), "label_errors_cv")
    rows = store.sql("SELECT key, top_classes FROM predictions WHERE run_id = ?", [run])
    order = rows["key"].astype(int).to_numpy().argsort()
    return [list(rows["top_classes"][i]) for i in order]


def test_single_label_sets_reduce_to_top1_and_balanced_accuracy(ranked):
    original = cifar.cifar10_labels()
    top1 = np.array([r[0] for r in ranked])
    labels = [[int(c)] for c in original]
    assert variable_topk_accuracy(ranked, labels) == pytest.approx(np.mean(top1 == original), abs=0)
    per_class, mean = per_class_accuracy(top1, labels, 10)
    assert mean == pytest.approx(balanced_accuracy_score(original, top1), rel=1e-12)
    assert np.allclose(per_class, [np.mean(top1[original == c] == c) for c in range(10)])


def test_variable_topk_on_cifar10h_sets(ranked):
    counts = cifar.cifar10h_counts()
    top1 = np.array([r[0] for r in ranked])
    for share in (0.2, 0.1):
        labels, _ = label_sets(counts, share)
        sizes = np.array([len(x) for x in labels])
        correct = variable_topk_correct(ranked, labels)
        assert len(correct) == int((sizes > 0).sum())
        # computed independently: the k best classes as a sorted list against the sorted labels
        expected = [sorted(r[:len(x)]) == sorted(x) for r, x in zip(ranked, labels) if x]
        assert correct.tolist() == expected
        real_top1 = np.mean([top1[i] in x for i, x in enumerate(labels) if x])
        multi = sizes[sizes > 0] > 1
        assert multi.any()
        # on multi-label images the variable top-k asks more than ReaL top-1 (all k, not one)
        assert correct[multi].mean() < np.mean([top1[i] in labels[i] for i in np.flatnonzero(sizes > 1)])
        assert correct[~multi].mean() == pytest.approx(
            np.mean([top1[i] in labels[i] for i in np.flatnonzero(sizes == 1)]))
        assert variable_topk_accuracy(ranked, labels) < real_top1
        per_class, mean = per_class_accuracy(top1, labels, 10)
        assert np.all((per_class >= 0) & (per_class <= 1)) and 0 < mean < 1


def test_refusals():
    with pytest.raises(HarnessError, match="2 ranked predictions but 1 label lists"):
        variable_topk_accuracy([[1], [2]], [[1]])
    with pytest.raises(HarnessError, match="sample 0 has 2 labels but the run stored only 1 ranked"):
        variable_topk_accuracy([[1]], [[1, 2]])
    with pytest.raises(HarnessError, match="label outside 0..9"):
        per_class_accuracy([1], [[12]], 10)
