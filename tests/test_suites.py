"""Conformance of every registered suite to the suite contract (harness/suites.py), parametrized over the
registry as timm's tests are over ``list_models()``: a suite is exercised here the moment it is registered."""
from __future__ import annotations

import pytest

from harness.data import resolve_file
from harness.errors import HarnessError
from harness.suites import ACTIONS, SUITES, TASKS, ScoreResult, Suite, get_suite, list_suites, suite_names
from harness.store import Store

NAMES = suite_names()
# Suites built per dataset (image-folder) are exercised once configured, in tests/test_shift.py.
READY = [n for n in NAMES if not get_suite(n).needs_configuration]


def _label_set_names(suite: Suite) -> list[str]:
    return suite.default_label_set.split("+")  # anet-captions scores two reference files at once by default


@pytest.mark.parametrize("name", NAMES)
def test_declaration_and_object_agree(name):
    declaration = SUITES.get(name)
    suite = get_suite(name)
    assert isinstance(suite, Suite)
    assert (suite.task, suite.dataset, suite.description, suite.default_label_set) == (
        declaration.task, declaration.dataset, declaration.description, declaration.default_label_set)
    assert suite.task in TASKS and suite.name == (declaration.alias_of or name)
    assert (suite.runner is not None) == suite.supports("run")
    assert suite.needs_configuration == suite.supports("configure")
    if suite.needs_configuration:
        with pytest.raises(HarnessError, match=f"suite {name} needs"):
            suite.configure()
        return
    assert all(ls in suite.label_sets for ls in _label_set_names(suite))
    assert suite.import_formats and all(f.startswith(".") for f in suite.import_formats)
    assert set(suite.options) <= set(ACTIONS) and "import" in suite.options and "score" in suite.options
    assert suite.configure() is suite
    with pytest.raises(HarnessError, match=f"suite {suite.name} knows its classes and images; it takes no "
                                           "configuration"):
        suite.configure(classes="classes.txt")


@pytest.mark.parametrize("name", READY)
def test_samples_are_listed_and_keyed(name, tmp_path):
    """Shipped label sets list their samples; a dataset labelled by its folders (ImageNetV2, -A, -R, -Sketch)
    lists the samples of its runs, none in an empty store."""
    suite = get_suite(name)
    store = Store(tmp_path / "store")
    keys = suite.sample_keys(store)
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert keys or not suite.example
    assert [suite.key_of(k) for k in keys[:50]] == keys[:50]  # a key is its own sample's key
    assert suite.key_of("not a sample of any dataset") is None


@pytest.mark.parametrize("name", READY)
def test_an_option_the_suite_does_not_take_is_refused_in_one_sentence(name, tmp_path):
    suite = get_suite(name)
    store = Store(tmp_path / "store")
    with pytest.raises(HarnessError, match=rf"^suite {suite.name} takes no --colour option for imports; for imports "
                                           r"it takes (--[a-z-]+(, )?)+$"):
        suite.import_predictions(store, tmp_path / "never-read.json", "x", colour="red")
    with pytest.raises(HarnessError, match=rf"^suite {suite.name} takes no --colour, --size options for scoring"):
        suite.score(store, "no-such-run", colour="red", size=3)
    if not suite.supports("run"):
        with pytest.raises(HarnessError, match=f"suite {suite.name} cannot run models"):
            suite.run(store, "any-model")
    if not suite.supports("import-labels"):
        with pytest.raises(HarnessError, match="has no ground-truth file import"):
            suite.import_ground_truth(store, tmp_path / "gt.json", "gt")
    assert store.list_runs() == [] and store.list_label_sets() == []  # refused before any work


@pytest.mark.parametrize("name", [n for n in NAMES if get_suite(n).example])
def test_a_shipped_file_imports_and_scores(name, tmp_path):
    """The suite's shipped example file round-trips: import, then score from the stored rows alone."""
    suite = get_suite(name)
    store = Store(tmp_path / "store")
    run_id = suite.import_predictions(store, resolve_file(*suite.example), "example")
    run = store.run_meta(run_id)
    assert (run["suite"], run["dataset"], run["status"]) == (suite.name, suite.dataset, "complete")
    result = suite.score(store, run_id)
    assert isinstance(result, ScoreResult)
    assert (result["suite"], result["label_set"], result["run_id"]) == (suite.name, suite.default_label_set, run_id)
    assert 0 < result["n"] <= len(suite.sample_keys(store))
    assert isinstance(suite.describe(result), str) and suite.describe(result)
    assert suite.score(store, run_id) == result  # a query of stored rows: the same twice


def test_listing_is_declared_data():
    assert [d.name for d in list_suites("cifar10.1*")] == ["cifar10.1", "cifar10.1-v4", "cifar10.1-v6"]
    assert SUITES.get("cifar10.1").alias_of == "cifar10.1-v6" and get_suite("cifar10.1") is get_suite("cifar10.1-v6")
    with pytest.raises(HarnessError, match=r"unknown suite 'cifar-10'; did you mean 'cifar10'"):
        get_suite("cifar-10")


def test_classification_run_options_are_the_inference_fields():
    """The run options a classification suite takes for preprocessing are harness.inference's, one for one."""
    import dataclasses

    from harness.classification import INFERENCE_OPTIONS
    from harness.inference import InferenceOptions

    assert INFERENCE_OPTIONS == tuple(f.name for f in dataclasses.fields(InferenceOptions))
    assert set(INFERENCE_OPTIONS) <= set(get_suite("real").options["run"])
