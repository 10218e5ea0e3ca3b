"""Fuzzed importers: any input either imports correctly or fails with one HarnessError, and a refused
input leaves the store exactly as it was (no run, no label set, no stray file)."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import HarnessError
from harness.store import Store
from harness.suites import get_suite

# Derandomized: the same examples on every CI run (a fuzz failure is then reproducible, never flaky);
# raise max_examples locally to search further.
FUZZ = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def store_files(store: Store) -> set[str]:
    return {str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.name != "catalog.duckdb"}


def imports_or_refuses(store: Store, do_import):
    """Run ``do_import``; a refusal must be a HarnessError that changed nothing. Returns its result or None."""
    before = store_files(store)
    try:
        return do_import()
    except HarnessError as exc:
        assert str(exc).strip(), "an error without a message"
        assert store_files(store) == before, "a refused import left files behind"
        return None


def fresh_store(workdir: Path) -> Store:
    root = workdir / "store"
    shutil.rmtree(root, ignore_errors=True)
    return Store(root)


# ----- classification predictions (CSV, TSV, JSON, JSON lines) --------------------------------------

IMAGENET = get_suite("imagenet")
# Integers no float can hold: Python reads them from JSON, then float() and math.isfinite() overflow.
huge_integers = st.tuples(st.integers(309, 1000), st.sampled_from([1, -1])).map(lambda t: t[1] * 10 ** t[0])


def _number_slots(value) -> list:
    """(container, key) of every number inside ``value``."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    slots = []
    for k, v in items:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            slots.append((value, k))
        slots += _number_slots(v)
    return slots


def _maybe_huge_number(draw, value) -> None:
    """In one example of four, one number anywhere inside ``value`` becomes an integer no float can hold."""
    slots = _number_slots(value)
    if slots and draw(st.integers(0, 3)) == 0:
        container, key = draw(st.sampled_from(slots))
        container[key] = draw(huge_integers)


val_names = st.integers(1, 50_000).map(lambda i: f"ILSVRC2012_val_{i:08d}")
# Cells a user's file might hold instead of the right value.
junk = st.one_of(
    st.text(max_size=10), st.integers(-5, 2000), huge_integers, st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(), st.lists(st.integers(-2, 1001), max_size=4),
    st.sampled_from(["", "nan", "n01440764", "n99999999", "1 2 3", "4,5", "\u0663", "\u00b2", "1e3", "0x10", "-0",
                     "ILSVRC2012_val_00000000", "ILSVRC2012_val_000001", "val/ILSVRC2012_val_00000001.JPEG"]))


@st.composite
def prediction_tables(draw):
    """A valid prediction table under the column names users use, then a few cells or names spoiled."""
    keys = draw(st.lists(val_names, min_size=1, max_size=6, unique=True))
    suffix = draw(st.sampled_from(["", ".JPEG", ".jpg"]))
    k = draw(st.integers(1, 5))
    file_col = draw(st.sampled_from(["file_name", "filename", "image", "key", "path"]))
    class_col = draw(st.sampled_from(["predicted_class", "class", "label", "top1", "top_classes"]))
    with_scores = draw(st.booleans())
    rows = []
    for key in keys:
        top = draw(st.lists(st.integers(0, 999), min_size=k, max_size=k, unique=True))
        row = {file_col: key + suffix, class_col: top if class_col == "top_classes" else top[0]}
        if with_scores:
            row["top_scores" if class_col == "top_classes" else "score"] = (
                sorted(draw(st.lists(st.floats(0, 1), min_size=k, max_size=k)), reverse=True)
                if class_col == "top_classes" else draw(st.floats(0, 1)))
        rows.append(row)
    for _ in range(draw(st.integers(0, 2))):  # spoil some cells
        row = draw(st.sampled_from(rows))
        column = draw(st.sampled_from(sorted(row)))
        value = draw(junk)
        row[column] = value
    _maybe_huge_number(draw, rows)
    if draw(st.integers(0, 9)) == 0:  # a duplicate row
        rows.append(dict(draw(st.sampled_from(rows))))
    if draw(st.integers(0, 9)) == 0:  # a column renamed away
        old = draw(st.sampled_from(sorted(rows[0])))
        rows = [{("other" if c == old else c): v for c, v in row.items()} for row in rows]
    return rows


