"""Label errors found by stored runs as raters: planted errors in a simulated store must be found."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.store import Store
from relabel.cli import main
from relabel.labelsets import label_set_frame

K, N, PLANTED = 10, 3000, 90


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """12 models on 3,000 CIFAR-10 test keys, each right 60-90% of the time and, when wrong, mostly
    confusing each class with the next one (so reliability differs per class); four of them
    always answer the next class for classes 0-4. 90 given labels are replaced by another class."""
    rng = np.random.default_rng(7)
    store = Store(tmp_path_factory.mktemp("errors-store"))
    truth = rng.integers(0, K, N)
    keys = [str(i) for i in range(N)]
    for m in range(12):
        accuracy = rng.uniform(0.6, 0.9)
        wrong = rng.random(N) > accuracy
        shifted = np.where(rng.random(N) < 0.7, (truth + 1) % K, rng.integers(0, K, N))
        answer = np.where(wrong, shifted, truth)
        if m >= 8:
            answer = np.where(truth < 5, (truth + 1) % K, answer)
        store.write_run({"name": f"model{m:02d}", "suite": "cifar10", "dataset": "cifar10-test", "kind": "import"},
                        {"predictions": pd.DataFrame({"key": keys, "top_classes": [[int(a)] for a in answer]})})
    given = truth.copy()
    planted = rng.choice(N, PLANTED, replace=False)
    given[planted] = (truth[planted] + rng.integers(1, K, PLANTED)) % K
    store.put_label_set("sim-labels", {"dataset": "cifar10-test"},
                        {"labels": label_set_frame(keys, [[int(g)] for g in given])})
    # The label set imported as a run (as the shipped original_labels file is): not a rater.
    store.write_run({"name": "the-labels", "suite": "cifar10", "dataset": "cifar10-test", "kind": "import"},
                    {"predictions": pd.DataFrame({"key": keys, "top_classes": [[int(g)] for g in given]})})
    return store, {str(i) for i in planted}, truth


def test_planted_errors_are_ranked_first(simulated, tmp_path, capsys):
    store, planted, truth = simulated
    out = tmp_path / "errors.csv"
    assert main(["errors", "--dataset", "cifar10-test", "--labels", "sim-labels", "--out", str(out),
                 "--store", str(store.root)]) == 0
    assert "3,000 samples of sim-labels ranked by dawid-skene over 12 runs" in capsys.readouterr().out
    table = store.sql("SELECT * FROM label_errors WHERE label_set = 'sim-labels-errors' ORDER BY rank")
    assert len(table) == N and table["rank"].tolist() == list(range(1, N + 1))
    top = set(table["key"].head(PLANTED))
    assert len(top & planted) >= 0.95 * PLANTED          # precision at k = number planted (measured 90/90)
    found = table[table["key"].isin(planted)]
    assert (found["likely"].to_numpy() == truth[found["key"].astype(int)]).mean() > 0.95
    assert found["rank"].max() <= 2 * PLANTED            # every planted error in the top 180
    csv = pd.read_csv(out, dtype={"key": str})
    assert csv["key"].tolist() == table["key"].tolist()
    assert np.allclose(csv["p_wrong"], table["p_wrong"], atol=1e-6)
    # The models that agree are named, and are the ones that answered the likely label.
    first = table.iloc[0]
    assert len(first["agreeing"]) == first["models_likely"] and "the-labels" not in set(first["agreeing"])
    # The per-class model beats the vote: four biased models outvote the others on classes 0-4,
    # and only a per-class confusion matrix tells their bias from an error in the label.
    assert main(["errors", "--dataset", "cifar10-test", "--labels", "sim-labels", "--aggregator", "majority-vote",
                 "--name", "sim-vote", "--store", str(store.root)]) == 0
    vote = store.sql("SELECT key FROM label_errors WHERE label_set = 'sim-vote' ORDER BY rank LIMIT 90")
    assert len(set(vote["key"]) & planted) < len(top & planted)


def test_errors_refusals(simulated, capsys):
    store, _, _ = simulated
    base = ["errors", "--dataset", "cifar10-test", "--labels", "sim-labels", "--store", str(store.root)]
    assert main(base + ["--runs", "model00,nope", "--name", "x"]) == 2
    assert "no complete run named nope on dataset cifar10-test" in capsys.readouterr().err
    assert main(base + ["--runs", "model00,model01", "--name", "two"]) == 0
    assert main(base + ["--runs", "model00,model01", "--name", "two"]) == 2
    assert "already holds 'two'" in capsys.readouterr().err
    assert main(["errors", "--dataset", "cifar10-test", "--labels", "no-such", "--store", str(store.root)]) == 2
    assert "no label set 'no-such'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def cifar_store(tmp_path_factory):
    """The shipped CIFAR-10 prediction files (30 published models, the cross-validated probabilities,
    the original labels as a run) and the original label set."""
    from harness import cifar

    store = Store(tmp_path_factory.mktemp("cifar-errors"))
    cifar.import_shipped(store, suites=("cifar10",))
    cifar.CIFAR10.ensure_label_sets(store, ["cifar10-original"])
    return store


@pytest.mark.slow
def test_cifar10_errors_from_the_shipped_runs(cifar_store):
    """The real run: the 30 published models and the cross-validated probabilities as raters of the
    original CIFAR-10 test labels, scored against the human references (benchmarks/label_errors.py
    has the comparison with confident learning)."""
    from relabel.errors import cifar10_error_references, find_label_errors, precision_recall_at

    table, raters = find_label_errors(cifar_store, "cifar10-test", "cifar10-original", 10)
    assert len(raters) == 31 and "original_labels" not in raters and "label_errors_cv" in raters
    assert len(table) == 10_000 and int((table["p_wrong"] >= 0.5).sum()) == 289
    assert table.iloc[0][["key", "given", "likely", "models_likely"]].tolist() == ["2405", 3, 6, 31]  # cat -> frog
    refs = cifar10_error_references()
    assert (len(refs["cifar10h"]), len(refs["mturk"])) == (79, 54)
    at = {name: precision_recall_at(table["key"], ref, [10, 54, 79, 500]).set_index("k")["found"].to_dict()
          for name, ref in refs.items()}
    assert at["cifar10h"] == {10: 5, 54: 9, 79: 14, 500: 39}
    assert at["mturk"] == {10: 5, 54: 12, 79: 16, 500: 40}


@pytest.mark.slow
def test_review_round_trip_ends_in_a_new_label_set_that_rescores_the_runs(cifar_store, tmp_path, capsys):
    """suspects -> tasks -> answers -> label set -> scores, on the real CIFAR-10 runs; the answers are
    simulated: three raters say yes exactly to the CIFAR-10H plurality class."""
    from harness import cifar
    from harness.score import score_run
    from relabel.proposals import read_tasks

    store = cifar_store
    tasks_path, answers_path = tmp_path / "tasks.csv", tmp_path / "answers.csv"
    assert main(["errors", "--dataset", "cifar10-test", "--name", "review-errors", "--tasks", str(tasks_path),
                 "--review", "40", "--store", str(store.root)]) == 0
    tasks = read_tasks(tasks_path)
    ranking = store.sql("SELECT key, given, likely FROM label_errors WHERE label_set = 'review-errors' "
                        "AND rank <= 40")
    assert set(tasks["key"]) == set(ranking["key"])
    for r in ranking.itertuples():  # the given and the likely label are always asked
        asked = set(tasks.loc[tasks["key"] == r.key, "label"])
        assert {r.given, r.likely} <= asked and len(asked) <= 3
    plurality = cifar.cifar10h_counts().argmax(1)
    answers = pd.DataFrame([(rater, t.key, t.label, "yes" if plurality[int(t.key)] == t.label else "no")
                            for rater in ("r1", "r2", "r3") for t in tasks.itertuples()],
                           columns=["rater", "key", "label", "answer"])
    answers.to_csv(answers_path, index=False)
    assert main(["import-answers", "--tasks", str(tasks_path), "--answers", str(answers_path), "--base",
                 "cifar10-original", "--errors", "review-errors", "--dataset", "cifar10-test", "--register",
                 "cifar10-reviewed", "--store", str(store.root)]) == 0

    new = store.sql("SELECT key, labels FROM labels WHERE label_set = 'cifar10-reviewed'")
    new = dict(zip(new["key"], new["labels"].map(list)))
    assert len(new) == 10_000
    original = cifar.cifar10_labels()
    reviewed = set(ranking["key"])
    for key, labels in new.items():
        if key not in reviewed:
            assert labels == [original[int(key)]]
        else:
            asked = set(tasks.loc[tasks["key"] == key, "label"])
            assert labels == ([plurality[int(key)]] if plurality[int(key)] in asked else [])
    changed = sum(new[k] != [original[int(k)]] for k in reviewed)
    assert changed == sum(plurality[int(k)] != original[int(k)] or plurality[int(k)] not in
                          set(tasks.loc[tasks["key"] == k, "label"]) for k in reviewed) > 0
    meta = store.label_set_meta("cifar10-reviewed")
    assert meta["base"] == "cifar10-original" and meta["version"] == 2 and meta["ranking"] == "review-errors"
    assert len(meta["ranking_raters"]) == 31 and len(meta["answers_sha256"]) == 64 and meta["reviewed_keys"] == 40

    # Every run is re-scored on the new version without running a model again.
    runs = {m["name"]: m["run_id"] for m in store.list_runs("complete") if m["name"] != "original_labels"}
    before = {n: score_run(store, r, "cifar10-original")["top1"] for n, r in runs.items()}
    after = {n: score_run(store, r, "cifar10-reviewed")["top1"] for n, r in runs.items()}
    assert sum(after[n] > before[n] for n in runs) >= 25    # the suspects were the models' disagreements
