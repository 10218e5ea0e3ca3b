"""Issue 22, bad inputs: every one is refused with one sentence (`error: ...`, exit 2) before anything is
stored or run; none is silently accepted and none is a traceback."""
from __future__ import annotations

import pytest

from harness.cli import main
from harness.errors import HarnessError


def refused(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# ----- run options ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("option, value, expected", [
    ("--limit", "0", "--limit 0: expected a whole number of images, at least 1"),  # ran every image
    ("--limit", "-5", "--limit -5: expected a whole number of images, at least 1"),  # dropped the last 5
    ("--batch-size", "0", "--batch-size 0: expected a whole number of images per batch, at least 1"),  # became 64
    ("--topk", "0", "--topk 0: expected a whole number of classes stored per image, at least 1"),  # empty rows
    ("--chunk-images", "0", "--chunk-images 0: expected a whole number of images per stored chunk, at least 1"),
    ("--workers", "-1", "--workers -1: expected a whole number of decoding processes"),
])
def test_run_numbers_out_of_range_are_refused_before_anything_runs(tmp_path, capsys, option, value, expected):
    err = refused(capsys, "--store", str(tmp_path / "store"), "run", "--model", "efficientnet-lite0", "--suite",
                  "real", option, value)
    assert expected in err
    assert not (tmp_path / "store").exists()  # not even the store was opened


def test_run_numbers_are_refused_by_the_python_api_too(store):
    from harness.runner import run_classification
    from harness.suites import get_suite

    with pytest.raises(HarnessError, match="--limit 0: expected a whole number of images"):
        run_classification(store, get_suite("real"), "efficientnet-lite0", limit=0)
    assert store.list_runs() == []


@pytest.mark.parametrize("name, expected", [
    ("missing-folder/results.csv", "its folder {tmp}/missing-folder does not exist"),
    ("a-folder.csv", "--results-file {tmp}/a-folder.csv is a folder"),
    ("locked/results.json", "cannot be written"),
])
def test_a_results_file_that_cannot_be_written_is_refused_before_the_run(tmp_path, capsys, name, expected):
    (tmp_path / "a-folder.csv").mkdir()
    (tmp_path / "locked").mkdir(mode=0o500)
    import os

    if os.geteuid() == 0 and name.startswith("locked"):
        pytest.skip("root writes into a read-only folder")
    err = refused(capsys, "--store", str(tmp_path / "store"), "run", "--model", "efficientnet-lite0", "--suite",
                  "real", "--results-file", str(tmp_path / name))
    assert expected.format(tmp=tmp_path) in err
    assert not (tmp_path / "store").exists()