def check_classification_import(store: Store, path: Path):
    run_id = imports_or_refuses(store, lambda: IMAGENET.import_predictions(store, path, "fuzz"))
    if run_id is None:
        return
    rows = store.sql(f"SELECT key, top_classes, top_scores FROM predictions WHERE run_id = '{run_id}'")
    assert rows["key"].is_unique and len(rows) == store.run_meta(run_id)["n_rows"]["predictions"]
    for classes_, scores_ in zip(rows["top_classes"], rows["top_scores"]):
        assert len(classes_) > 0 and all(0 <= c < 1000 for c in classes_)
        if hasattr(scores_, "__len__"):  # a missing list reads back as NA
            assert len(scores_) == len(classes_) and all(math.isfinite(s) for s in scores_)


@FUZZ
@given(table=prediction_tables(), fmt=st.sampled_from(["csv", "tsv", "json", "jsonl", "json-dict"]))
def test_classification_tables(workdir, table, fmt):
    store = fresh_store(workdir)
    frame = pd.DataFrame(table)
    if fmt in ("csv", "tsv"):
        path = workdir / f"predictions.{fmt}"
        frame.to_csv(path, index=False, sep="," if fmt == "csv" else "\t")
    elif fmt == "jsonl":
        path = workdir / "predictions.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in table))
    elif fmt == "json-dict":
        path = workdir / "predictions.json"
        path.write_text(json.dumps({str(next(iter(row.values()))): list(row.values())[1:2] or None
                                    for row in table}))
    else:
        path = workdir / "predictions.json"
        path.write_text(json.dumps(table))
    check_classification_import(store, path)


json_leaves = st.none() | st.booleans() | st.floats() | st.integers() | huge_integers | st.text(max_size=8)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


# Arrays or objects nested this deep make Python's json raise RecursionError.
deeply_nested = st.tuples(st.integers(1, 200_000), st.booleans()).map(
    lambda t: ("[" * t[0] + "]" * t[0]) if t[1] else ('{"a":' * t[0] + "0" + "}" * t[0]))
arbitrary_files = st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                            json_values.map(lambda v: json.dumps(v).encode()), deeply_nested.map(str.encode))


@FUZZ
@given(content=arbitrary_files, suffix=st.sampled_from([".csv", ".tsv", ".json", ".jsonl", ".parquet", ".txt"]))
def test_classification_arbitrary_bytes(workdir, content, suffix):
    store = fresh_store(workdir)
    path = workdir / f"anything{suffix}"
    path.write_bytes(content)
    check_classification_import(store, path)


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_a_first_field_over_csvs_limit_is_refused(workdir, suffix):
    # Found by the fuzz test above: 21,846 nested JSON objects as a .csv file, one field of 131 kB, made
    # the repeated-column check raise csv.Error, a traceback.
    store = fresh_store(workdir)
    path = workdir / f"wide{suffix}"
    path.write_text('{"a":' * 21_846 + "0" + "}" * 21_846)
    with pytest.raises(HarnessError, match=r"could not be parsed .*field larger than field limit"):
        IMAGENET.import_predictions(store, path, "wide")
    assert store.list_runs() == []


@pytest.mark.parametrize("cell, column", [
    ("", "score"),            # an empty score cell
    ("high", "score"),        # a word for a score
    ("0.9 x", "top_scores"),  # a word inside a score list
    ("\u00b2", "predicted_class"),  # '²': str.isdigit() says yes, int() says no
])
def test_found_classification_cells_are_refused(workdir, cell, column):
    path = workdir / "found.csv"
    row = {"file_name": "ILSVRC2012_val_00000001", "predicted_class": "1"}
    if column == "top_scores":
        row = {"file_name": row["file_name"], "top_classes": "1 2"}
    row[column] = cell
    pd.DataFrame([row]).to_csv(path, index=False)
    store = fresh_store(workdir)
    with pytest.raises(HarnessError, match="row 2"):
        IMAGENET.import_predictions(store, path, "found")
    assert store.list_runs() == []


