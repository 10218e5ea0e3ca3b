"""harness.resultsfile in the quick run (before, only a slow model run wrote one): every column of a
results row by hand, both file formats read back by pandas / json and by the project's own timm importer,
and the refusals that come before any inference."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from harness.errors import HarnessError
from harness.resultsfile import check_results_file, results_row, write_results_file
from reports.external import parse_timm_results

META = {"model": "m1", "run_id": "m1-1", "param_count": 4_652_008,
        "preprocessing": {"input_size": [3, 224, 224], "crop_pct": 0.875, "interpolation": "bicubic"}}
SCORES = [{"label_set": "real", "top1": 0.886612, "top5": 0.97, "n": 1243},
          {"label_set": "imagenet-original", "top1": 0.833077, "top5": 0.9573, "n": 1300}]


def test_a_row_column_by_column():
    row = results_row(META, SCORES)
    assert row == {"model": "m1", "top1": 88.6612, "top1_err": 11.3388, "top5": 97.0, "top5_err": 3.0,
                   "param_count": 4.65, "img_size": 224, "crop_pct": 0.875, "interpolation": "bicubic",
                   "n": 1243, "label_set": "real", "run_id": "m1-1",
                   "top1_real": 88.6612, "top5_real": 97.0,
                   "top1_imagenet-original": 83.3077, "top5_imagenet-original": 95.73}
    assert list(row)[:9] == ["model", "top1", "top1_err", "top5", "top5_err", "param_count", "img_size", "crop_pct",
                             "interpolation"]  # timm validate.py's order


def test_a_row_without_top5_or_parameters():
    row = results_row({**META, "param_count": None}, [{"label_set": "cifar10-original", "top1": 0.5, "n": 4}])
    assert (row["top5"], row["top5_err"], row["param_count"], row["top5_cifar10-original"]) == (None, None, None, None)
    assert (row["top1"], row["top1_err"]) == (50.0, 50.0)


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_both_formats_read_back_and_import_as_timm_results(tmp_path, suffix):
    rows = [results_row(META, SCORES), results_row({**META, "model": "m2", "run_id": "m2-1"}, SCORES[1:])]
    path = tmp_path / f"results{suffix}"
    write_results_file(path, rows)
    back = json.loads(path.read_text()) if suffix == ".json" else pd.read_csv(path).to_dict("records")
    assert [r["model"] for r in back] == ["m1", "m2"] and back[0]["top1"] == 88.6612 and back[1]["top1"] == 83.3077
    if suffix == ".csv":
        # the union of the rows' columns, in order of first appearance; a row without a column leaves it empty
        assert list(pd.read_csv(path).columns) == list(rows[0])
        assert pd.isna(back[1]["top1_real"])
        parsed = parse_timm_results(path)
        assert parsed["top1"].tolist() == pytest.approx([0.886612, 0.833077])
        assert parsed["param_count_m"].tolist() == [4.65, 4.65] and parsed["img_size"].tolist() == [224, 224]
    else:
        assert back == json.loads(json.dumps(rows))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left beside it


def test_bad_names_are_refused_before_anything_runs(tmp_path):
    assert check_results_file(tmp_path / "r.csv") == tmp_path / "r.csv"
    with pytest.raises(HarnessError, match="expected a .csv or .json file name"):
        check_results_file(tmp_path / "r.txt")
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(HarnessError, match="is a folder"):
        check_results_file(tmp_path / "d.csv")
    with pytest.raises(HarnessError, match="its folder .*missing does not exist"):
        check_results_file(tmp_path / "missing" / "r.json")
