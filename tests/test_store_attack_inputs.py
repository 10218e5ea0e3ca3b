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
    from harness.bulk import ModelRequest, run_bulk
    from harness.suites import get_suite

    with pytest.raises(HarnessError, match="--batch-size 0: expected a whole number of images per batch"):
        run_bulk(store, get_suite("real"), [ModelRequest("efficientnet-lite0")], batch_size=0, limit=8)
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


# ----- files that used to give a traceback or be stored silently ----------------------------------------------
def write(path, text: str):
    path.write_text(text, encoding="utf-8", errors="surrogatepass")  # a lone surrogate as JSON readers make one
    return str(path)


CIFAR_ROWS = "file_name,predicted_class\n" + "".join(f"{i}.png,1\n" for i in range(9999))
ANET = '{{"version": "VERSION 1.0", "external_data": {{"used": false}}, "results": {{{}}}}}'
COCO_IMAGE, COCO_CATEGORY = 139, 1  # of the shipped ground truth val2014 sample (checked below)


@pytest.mark.parametrize("name, suite, content, expected", [
    # tracebacks
    ("c.csv", "cifar10", CIFAR_ROWS + "²³.png,1\n", "1 rows name files that are not in dataset cifar10-test, first at "
                                                    "row 10001: '²³.png'"),
    ("c.json", "cifar10", "[" * 50_000 + "]" * 50_000, "is nested too deeply to read"),
    ("c.json", "cifar10", "[" + "1," * 9999 + "9" * 5000 + "]", "holds 1 integer(s) too large for a float; the first "
                                                              "is [9999]: 999999999999... (5000 digits)"),
    ("i.csv", "real", "file_name,predicted_class\nILSVRC2012_val_00000001.JPEG," + "9" * 5000 + "\n",
     "row 2 has class id 999999999999... (5000 digits), outside 0...999"),
    ("a.json", "anet-captions", ANET.format('"v_uqiMw7tQ1Cc": [{"sentence": "a \\ud800 b", "timestamp": [0, 2]}]'),
     "has sentence 'a \\ud800 b' with a lone surrogate or a NUL character"),
    # silently accepted
    ("i.csv", "real", "file_name,predicted_class,predicted_class\nILSVRC2012_val_00000001.JPEG,1,2\n",
     "the header names column(s) 'predicted_class' more than once"),
    ("i.csv", "real", "file_name,predicted_class\nILSVRC2012_val_00000001.JPEG\x00,1\n",
     "row 2 names the file 'ILSVRC2012_val_00000001.JPEG\\x00', which holds a NUL"),
    ("i.json", "real", '[{"file_name": "ILSVRC2012_val_00000001.JPEG", "predicted_class": 1, "predicted_class": 2}]',
     "gives the key 'predicted_class' twice in one object"),
    ("a.json", "anet-captions", ANET.format('"v_uqiMw7tQ1Cc": [{"sentence": "a", "timestamp": [0, 2]}], '
                                            '"v_uqiMw7tQ1Cc": []'), "gives the key 'v_uqiMw7tQ1Cc' twice"),
    ("a.json", "anet-captions", ANET.format('"v_uqiMw7tQ1Cc\\u0000": [{"sentence": "a", "timestamp": [0, 2]}]'),
     "video id 'v_uqiMw7tQ1Cc\\x00' is not printable text"),
    ("a.json", "anet-captions", ANET.format('"v_nosuchvideo": [{"sentence": "a", "timestamp": [0, 2]}], '
                                            '"v_uqiMw7tQ1Cc": [{"sentence": "a", "timestamp": [0, 2]}]'),
     "1 of 2 videos are in none of the label sets anet-captions-val_1, anet-captions-val_2"),
    ("d.json", "coco", f'[{{"image_id": {COCO_IMAGE}, "category_id": {COCO_CATEGORY}, "bbox": [1, 2, 3, 4], '
                       '"score": -0.5}]', "score must be a finite number, 0 or more"),
    ("d.json", "coco", f'[{{"image_id": {COCO_IMAGE}, "category_id": {COCO_CATEGORY}, "bbox": [1, 2, 1e308, 1e308], '
                       '"score": 0.5}]', "bbox overflows"),
    ("d.json", "coco", f'[{{"image_id": {COCO_IMAGE}, "category_id": {COCO_CATEGORY}, "bbox": [1, 2, 3, 4], '
                       '"score": 0.5, "score": 0.9}]', "gives the key 'score' twice in one object"),
])
def test_bad_files_are_one_sentence_and_store_nothing(tmp_path, capsys, name, suite, content, expected):
    store = tmp_path / "store"
    err = refused(capsys, "--store", str(store), "import", write(tmp_path / name, content), "--suite", suite)
    assert expected in err
    from harness.store import Store

    assert Store(store).list_runs() == []


def test_the_coco_ids_above_are_real(shared_data):
    import json

    gt = json.loads((shared_data / "coco/instances_val2014_100.json").read_text())
    assert COCO_IMAGE in {i["id"] for i in gt["images"]} and COCO_CATEGORY in {c["id"] for c in gt["categories"]}


@pytest.mark.parametrize("name", ["a\udcffb", "bad\x00", "tab\tname", "   "])
def test_run_names_must_be_printable(store, name):
    import pandas as pd

    with pytest.raises(HarnessError, match="run name .* is not printable text"):
        store.write_run({"name": name, "suite": "real", "dataset": "d"},
                        {"predictions": pd.DataFrame({"key": ["k"], "top_classes": [[1]]})})
    with pytest.raises(HarnessError, match="run name .* is not printable text"):
        store.begin_run({"name": name})
    assert store.list_runs() == []


@pytest.mark.parametrize("value", ["k\x00", "a\ud800"])
def test_rows_with_nul_or_lone_surrogates_are_refused_by_the_store(store, value):
    # dicts of columns: pandas itself cannot hold a lone surrogate in its Arrow-backed strings
    with pytest.raises(HarnessError, match="NUL character|lone surrogate"):
        store.write_run({"name": "r"}, {"predictions": {"key": [value], "top_classes": [[1]]}})
    with pytest.raises(HarnessError, match="NUL character|lone surrogate"):
        store.put_label_set("x", {"dataset": "d"}, {"labels": {"key": ["k"], "labels": [[1]]},
                                                     "coco_categories": {"category_id": [1], "name": [value]}})
    assert store.list_runs() == [] and store.list_label_sets() == []


def test_a_label_set_name_with_a_trailing_newline_is_refused(store):
    import pandas as pd

    with pytest.raises(HarnessError, match="is not a valid name"):
        store.put_label_set("mine\n", {"dataset": "d"}, {"labels": pd.DataFrame({"key": ["k"], "labels": [[1]]})})


@pytest.mark.parametrize("folder", ["what?", "back\\slash"])
def test_a_store_path_duckdb_cannot_open_is_one_sentence(tmp_path, capsys, folder):
    predictions = write(tmp_path / "p.csv", "file_name,predicted_class\nILSVRC2012_val_00000001.JPEG,1\n")
    err = refused(capsys, "--store", str(tmp_path / folder / "store"), "import", predictions, "--suite", "real")
    assert "which DuckDB cannot open files under; choose a folder without them" in err
    assert not (tmp_path / folder).exists()  # refused before anything was made