@pytest.mark.parametrize("name, content, message", [
    ("empty.csv", "file_name,predicted_class\n", "holds no prediction rows"),
    ("empty.json", "{}", "holds no prediction rows"),
    ("mixed.json", "[[], false]", "expected a JSON list of objects"),
    ("mixed2.json", "[{}, null]", "expected a JSON list of objects"),
])
def test_found_classification_files_are_refused(workdir, name, content, message):
    path = workdir / name
    path.write_text(content)
    store = fresh_store(workdir)
    with pytest.raises(HarnessError, match=message):
        IMAGENET.import_predictions(store, path, "found")
    assert store.list_runs() == []


# ----- COCO ground truth and results (harness/detection) -------------------------------------------

def _spoil(draw, records: list[dict], n: int) -> None:
    """Replace up to ``n`` fields of ``records`` with junk, or drop them."""
    for _ in range(draw(st.integers(0, n))):
        if not records:
            return
        record = draw(st.sampled_from(records))
        field = draw(st.sampled_from(sorted(record)))
        if draw(st.integers(0, 4)) == 0:
            del record[field]
        else:
            record[field] = draw(json_values)


numbers = st.floats(0, 500, allow_nan=False)
boxes = st.lists(numbers, min_size=4, max_size=4)
polygons = st.lists(st.lists(numbers, min_size=6, max_size=12).filter(lambda p: len(p) % 2 == 0), min_size=1,
                    max_size=2)


@st.composite
def coco_ground_truth(draw):
    n_images, n_cats = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    images = [{"id": i + 1, "file_name": f"{i + 1:012d}.jpg", "width": draw(st.integers(1, 640)),
               "height": draw(st.integers(1, 480))} for i in range(n_images)]
    categories = [{"id": c + 1, "name": f"class{c + 1}", "supercategory": "thing"} for c in range(n_cats)]
    annotations = []
    for a in range(draw(st.integers(0, 6))):
        ann = {"id": a + 1, "image_id": draw(st.integers(1, n_images)), "category_id": draw(st.integers(1, n_cats)),
               "bbox": draw(boxes), "area": draw(numbers), "iscrowd": 0}
        if draw(st.booleans()):
            ann["segmentation"] = draw(polygons)
        annotations.append(ann)
    _spoil(draw, images + categories + annotations, 2)
    _maybe_huge_number(draw, annotations)
    gt = {"images": images, "annotations": annotations, "categories": categories}
    if draw(st.integers(0, 9)) == 0:
        gt[draw(st.sampled_from(sorted(gt)))] = draw(json_values)
    return gt


@FUZZ
@given(gt=coco_ground_truth())
def test_coco_ground_truth(workdir, gt):
    from harness.detection.suite import import_ground_truth

    store = fresh_store(workdir)
    path = workdir / "instances.json"
    path.write_text(json.dumps(gt))
    name = imports_or_refuses(store, lambda: import_ground_truth(store, path, "fuzz-gt"))
    if name is not None:
        counts = store.sql("SELECT (SELECT count(*) FROM coco_images) AS i, (SELECT count(*) FROM coco_annotations)"
                           " AS a, (SELECT count(*) FROM coco_categories) AS c").iloc[0].tolist()
        assert counts == [len(gt["images"]), len(gt["annotations"]), len(gt["categories"])]


def _image(**fields):
    return {"id": 1, "file_name": "1.jpg", "width": 10, "height": 10, **fields}


def _annotation(**fields):
    return {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1, **fields}


