"""harness.classification's importer pieces on hand-made files: every format gives the same rows, columns
are picked as documented, class names map to indices, a third prediction and its score stay aligned,
and each refusal names its row and what was expected."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.classification import read_prediction_file, stem_key
from harness.errors import HarnessError
from harness.suites import get_suite

KEYS = ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002", "ILSVRC2012_val_00050000"]
CLASSES = [[65, 1, 999], [970, 0, 3], [0, 10, 100]]
SCORES = [[0.5, 0.25, 0.125], [0.9, 0.05, 0.01], [0.3, 0.2, 0.1]]


@pytest.fixture(scope="module")
def suite():
    return get_suite("imagenet")


def rows(suite, path):
    return suite.predictions_from_table(read_prediction_file(path), path)


def write_all_formats(tmp_path) -> list:
    records = [{"file_name": f"{k}.JPEG", "top_classes": c, "top_scores": s} for k, c, s in zip(KEYS, CLASSES, SCORES)]
    text = [{"file_name": r["file_name"], "top_classes": " ".join(map(str, r["top_classes"])),
             "top_scores": ",".join(map(str, r["top_scores"]))} for r in records]
    paths = []
    for suffix in ("csv", "tsv"):
        path = tmp_path / f"p.{suffix}"
        pd.DataFrame(text).to_csv(path, index=False, sep="," if suffix == "csv" else "\t")
        paths.append(path)
    (tmp_path / "p.json").write_text(json.dumps(records))
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    pd.DataFrame(records).to_parquet(tmp_path / "p.parquet")
    return paths + [tmp_path / "p.json", tmp_path / "p.jsonl", tmp_path / "p.parquet"]


def test_every_format_gives_the_same_rows(suite, tmp_path):
    for path in write_all_formats(tmp_path):
        out = rows(suite, path)
        assert list(out["key"]) == KEYS, path
        assert [list(c) for c in out["top_classes"]] == CLASSES, path
        assert [list(s) for s in out["top_scores"]] == [pytest.approx(s, rel=1e-7) for s in SCORES], path  # float32 when stored


def test_class_names_a_mapping_file_and_a_single_score_column(suite, tmp_path):
    synsets = (get_suite("imagenet").class_index())
    by_index = {i: s for s, i in synsets.items()}
    path = tmp_path / "names.csv"
    pd.DataFrame({"image": [f"{k}.JPEG" for k in KEYS], "prediction": [by_index[65], "970", by_index[999]],
                  "confidence": ["0.5", "0.75", "1"]}).to_csv(path, index=False)
    out = rows(suite, path)
    assert [list(c) for c in out["top_classes"]] == [[65], [970], [999]]
    assert [list(s) for s in out["top_scores"]] == [[0.5], [0.75], [1.0]]
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({f"{KEYS[0]}.JPEG": 3, f"{KEYS[1]}.JPEG": [4, 5]}))
    out = rows(suite, mapping)
    assert [list(c) for c in out["top_classes"]] == [[3], [4, 5]] and out["top_scores"].isna().all()


@pytest.mark.parametrize("table,message", [
    ({"file_name": [f"{KEYS[0]}.JPEG"], "predicted_class": ["1000"]}, "row 2 has class id 1000, outside 0...999"),
    ({"file_name": [f"{KEYS[0]}.JPEG"], "predicted_class": ["n0000"]},
     "row 2 has class 'n0000', expected an index 0...999 or a class name"),
    ({"file_name": [f"{KEYS[0]}.JPEG", f"{KEYS[1]}.JPEG"], "predicted_class": ["1", " "]}, "row 3 has no predicted class"),
    ({"file_name": [f"{KEYS[0]}.JPEG", f"{KEYS[0]}.JPEG"], "predicted_class": ["1", "2"]},
     "1 rows repeat a file already predicted, first at row 3"),
    ({"file_name": ["cat.jpg", f"{KEYS[0]}.JPEG", "dog.jpg"], "predicted_class": ["1", "2", "3"]},
     "2 rows name files that are not in dataset imagenet-val, first at row 2: 'cat.jpg'"),
    ({"file_name": [f"{KEYS[0]}.JPEG", "a\x01b.JPEG", "c\x02d.JPEG"], "predicted_class": ["1", "2", "3"]},
     r"row 3 names the file 'a\\x01b.JPEG', which holds a NUL or another control character"),
    ({"name": [f"{KEYS[0]}.JPEG"], "predicted_class": ["1"]}, "no column for the file name; expected one of file_name"),
    ({"file_name": [f"{KEYS[0]}.JPEG"], "guess": ["1"]}, "no column for the predicted class"),
    ({"file_name": [f"{KEYS[0]}.JPEG"], "top_classes": ["1 2 3"], "top_scores": ["0.5 0.2"]},
     "row 2 has 3 classes but 2 scores"),
    ({"file_name": [f"{KEYS[0]}.JPEG"], "predicted_class": ["1"], "score": ["nan"]}, "expected finite numbers"),
    ({"file_name": [f"{KEYS[0]}.JPEG"], "predicted_class": ["1"], "score": ["1e39"]}, "within float32 range"),
    ({"file_name": [f"{KEYS[0]}.JPEG"], "predicted_class": ["1"], "score": ["high"]}, "row 2 has scores"),
    ({"file_name": [], "predicted_class": []}, "holds no prediction rows"),
])
def test_bad_rows_are_refused_naming_the_row(suite, tmp_path, table, message):
    path = tmp_path / "bad.csv"
    pd.DataFrame(table).to_csv(path, index=False)
    with pytest.raises(HarnessError, match=message):
        rows(suite, path)


def test_unreadable_files_are_refused(tmp_path):
    with pytest.raises(HarnessError, match="prediction file .* does not exist"):
        read_prediction_file(tmp_path / "missing.csv")
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(HarnessError, match="unknown format '.txt', expected .csv, .tsv, .parquet, .json or .jsonl"):
        read_prediction_file(tmp_path / "p.txt")
    (tmp_path / "p.json").write_text("[1, 2]")
    with pytest.raises(HarnessError, match="expected a JSON list of objects"):
        read_prediction_file(tmp_path / "p.json")


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(stem=st.text(st.sampled_from("ab_19.-"), min_size=0, max_size=8), ext=st.sampled_from(["", ".jpg", ".JPEG"]))
def test_stem_key_is_the_stem_when_it_matches(stem, ext):
    key_of = stem_key(r"[ab]+_[0-9]+")
    name = f"dir/{stem}{ext}"
    expected_stem = (stem + ext).rsplit(".", 1)[0] if "." in stem + ext else stem + ext
    expected = expected_stem if __import__("re").fullmatch(r"[ab]+_[0-9]+", expected_stem) else None
    assert key_of(name) == expected
