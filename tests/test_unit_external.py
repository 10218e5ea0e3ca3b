"""reports.external: every column of timm's results files, read back from the parser and from the store,
checked against the CSV as pandas reads it (and against timm's own redundant columns: top1 + top1_err =
100); hand-made files for the edges (thousands separators, bounds, one model at two sizes)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.errors import HarnessError
from reports.external import (EXTERNAL_KIND, TIMM_FILE_SUITES, external_runs, import_timm_file, load_aggregates,
                              parse_timm_results)

FILES = ["results-imagenet.csv", "results-imagenet-real.csv", "results-imagenetv2-matched-frequency.csv",
         "results-sketch.csv"]
HEADER = "model,img_size,top1,top1_err,top5,top5_err,param_count,crop_pct,interpolation\n"


@pytest.mark.parametrize("name", FILES)
def test_every_column_of_a_real_timm_file(shared_data, name):
    path = shared_data / "timm-results" / name
    raw = pd.read_csv(path, thousands=",")
    rows = parse_timm_results(path)
    assert len(rows) == len(raw) == 1556
    assert list(rows.columns) == ["model", "top1", "top5", "img_size", "param_count_m", "crop_pct", "interpolation"]
    assert list(rows["model"]) == list(raw["model"])
    assert np.allclose(rows["top1"], raw["top1"] / 100, atol=1e-12)
    assert np.allclose(rows["top5"], raw["top5"] / 100, atol=1e-12)
    # the file's own redundancy: the error columns are 100 minus the accuracies
    assert np.allclose(rows["top1"], 1 - raw["top1_err"] / 100, atol=1e-5)
    assert np.allclose(rows["top5"], 1 - raw["top5_err"] / 100, atol=1e-5)
    assert list(rows["img_size"]) == list(raw["img_size"]) and rows["img_size"].dtype == np.int32
    assert np.allclose(rows["param_count_m"], raw["param_count"])
    assert np.allclose(rows["crop_pct"], raw["crop_pct"])
    assert list(rows["interpolation"]) == list(raw["interpolation"])
    assert set(rows["interpolation"]) <= {"bicubic", "bilinear", "nearest", "random", "lanczos"}
    assert (rows["top5"] >= rows["top1"]).all()


def test_hand_made_file_edges(tmp_path):
    path = tmp_path / "results-imagenet.csv"
    path.write_text(HEADER +
                    " big_model ,224,0.000,100.0,100.000,0.0,\"1,014.45\",0.875, bicubic \n"
                    "big_model,288,100,0,100,0,\"1,014.45\",1.0,bilinear\n"
                    "tiny,32,55.5,44.5,80.25,19.75,0.01,0.9,nearest\n")
    rows = parse_timm_results(path)
    assert rows.to_dict("list") == {
        "model": ["big_model", "big_model", "tiny"], "top1": [0.0, 1.0, 0.555], "top5": [1.0, 1.0, 0.8025],
        "img_size": [224, 288, 32], "param_count_m": [1014.45, 1014.45, 0.01], "crop_pct": [0.875, 1.0, 0.9],
        "interpolation": ["bicubic", "bilinear", "nearest"]}


@pytest.mark.parametrize("body,message", [
    ("m,224,100.01,0,99,1,1,1,bicubic\n", r"column 'top1' row 2 is '100.01', expected a percentage between 0 and 100"),
    ("m,224,50,50,-1,101,1,1,bicubic\n", r"column 'top5' row 2 is '-1', expected a percentage"),
    ("a,224,50,50,60,40,1,1,bicubic\nm,224,5x,50,60,40,1,1,bicubic\n", r"column 'top1' row 3 holds '5x', expected a number"),
    ("m,224,50,50,60,40,1,1,bicubic\nm,224,51,49,61,39,1,1,bicubic\n", "row 3 repeats model 'm' at the same img_size"),
    ("m,224,50,50,60,40,1,1,bicubic\n ,224,51,49,61,39,1,1,bicubic\n", "row 3 repeats model ' ' at the same img_size, or lacks a model name"),
    ("m,2x4,50,50,60,40,1,1,bicubic\n", r"column 'img_size' row 2 holds '2x4'"),
    ("m,224,50,50,60,40,1,big,bicubic\n", r"column 'crop_pct' row 2 holds 'big'"),
    ("", "has a header but no model rows"),
])
def test_bad_rows_are_refused_naming_the_row(tmp_path, body, message):
    path = tmp_path / "results-x.csv"
    path.write_text(HEADER + body)
    with pytest.raises(HarnessError, match=message):
        parse_timm_results(path)


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "results-x.csv"
    path.write_text("model,img_size,top1,top5\nm,224,50,60\n")
    with pytest.raises(HarnessError, match="lacks the column\\(s\\) param_count, crop_pct, interpolation"):
        parse_timm_results(path)


def test_an_imported_file_reads_back_column_for_column(store, shared_data, tmp_path):
    source = shared_data / "timm-results" / "results-imagenet-real.csv"
    path = tmp_path / source.name
    raw = pd.read_csv(source, thousands=",").head(40)
    raw.to_csv(path, index=False)
    run_id = import_timm_file(store, path)
    [meta] = external_runs(store)
    assert meta["run_id"] == run_id and meta["kind"] == EXTERNAL_KIND
    assert (meta["name"], meta["suite"], meta["label_set"]) == ("timm-imagenet-real", "real", "real")
    assert meta["model"] == "40 models" and meta["source_file"] == source.name
    back = load_aggregates(store, run_id)
    expected = parse_timm_results(path).sort_values(["model", "img_size"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(back.reset_index(drop=True), expected, check_dtype=False)
    # the same bytes again, under another name: the same run
    assert import_timm_file(store, path, name="again") == run_id and len(external_runs(store)) == 1


def test_file_names_tell_the_suite(tmp_path, store):
    assert TIMM_FILE_SUITES["results-imagenet-a.csv"] == ("imagenet-a", "imagenet-a")
    odd = tmp_path / "my-results.csv"
    odd.write_text(HEADER + "m,224,50,50,60,40,1,1,bicubic\n")
    with pytest.raises(HarnessError, match="cannot tell which test set a file named 'my-results.csv' measures"):
        import_timm_file(store, odd)
