"""Names that resolve, runs that can be removed, rankings that are not label sets (issue 22, items 4, 5, 7, 8).

Real prediction files: the shipped ResNet-56 (resnet_basic_56) predictions on CIFAR-10 and on
CIFAR-10.1 v6, one run name on two datasets, imported and used through the command lines.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
PREDICTIONS = "cifar/cifar10_1_model_predictions"


def _cli(module: str, store, *args):
    return subprocess.run([sys.executable, "-m", module, "--store", str(store.root), *args], capture_output=True,
                          text=True, cwd=REPO, timeout=300)


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory, shared_data):
    from harness.store import Store

    store = Store(tmp_path_factory.mktemp("names") / "store")
    for suite, folder in (("cifar10", "original_predictions"), ("cifar10.1-v6", "v6_predictions")):
        path = shared_data / PREDICTIONS / folder / "resnet_basic_56_predictions.json"
        done = _cli("harness", store, "import", "--suite", suite, "--name", "r56", str(path))
        assert done.returncode == 0, done.stderr
    return store


def test_a_run_name_resolves_on_the_dataset_its_labels_name(two_datasets):
    from harness.suites import get_suite

    store = two_datasets
    by_dataset = {m["dataset"]: m["run_id"] for m in store.list_runs() if m["name"] == "r56"}
    expected = get_suite("cifar10").score(store, by_dataset["cifar10-test"])["top1"]
    scored = _cli("harness", store, "score", "--run", "r56", "--labels", "cifar10-original", "--json")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["top1"] == expected and json.loads(scored.stdout)["run_id"] == \
        by_dataset["cifar10-test"]
    v6 = _cli("harness", store, "score", "--run", "r56", "--dataset", "cifar10.1-v6", "--json")
    assert json.loads(v6.stdout)["run_id"] == by_dataset["cifar10.1-v6"]
    ambiguous = _cli("harness", store, "score", "--run", "r56")
    assert ambiguous.returncode == 2 and ambiguous.stderr.count("\n") == 1
    assert "--dataset cifar10-test or cifar10.1-v6" in ambiguous.stderr
    by_suite = _cli("harness", store, "score", "--run", "r56", "--suite", "cifar10", "--json")
    assert json.loads(by_suite.stdout)["run_id"] == by_dataset["cifar10-test"]
    mixed = _cli("harness", store, "score", "--run", "r56", "--labels", "cifar10-original", "--dataset", "cifar10.1-v6")
    assert mixed.returncode == 2 and "the options name several datasets" in mixed.stderr


def test_compare_and_rm_resolve_a_name_on_the_dataset_they_are_given(two_datasets, shared_data):
    store = two_datasets
    r110 = shared_data / PREDICTIONS / "v6_predictions" / "resnet_basic_110_predictions.json"
    assert _cli("harness", store, "import", "--suite", "cifar10.1-v6", "--name", "r110", str(r110)).returncode == 0
    compared = _cli("reports", store, "compare", "r56", "r110", "--label-set", "cifar10.1-v6-original")
    assert compared.returncode == 0, compared.stderr
    assert "n = 2,000 shared samples" in compared.stdout and "r56: top-1 84.85%" in compared.stdout
    ambiguous = _cli("harness", store, "rm", "r56")
    assert ambiguous.returncode == 2 and "--dataset cifar10-test or cifar10.1-v6" in ambiguous.stderr
    removed = _cli("harness", store, "rm", "r110", "--dataset", "cifar10.1-v6")
    assert removed.returncode == 0 and "removed run r110-" in removed.stdout
    assert [m["name"] for m in store.list_runs()] == ["r56", "r56"]


def test_rm_moves_a_run_aside_and_undo_puts_it_back(two_datasets):
    store = two_datasets
    run_id = next(m["run_id"] for m in store.list_runs() if m["dataset"] == "cifar10.1-v6" and m["name"] == "r56")
    lock = store.lock_run(run_id)
    assert lock.try_acquire()  # as a live writer holds it
    try:
        busy = _cli("harness", store, "rm", run_id)
    finally:
        lock.release()
    assert busy.returncode == 2 and "is being written by a live process" in busy.stderr and store.run_exists(run_id)
    removed = _cli("harness", store, "rm", run_id)
    assert removed.returncode == 0, removed.stderr
    aside = removed.stdout.split("undo: python -m harness rm --undo ")[1].strip().rstrip(")")
    assert not store.run_exists(run_id) and Path(aside, "run.json").is_file()  # moved, not deleted
    catalog = duckdb.connect(str(store.catalog_path), read_only=True)
    try:
        assert catalog.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone() == (0,)
    finally:
        catalog.close()
    assert _cli("harness", store, "score", "--run", "r56", "--json").returncode == 0  # one dataset left: resolves
    assert _cli("harness", store, "rm", "--undo", aside).returncode == 0
    assert store.run_exists(run_id) and store.complete_run(run_id)["name"] == "r56"
    # label sets too: scoring against a removed one is refused until it is back
    removed = _cli("harness", store, "rm", "--label-set", "cifar10.1-v6-original")
    aside = removed.stdout.split("--undo ")[1].strip().rstrip(")")
    assert not store.has_label_set("cifar10.1-v6-original")
    assert _cli("harness", store, "rm", "--undo", aside).returncode == 0
    assert store.has_label_set("cifar10.1-v6-original")


def test_runs_names_a_misspelt_suite_or_name(two_datasets):
    store = two_datasets
    typo = _cli("harness", store, "runs", "--suite", "cifar1O")
    assert typo.returncode == 2 and "unknown suite 'cifar1O'; did you mean 'cifar10'" in typo.stderr
    pattern = _cli("harness", store, "runs", "--name", "r65*")
    assert pattern.returncode == 2 and "no run named 'r65*'" in pattern.stderr and "did you mean 'r56'" in pattern.stderr


@pytest.fixture
def raters(tmp_path):
    """Five simulated raters on 300 CIFAR-10 test keys and a given label set with 20 planted errors."""
    from harness.store import Store

    rng = np.random.default_rng(3)
    store = Store(tmp_path / "store")
    keys = [str(i) for i in range(300)]
    truth = rng.integers(0, 10, 300)
    for m in range(5):
        answer = np.where(rng.random(300) < 0.85, truth, rng.integers(0, 10, 300))
        store.write_run({"name": f"model{m}", "suite": "cifar10", "dataset": "cifar10-test", "kind": "import"},
                        {"predictions": pd.DataFrame({"key": keys, "top_classes": [[int(a)] for a in answer]})})
    given = truth.copy()
    given[:20] = (truth[:20] + 1) % 10
    store.put_label_set("sim", {"dataset": "cifar10-test"},
                        {"labels": pd.DataFrame({"key": keys, "labels": [[int(g)] for g in given]})})
    return store


def test_a_ranking_is_not_a_label_set_and_errors_then_tasks_works_as_the_readme_says(raters, tmp_path):
    store = raters
    base = ["errors", "--dataset", "cifar10-test", "--labels", "sim"]
    assert _cli("relabel", store, *base).returncode == 0
    refused = _cli("harness", store, "score", "--run", "model0", "--labels", "sim-errors", "--json")
    assert refused.returncode == 2 and refused.stdout == "" and refused.stderr.count("\n") == 1
    assert "'sim-errors' is a ranking of suspected label errors of 'sim' (relabel errors), not a label set" \
        in refused.stderr
    # relabel/README.md: `errors`, then `errors --tasks` on the same runs: the stored ranking is kept and used
    tasks = _cli("relabel", store, *base, "--tasks", str(tmp_path / "review.csv"), "--review", "10")
    assert tasks.returncode == 0, tasks.stderr
    assert (tmp_path / "review.csv").is_file() and "is this one; it is kept" in tasks.stderr
    other = _cli("relabel", store, *base, "--runs", "model0,model1,model2", "--tasks", str(tmp_path / "b.csv"))
    assert other.returncode == 2 and "already holds a different ranking 'sim-errors'" in other.stderr


def test_a_misspelt_store_is_not_created(tmp_path):
    typo = tmp_path / "stroe"
    done = subprocess.run([sys.executable, "-m", "harness", "--store", str(typo), "runs"], capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    assert done.returncode == 2 and f"no store at {typo}" in done.stderr and not typo.exists()