# Found by the fuzzer: fields of the wrong JSON type used to reach pyarrow or pycocotools as tracebacks.
@pytest.mark.parametrize("images, annotations, categories, message", [
    ([_image(id=[])], [], [{"id": 1}], r"1 of 1 images are invalid.*images\[0\]\.id is \[\]; expected an integer"),
    ([_image(), _image(id="1")], [], [{"id": 1}], r"1 of 2 images are invalid.*images\[1\]\.id is \"1\""),
    ([_image(file_name=[]), _image(width="9")], [], [{"id": 1}], r"2 of 2 images .*images\[0\]\.file_name"),
    ([_image(width="10")], [], [{"id": 1}], r"images\[0\]\.width is \"10\"; expected a positive integer"),
    ([_image()], [_annotation(iscrowd="no")], [{"id": 1}], r"1 of 1 annotations .*annotations\[0\]\.iscrowd"),
    ([_image()], [], [{"id": 1, "name": 5}], r"1 of 1 categories .*categories\[0\]\.name is 5; expected a string"),
    ([_image()], [_annotation(segmentation=5)], [{"id": 1}], r"annotations\[0\]\.segmentation is 5"),
])
def test_found_coco_ground_truth_fields_are_refused(workdir, images, annotations, categories, message):
    from harness.detection.suite import import_ground_truth

    path = workdir / "found.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    store = fresh_store(workdir)
    with pytest.raises(HarnessError, match=message) as refused:
        import_ground_truth(store, path, "found")
    assert str(refused.value).startswith(f"{path}: ")
    assert not list((store.root / "labelsets").iterdir()) and store.list_runs() == []


@pytest.fixture(scope="module")
def coco_store(tmp_path_factory):
    """A store with a small COCO ground truth: images 1-3, categories 1-2."""
    from harness.detection.suite import import_ground_truth

    folder = tmp_path_factory.mktemp("coco")
    gt = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 48} for i in (1, 2, 3)],
          "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2)],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 20], "area": 200,
                           "iscrowd": 0}]}
    (folder / "gt.json").write_text(json.dumps(gt))
    store = Store(folder / "store")
    import_ground_truth(store, folder / "gt.json", "fuzz-gt")
    return store


@st.composite
def coco_results(draw):
    kind = draw(st.sampled_from(["bbox", "segmentation", "keypoints"]))
    geometry = {"bbox": boxes, "segmentation": polygons,
                "keypoints": st.lists(numbers, min_size=3, max_size=9).filter(lambda k: len(k) % 3 == 0)}[kind]
    records = [{"image_id": draw(st.integers(1, 3)), "category_id": draw(st.integers(1, 2)),
                "score": draw(st.floats(0, 1)), kind: draw(geometry)} for _ in range(draw(st.integers(1, 5)))]
    _spoil(draw, records, 2)
    _maybe_huge_number(draw, records)
    return records if draw(st.integers(0, 9)) else draw(json_values)


@FUZZ
@given(records=coco_results(), drop=st.booleans())
def test_coco_results(workdir, coco_store, records, drop):
    from harness.detection.suite import COCO

    path = workdir / "results.json"
    path.write_text(json.dumps(records))
    run_id = imports_or_refuses(coco_store, lambda: COCO.import_predictions(
        coco_store, path, "fuzz", label_set="fuzz-gt", drop_unknown_images=drop))
    if run_id is not None:
        stored = coco_store.sql(f"SELECT count(*) AS n FROM coco_detections WHERE run_id = '{run_id}'")["n"][0]
        assert stored == len(records) - coco_store.run_meta(run_id)["n_dropped_unknown_images"]


# ----- ActivityNet submissions and ground truth (harness/activitynet) ----------------------------------

times = st.floats(0, 300, allow_nan=False)


