"""CIFAR human labels: multi-class Dawid–Skene on the raw CIFAR-10S answers, CIFAR-10H soft labels."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from harness.data import resolve_file
from harness.errors import HarnessError
from relabel import cifar
from relabel.labelsets import label_set_frame, register_label_set


@pytest.fixture(scope="module")
def cifar10s():
    return cifar.cifar10s_ratings()


@pytest.fixture(scope="module")
def counts():
    return cifar.cifar10h_counts()


def test_cifar10s_answers_are_one_per_annotator_and_image(cifar10s, shared_data):
    ratings, original = cifar10s
    raw = pd.read_csv(shared_data / "cifar" / "cifar10s_raw_human_data.csv")
    first_showings = raw[raw["task"] == "spec_conf"].drop_duplicates(["subject", "img_id"])
    assert ratings.n_answers == len(first_showings) == 6200
    assert len(ratings.raters) == raw["subject"][raw["task"] == "spec_conf"].nunique() == 248
    assert len(ratings.questions) == 1000
    per_image = np.bincount(ratings.question)
    assert per_image.min() >= 6  # the dataset's promise: at least 6 annotators per image
    long = ratings.to_long()
    assert not long.duplicated(["rater", "key"]).any()
    # The original label travels with each image and is one of the ten classes.
    assert set(original) <= set(cifar.CIFAR10_CLASSES) and len(original) == 1000


def test_rerun_consistency(shared_data):
    rerun = cifar.rerun_consistency()
    raw = pd.read_csv(shared_data / "cifar" / "cifar10s_raw_human_data.csv")
    assert rerun["reruns"] == raw[raw["task"] == "rerun_spec_conf"].drop_duplicates(["subject", "img_id"]).shape[0]
    assert rerun["annotators"] == 248
    assert 0.92 < rerun["same_answer"] < 0.94  # measured 93.1%


def test_dawid_skene_agrees_with_the_majority_vote(cifar10s, counts):
    ratings, original = cifar10s
    summary, table = cifar.cifar10s_report(ratings, original, counts)
    assert summary["converged"] and summary["log_likelihood_never_fell"]
    # Where the majority is not tied, Dawid–Skene with the diagonal prior keeps it (measured 959/960).
    assert summary["majority_ties"] == 40
    assert summary["ds_equals_majority_untied"] > 0.995
    assert 0.97 < summary["ds_equals_majority"] < 0.99
    votes = ratings.majority()
    untied = (votes == votes.max(1, keepdims=True)).sum(1) == 1
    chosen = table["dawid_skene"].map(cifar.CIFAR10_CLASSES.index).to_numpy()
    assert np.mean(chosen[untied] == votes.argmax(1)[untied]) == pytest.approx(summary["ds_equals_majority_untied"])
    # Against CIFAR-10H's ~51-person plurality, ~6 answers get most images right either way.
    assert 0.92 < summary["ds_equals_reference"] <= summary["majority_equals_reference"] < 0.95
    # Every posterior is a distribution and the reported confidence is its maximum.
    assert ((table["posterior"] > 0.1) & (table["posterior"] <= 1)).all()


def test_plain_maximum_likelihood_overfits_cifar10s(cifar10s):
    """~25 answers per annotator for 100 confusion cells: without the prior, DS drifts from the
    majority — the reason for DEFAULT_SMOOTHING."""
    ratings, original = cifar10s
    plain, _ = cifar.cifar10s_report(ratings, original, smoothing=0.0)
    prior, _ = cifar.cifar10s_report(ratings, original)
    assert plain["ds_equals_majority"] < 0.95 < prior["ds_equals_majority"]
    again, _ = cifar.cifar10s_report(ratings, original)
    assert again == prior  # deterministic


def test_cifar10h_soft_labels_equal_the_released_probabilities(counts):
    probs = np.load(resolve_file(cifar.DATASET, "cifar/cifar10h-probs.npy"))
    assert counts.shape == (10_000, 10)
    assert np.abs(cifar.soft_labels(counts) - probs).max() < 1e-12
    assert 47 <= counts.sum(1).min() and counts.sum(1).max() <= 63


def test_cifar10h_label_sets(counts, cifar10s):
    labels, weights = cifar.label_sets(counts, 0.2)
    soft = counts / counts.sum(1, keepdims=True)
    assert [len(x) for x in labels] == list((soft >= 0.2).sum(1))
    assert all(w >= 0.2 for ws in weights for w in ws)
    assert all(x == sorted(x) for x in labels)
    multi = sum(len(x) > 1 for x in labels)
    assert 300 < multi < 500  # measured 382 images with two or more plausible classes
    # CIFAR-10S's own original labels sit in CIFAR-10H's set on almost all of its 1,000 images.
    _, original = cifar10s
    in_set = [cifar.CIFAR10_CLASSES.index(original[k]) in labels[int(k)] for k in original.index]
    assert 0.97 < np.mean(in_set) < 1.0
    looser, _ = cifar.label_sets(counts, 0.05)
    assert all(set(a) <= set(b) for a, b in zip(labels, looser))


def test_cifar10h_label_set_registers_and_queries(store, counts):
    labels, weights = cifar.label_sets(counts, 0.5)
    frame = label_set_frame([str(i) for i in range(len(labels))], labels, weights)
    register_label_set(store, "cifar10h-0.5", frame, dataset="cifar10-test",
                       description="CIFAR-10H majority", provenance={"min_share": 0.5})
    stored = store.sql("SELECT len(labels) AS n, count(*) AS images FROM labels "
                       "WHERE label_set = 'cifar10h-0.5' GROUP BY 1 ORDER BY 1")
    expected = np.bincount([len(x) for x in labels])
    assert dict(zip(stored["n"], stored["images"])) == {i: n for i, n in enumerate(expected) if n}


def test_bad_inputs_are_refused(tmp_path, shared_data, counts):
    raw = pd.read_csv(shared_data / "cifar" / "cifar10s_raw_human_data.csv")
    rows = raw.index[raw["task"] == "spec_conf"][[3, 7]]
    raw.loc[rows, "response"] = '{"classSelect":"mostProbUnicorn"}'
    bad = tmp_path / "bad.csv"
    raw.to_csv(bad, index=False)
    lines = re.escape(str([int(r) + 2 for r in rows]))
    with pytest.raises(HarnessError, match=rf"2 CIFAR-10S answers name no CIFAR-10 class \(CSV lines {lines}"):
        cifar.cifar10s_ratings(bad)
    with pytest.raises(HarnessError, match="min_share must be in"):
        cifar.label_sets(counts, 0)
    broken = counts.copy()
    broken[[5, 9]] = 0
    with pytest.raises(HarnessError, match=r"rows \[5, 9\]"):
        cifar.soft_labels(broken)
    np.save(tmp_path / "wide.npy", np.ones((4, 11)))
    with pytest.raises(HarnessError, match="images × 10 classes"):
        cifar.cifar10h_counts(tmp_path / "wide.npy")


def test_aggregate_multiclass_registers_the_datasets_class_ids(tmp_path, capsys):
    """Answers that are class names map through the dataset's class order; answers that are integers
    are the class ids themselves, never their position in the (text-sorted) scale."""
    from harness.store import Store
    from relabel.cli import main

    answers = cifar.cifar10s_answers()[["rater", "key", "answer"]]
    store = Store(tmp_path / "store")

    def register(name, table, *extra):
        path = tmp_path / f"{name}.csv"
        table.to_csv(path, index=False)
        return main(["aggregate", str(path), "--multiclass", "--register", name, "--dataset", "cifar10-test",
                     "--store", str(store.root), *extra])

    def stored(name):
        rows = store.sql("SELECT key, labels[1] AS label FROM labels WHERE label_set = ?", [name])
        return dict(zip(rows["key"], rows["label"]))

    assert register("by-name", answers, "--diagonal-smoothing", "2") == 0
    ratings, original = cifar.cifar10s_ratings()
    _, table = cifar.cifar10s_report(ratings, original)
    expected = dict(zip(table["key"], table["dawid_skene"].map(cifar.CIFAR10_CLASSES.index)))
    assert stored("by-name") == expected
    # Without 'airplane' (class 0) the answers 1...9 sit at positions 0...8 of the scale.
    no_airplane = answers[answers["answer"] != "airplane"]
    ids = no_airplane.assign(answer=no_airplane["answer"].map(cifar.CIFAR10_CLASSES.index).astype(str))
    assert register("subset-by-name", no_airplane) == 0 and register("subset-by-id", ids) == 0
    assert stored("subset-by-id") == stored("subset-by-name")
    assert set(stored("subset-by-id").values()) == set(range(1, 10))
    # Class ids outside the dataset, names it does not have: refused, nothing registered.
    capsys.readouterr()
    assert register("bad", ids.assign(answer=ids["answer"].replace("9", "10"))) == 2
    assert "out of range: ['10']" in capsys.readouterr().err
    assert register("bad", no_airplane.replace("truck", "lorry")) == 2
    assert "multi-class answers ['lorry'] are neither integer class ids nor class names of dataset " \
           "cifar10-test" in capsys.readouterr().err
    assert not store.has_label_set("bad")


def test_cifar10h_cli_and_reports_register_the_same_label_set(store, counts, capsys):
    from relabel.cli import main
    from reports.shipped import register_cifar10h_real

    assert main(["--store", str(store.root), "cifar10h", "--register", "from-cli"]) == 0
    register_cifar10h_real(store, name="from-reports")
    cli, rep = store.label_set_meta("from-cli"), store.label_set_meta("from-reports")
    assert cli["description"] == rep["description"] == cifar.label_sets_description(0.2)
    same = store.sql("SELECT count(*) AS n FROM labels a JOIN labels b USING (key) WHERE a.label_set = 'from-cli' "
                     "AND b.label_set = 'from-reports' AND a.labels = b.labels")
    assert int(same["n"][0]) == len(counts) == 10_000