@st.composite
def anet_submissions(draw, kind: str):
    results = {}
    for v in range(draw(st.integers(0, 3))):
        entries = []
        for _ in range(draw(st.integers(0, 3))):
            start, end = sorted(draw(st.lists(times, min_size=2, max_size=2)))
            if kind == "captions":
                entries.append({"sentence": draw(st.text(max_size=20)), "timestamp": [start, end]})
            else:
                entry = {"score": draw(st.floats(0, 1)), "segment": [start, end]}
                if kind == "detection":
                    entry["label"] = draw(st.sampled_from(["Long jump", "Surfing"]))
                entries.append(entry)
        _spoil(draw, entries, 1)
        results[f"v_{v:011d}"] = entries
    _maybe_huge_number(draw, results)
    submission = {"version": "VERSION 1.3", "external_data": {"used": False}, "results": results}
    if draw(st.integers(0, 9)) == 0:
        submission[draw(st.sampled_from(sorted(submission)))] = draw(json_values)
    return submission


@FUZZ
@given(submission=st.one_of(anet_submissions("captions"), anet_submissions("detection"),
                            anet_submissions("proposals"), json_values))
def test_activitynet_submissions(workdir, submission):
    store = fresh_store(workdir)
    path = workdir / "submission.json"
    path.write_text(json.dumps(submission))
    for suite, table in (("anet-captions", "dense_captions"), ("anet-detection", "temporal_detections")):
        run_id = imports_or_refuses(store, lambda: get_suite(suite).import_predictions(store, path, "fuzz"))
        if run_id is not None:
            n = store.sql(f"SELECT count(*) AS n FROM {table} WHERE run_id = '{run_id}'")["n"][0]
            assert n == sum(len(v) for v in submission["results"].values())


@st.composite
def anet_ground_truth(draw):
    database = {}
    for v in range(draw(st.integers(1, 3))):
        annotations = [{"segment": sorted(draw(st.lists(times, min_size=2, max_size=2))),
                        "label": draw(st.sampled_from(["Long jump", "Surfing"]))}
                       for _ in range(draw(st.integers(0, 3)))]
        video = {"subset": draw(st.sampled_from(["validation", "training"])), "duration": draw(times),
                 "annotations": annotations}
        _spoil(draw, annotations + [video], 1)
        database[f"{v:011d}"] = video if draw(st.integers(0, 9)) else draw(json_values)
    _maybe_huge_number(draw, database)
    return {"version": "VERSION 1.3", "database": database} if draw(st.integers(0, 9)) else draw(json_values)


@FUZZ
@given(gt=anet_ground_truth())
def test_activitynet_ground_truth(workdir, gt):
    store = fresh_store(workdir)
    path = workdir / "activity_net.v1-3.min.json"
    path.write_text(json.dumps(gt))
    name = imports_or_refuses(store, lambda: get_suite("anet-detection").import_ground_truth(store, path, "fuzz"))
    if name is not None:
        assert store.sql("SELECT count(*) AS n FROM temporal_segments")["n"][0] == sum(
            len(v.get("annotations", [])) for v in gt["database"].values() if v.get("subset") == "validation")


# Found by the fuzzer: a video that is not an object, or a subset / annotations of the wrong type.
@pytest.mark.parametrize("database, message", [
    ({"v1": None}, r"1 of 1 videos are invalid; the first is database\['v1'\]: it is a null"),
    ({"v0": {"subset": "validation", "annotations": []}, "v1": {"subset": [], "annotations": []}},
     r"1 of 2 videos are invalid; the first is database\['v1'\]: its \"subset\" is a list"),
    ({"v1": {"subset": "validation", "annotations": 5}, "v2": 3},
     r"2 of 2 videos are invalid; the first is database\['v1'\]: its \"annotations\" are a int"),
])
def test_found_activitynet_ground_truth_videos_are_refused(workdir, database, message):
    path = workdir / "found.json"
    path.write_text(json.dumps({"version": "VERSION 1.3", "database": database}))
    store = fresh_store(workdir)
    with pytest.raises(HarnessError, match=message) as refused:
        get_suite("anet-detection").import_ground_truth(store, path, "found")
    assert str(refused.value).startswith(f"{path}: ")
    assert store.list_label_sets() == [] and store.list_runs() == []


@st.composite
def caption_ground_truth(draw):
    videos = {}
    for v in range(draw(st.integers(1, 3))):
        n = draw(st.integers(0, 3))
        video = {"duration": draw(times), "timestamps": [sorted(draw(st.lists(times, min_size=2, max_size=2)))
                                                          for _ in range(n)],
                 "sentences": [draw(st.text(max_size=12)) for _ in range(n)]}
        _spoil(draw, [video], 1)
        videos[f"v_{v:011d}"] = video if draw(st.integers(0, 9)) else draw(json_values)
    _maybe_huge_number(draw, videos)
    return videos if draw(st.integers(0, 9)) else draw(json_values)


@FUZZ
@given(gt=caption_ground_truth())
def test_activitynet_caption_ground_truth(workdir, gt):
    from harness.activitynet.formats import read_caption_ground_truth

    path = workdir / "val_1.json"
    path.write_text(json.dumps(gt))
    try:
        rows = read_caption_ground_truth(path)
    except HarnessError as exc:
        assert str(exc).strip()
        return
    assert len(rows) == sum(len(v["sentences"]) for v in gt.values())


def test_found_activitynet_caption_ground_truth_non_lists_are_refused(workdir):
    """Found by the fuzzer: the message for timestamps or sentences that are not lists took their len()."""
    from harness.activitynet.formats import read_caption_ground_truth

    path = workdir / "found.json"
    path.write_text(json.dumps({"v_1": {"duration": 1.0, "timestamps": [], "sentences": None}, "v_2": []}))
    with pytest.raises(HarnessError, match=r"found.json: 2 of 2 videos are invalid; the first is video\['v_1'\]: "
                                           r"its timestamps are a list and its sentences a null"):
        read_caption_ground_truth(path)


# ----- rater answers (relabel) ---------------------------------------------------------------------

@st.composite
def tasks_and_answers(draw):
    keys = [f"ILSVRC2012_val_{i:08d}" for i in range(1, draw(st.integers(2, 4)))]
    tasks = [{"task_id": f"{k}#0", "key": k, "labels": sorted(draw(st.sets(st.integers(0, 999), min_size=1,
                                                                            max_size=3)))} for k in keys]
    answers, seen = [], set()
    for _ in range(draw(st.integers(1, 8))):
        task = draw(st.sampled_from(tasks))
        row = {"rater": draw(st.sampled_from(["r1", "r2", "r3"])), "key": task["key"],
               "label": str(draw(st.sampled_from(task["labels"]))), "answer": draw(st.sampled_from(["yes", "no",
                                                                                                    "maybe"]))}
        if (row["rater"], row["key"], row["label"]) not in seen:
            seen.add((row["rater"], row["key"], row["label"]))
            answers.append(row)
    for _ in range(draw(st.integers(0, 2))):  # spoil cells with text a CSV can hold
        row = draw(st.sampled_from(answers))
        row[draw(st.sampled_from(sorted(row)))] = draw(st.one_of(st.text(max_size=6), st.sampled_from(
            ["", "1.5", "-1", "YES", " yes ", "ILSVRC2012_val_00000099", "1000"])))
    return tasks, answers


@FUZZ
@given(case=tasks_and_answers(), task_format=st.sampled_from([".jsonl", ".csv"]))
def test_rater_answers(workdir, case, task_format):
    from relabel.proposals import export_tasks, read_answers, read_tasks

    tasks, answers = case
    task_file = workdir / f"tasks{task_format}"
    export_tasks(pd.DataFrame(tasks, columns=["task_id", "key", "labels"]), task_file)
    answer_file = workdir / "answers.csv"
    pd.DataFrame(answers).to_csv(answer_file, index=False)
    try:
        ratings = read_answers(answer_file, read_tasks(task_file), ["r1", "r2", "r3"])
    except HarnessError as exc:
        assert str(exc).strip()
        return
    assert ratings.n_answers == len(answers)
    asked = {(t["key"], lab) for t in tasks for lab in t["labels"]}
    assert set(map(tuple, ratings.questions[["key", "label"]].to_numpy().tolist())) <= asked


@FUZZ
@given(content=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                         json_values.map(lambda v: json.dumps(v).encode()),
                         st.lists(st.lists(st.sampled_from(["task_id", "key", "label", "rater", "answer", "yes", "1",
                                                            "x", "", "2.5"]), max_size=5), max_size=4).map(
                             lambda rows: "\n".join(",".join(r) for r in rows).encode())),
       suffix=st.sampled_from([".jsonl", ".csv"]))
def test_rater_task_and_answer_files_arbitrary_bytes(workdir, content, suffix):
    from relabel.proposals import read_answers, read_tasks

    path = workdir / f"arbitrary{suffix}"
    path.write_bytes(content)
    for read in [read_tasks, lambda p: read_answers(p, pd.DataFrame({"key": ["a"], "label": [1]}))]:
        try:
            read(path)
        except HarnessError as exc:
            assert str(exc).strip()


# Found by the fuzzer: task and answer files that pandas cannot parse, or whose labels are not integers.
@pytest.mark.parametrize("content, suffix, message", [
    (b"\x80", ".csv", r"task file .*known.csv is not a UTF-8 CSV with a header row \(UnicodeDecodeError"),
    (b"\x80", ".jsonl", r"task file .*known.jsonl is not UTF-8 text"),
    (b"", ".csv", r"known.csv is not a UTF-8 CSV with a header row \(EmptyDataError"),
    (b'"', ".csv", r"known.csv is not a UTF-8 CSV with a header row \(ParserError"),
    (b"a,b\n1,2\n", ".csv", r"known.csv must have the columns \['task_id', 'key', 'label'\], found \['a', 'b'\]"),
    (b"task_id,key,label\nt,k,1\nt,k,x\n", ".csv", r"known.csv: 1 of 2 rows have a label .* first is line 3"),
    (b"task_id,key,label\nt,k,\nt,k,inf\n", ".csv", r"known.csv: 2 of 2 rows have a label .* first is line 2"),
])
def test_found_rater_task_files_are_refused(workdir, content, suffix, message):
    from relabel.proposals import read_answers, read_tasks

    path = workdir / f"known{suffix}"
    path.write_bytes(content)
    with pytest.raises(HarnessError, match=message):
        read_tasks(path)
    if suffix == ".csv" and b"task_id" not in content:  # the answer reader shares the CSV checks
        with pytest.raises(HarnessError, match="answer file .* (is not a UTF-8 CSV|must have the columns)"):
            read_answers(path, pd.DataFrame({"key": ["a"], "label": [1]}))


def test_a_score_beyond_float32_is_refused(workdir):
    path = workdir / "huge.csv"
    path.write_text("file_name,predicted_class,score\nILSVRC2012_val_00000001,1,1e300\n")
    store = fresh_store(workdir)
    with pytest.raises(HarnessError, match="row 2 has scores .* within float32 range"):
        IMAGENET.import_predictions(store, path, "huge")
    assert store.list_runs() == []


# ----- every JSON importer on any file (harness/jsonfile.py) ----------------------------------------

def json_importers(store: Store, coco_label_set: str):
    """(name, import function of a path) for every importer of JSON files."""
    from harness.activitynet.formats import read_caption_ground_truth
    from harness.detection.suite import COCO, import_ground_truth

    return [("classification", lambda p: IMAGENET.import_predictions(store, p, "any")),
            ("coco ground truth", lambda p: import_ground_truth(store, p, "any-gt")),
            ("coco results", lambda p: COCO.import_predictions(store, p, "any", label_set=coco_label_set)),
            ("anet-captions", lambda p: get_suite("anet-captions").import_predictions(store, p, "any")),
            ("anet-detection", lambda p: get_suite("anet-detection").import_predictions(store, p, "any")),
            ("anet-detection ground truth",
             lambda p: get_suite("anet-detection").import_ground_truth(store, p, "any-gt")),
            ("anet-captions ground truth", read_caption_ground_truth)]


@FUZZ
@given(content=arbitrary_files)
def test_json_importers_arbitrary_files(workdir, coco_store, content):
    path = workdir / "anything.json"
    path.write_bytes(content)
    for _, do_import in json_importers(coco_store, "fuzz-gt"):
        imports_or_refuses(coco_store, lambda: do_import(path))


HUGE = "9" * 400
# Found by an audit: valid JSON that the importers met with OverflowError or RecursionError.
# (content with "HUGE" standing for a 400-digit integer, where the first one is)
UNCONVERTIBLE = {
    "classification": ([{"file_name": "ILSVRC2012_val_00000001", "predicted_class": 1, "score": "HUGE"}],
                       '[0]["score"]'),
    "coco ground truth": ({"images": [_image()], "categories": [{"id": 1, "name": "a"}],
                           "annotations": [_annotation(bbox=[0, 0, "HUGE", "-HUGE"], area="HUGE", iscrowd=0)]},
                          '["annotations"][0]["bbox"][2]'),
    "coco results": ([{"image_id": 1, "category_id": 1, "score": 0.5, "bbox": [0, 0, 1, 1]},
                      {"image_id": 1, "category_id": 1, "score": 0.5, "bbox": [0, "HUGE", 1, 1]}],
                     '[1]["bbox"][1]'),
    "anet-captions": ({"version": "1", "external_data": {}, "results": {"v_a": [{"sentence": "x",
                                                                                  "timestamp": [0, "HUGE"]}]}},
                      '["results"]["v_a"][0]["timestamp"][1]'),
    "anet-detection": ({"version": "1", "external_data": {}, "results": {"a": [{"label": "x", "score": "HUGE",
                                                                                "segment": [0, 1]}]}},
                       '["results"]["a"][0]["score"]'),
    "anet-detection ground truth": ({"database": {"a": {"subset": "validation", "duration": 9, "annotations": [
        {"label": "x", "segment": ["HUGE", "-HUGE"]}]}}}, '["database"]["a"]["annotations"][0]["segment"][0]'),
    "anet-captions ground truth": ({"v_a": {"duration": "HUGE", "timestamps": [[0, 1]], "sentences": ["x"]}},
                                   '["v_a"]["duration"]'),
}


@pytest.mark.parametrize("importer", list(UNCONVERTIBLE))
def test_found_unconvertible_numbers_and_deep_nesting_are_refused(workdir, coco_store, importer):
    do_import = dict(json_importers(coco_store, "fuzz-gt"))[importer]
    content, first = UNCONVERTIBLE[importer]
    content = json.dumps(content).replace('"HUGE"', HUGE).replace('"-HUGE"', "-" + HUGE)
    path = workdir / "found.json"
    before = store_files(coco_store)
    path.write_text(content)
    with pytest.raises(HarnessError) as refused:
        do_import(path)
    n = content.count(HUGE)
    assert f" {path} holds {n} integer(s) too large for a float; the first is {first}: 999999999999... " \
           "(400 digits); expected finite numbers. Nothing was stored." in str(refused.value)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(HarnessError, match=f"{path} is nested too deeply to read"):
        do_import(path)
    path.write_text('{"a": ' + "1" * 5000 + "}")  # beyond Python's int digit limit: ValueError in json
    with pytest.raises(HarnessError, match="holds 1 integer.s. too large for a float; the first is .\"a\".: "):
        do_import(path)
    assert store_files(coco_store) == before


def test_a_repeated_key_is_refused_even_where_it_would_hide_a_huge_number(workdir):
    from harness.jsonfile import read_json

    path = workdir / "repeated.json"
    path.write_text(f'{{"a": {HUGE}, "a": 1}}')  # json keeps the last value and drops the other silently
    with pytest.raises(HarnessError, match=f"file {path} gives the key 'a' twice in one object"):
        read_json(path, "file")
    path.write_text('{"a": 1, "b": {"a": 2}}')  # the same key in two objects is fine
    assert read_json(path, "file") == {"a": 1, "b": {"a": 2}}
