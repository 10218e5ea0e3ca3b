"""Stored scores: computed once per (run, label set, metric version, options), read back after."""
from __future__ import annotations

import dataclasses
import json

import pytest

from harness import scoring
from harness.activitynet.suites import ANET_DETECTION
from harness.cli import main
from harness.detection.suite import COCO

RESULTS_BBOX = "coco/instances_val2014_fakebbox100_results.json"


@pytest.fixture
def toy_detection_run(tmp_path, store):
    database = {
        "vid1": {"subset": "validation", "duration": 60.0, "annotations": [
            {"segment": [0, 10], "label": "Long jump"}, {"segment": [30, 40], "label": "Shot put"}]},
        "vid2": {"subset": "validation", "duration": 20.0, "annotations": [
            {"segment": [5, 15], "label": "Long jump"}]},
    }
    gt_path = tmp_path / "activity_net.v1-3.min.json"
    gt_path.write_text(json.dumps({"version": "VERSION 1.3", "taxonomy": [], "database": database}))
    ANET_DETECTION.import_ground_truth(store, gt_path, "anet13-val")
    sub = {"version": "VERSION 1.3", "external_data": {}, "results": {
        "vid1": [{"label": "Long jump", "score": 0.9, "segment": [0, 10]},
                 {"label": "Shot put", "score": 0.8, "segment": [31, 40]}],
        "vid2": [{"label": "Long jump", "score": 0.4, "segment": [50, 60]}]}}
    path = tmp_path / "det.json"
    path.write_text(json.dumps(sub))
    return ANET_DETECTION.import_predictions(store, path, "toy"), gt_path


def _tamper(store, run_id, **changes) -> None:
    """Write a marker into the stored score: reading it back proves the score came from the store."""
    (path,) = (store.run_dir(run_id) / "scores").glob("*.json")
    entry = json.loads(path.read_text())
    entry["result"].update(changes)
    path.write_text(json.dumps(entry))


def test_a_stored_score_is_returned_and_a_new_metric_version_recomputes(store, toy_detection_run):
    run_id, gt_path = toy_detection_run
    fresh = ANET_DETECTION.score(store, run_id, "anet13-val", progress=False)
    first = scoring.score(store, ANET_DETECTION, run_id, "anet13-val")
    assert first["average_mAP"] == fresh["average_mAP"] and first["mAP"] == fresh["mAP"]
    assert store.sql("SELECT label_set, metric_version FROM scores").values.tolist() == [
        ["anet13-val", ANET_DETECTION.metric_version]]

    _tamper(store, run_id, average_mAP=0.123)
    assert scoring.score(store, ANET_DETECTION, run_id, "anet13-val")["average_mAP"] == 0.123  # from the store

    bumped = dataclasses.replace(ANET_DETECTION, metric_version=ANET_DETECTION.metric_version + "-next")
    again = scoring.score(store, bumped, run_id, "anet13-val")
    assert again["average_mAP"] == fresh["average_mAP"] and again["metric_version"].endswith("-next")
    assert sorted(store.sql("SELECT metric_version FROM scores")["metric_version"]) == sorted(
        [ANET_DETECTION.metric_version, bumped.metric_version])

    # An option is part of the key: other tIoUs are another score.
    coarse = scoring.score(store, ANET_DETECTION, run_id, "anet13-val", tious=[0.5])
    assert coarse["tious"] == [0.5] and len(coarse["mAP"]) == 1

    # --recompute replaces the stored entry; so does replacing the label set it was computed from.
    assert scoring.score(store, ANET_DETECTION, run_id, "anet13-val", recompute=True)["average_mAP"] == \
        fresh["average_mAP"]
    _tamper_all = [p for p in (store.run_dir(run_id) / "scores").glob("*.json")
                   if json.loads(p.read_text())["key"]["metric_version"] == ANET_DETECTION.metric_version
                   and not json.loads(p.read_text())["key"]["options"]]
    entry = json.loads(_tamper_all[0].read_text())
    entry["result"]["average_mAP"] = 0.456
    _tamper_all[0].write_text(json.dumps(entry))
    ANET_DETECTION.import_ground_truth(store, gt_path, "anet13-val")  # the same file again: a new label set
    assert scoring.score(store, ANET_DETECTION, run_id, "anet13-val")["average_mAP"] == fresh["average_mAP"]


def test_cli_second_score_comes_from_the_store_and_prints_a_table(store, toy_detection_run, capsys):
    run_id, _ = toy_detection_run
    assert main(["--store", str(store.root), "score", "--run", run_id, "--labels", "anet13-val"]) == 0
    table = capsys.readouterr().out
    assert f"run {run_id} on anet13-val: n=2 videos" in table
    mAP = ANET_DETECTION.score(store, run_id, "anet13-val", progress=False)["mAP"]
    assert table.splitlines()[-1].split()[1:] == [f"{100 * v:.2f}" for v in mAP] + [
        f"{100 * sum(mAP) / len(mAP):.2f}"]
    _tamper(store, run_id, average_mAP=0.25)
    assert main(["--store", str(store.root), "score", "--run", run_id, "--labels", "anet13-val", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["average_mAP"] == 0.25
    assert main(["--store", str(store.root), "score", "--run", run_id, "--labels", "anet13-val", "--json",
                 "--recompute"]) == 0
    assert json.loads(capsys.readouterr().out)["average_mAP"] == pytest.approx(sum(mAP) / len(mAP))


def test_coco_scores_are_kept_per_max_dets(store, shared_data):
    run_id = COCO.import_predictions(store, shared_data / RESULTS_BBOX, "fake", label_set="coco-val2014-100")
    fresh = COCO.score(store, run_id)
    assert json.dumps(scoring.score(store, COCO, run_id)) == json.dumps(fresh)  # same keys in the same order
    other = scoring.score(store, COCO, run_id, max_dets=(1, 10, 50))
    assert other["max_dets"] == {"bbox": [1, 10, 50]} and other["bbox"] == COCO.score(
        store, run_id, max_dets=(1, 10, 50))["bbox"]
    assert store.sql("SELECT count(*) AS n FROM scores")["n"][0] == 2
    assert scoring.score(store, COCO, run_id) == json.loads(json.dumps(fresh))
    assert store.sql("SELECT count(*) AS n FROM scores")["n"][0] == 2


def test_runs_lists_n_coverage_and_score_with_filters_and_sql_formats(store, shared_data, capsys):
    from harness.suites import get_suite
    from harness.tables import format_frame

    cifar = get_suite("cifar10")
    r56 = cifar.import_predictions(
        store, shared_data / "cifar/cifar10_1_model_predictions/original_predictions/resnet_basic_56_predictions.json", "r56")
    coco_run = COCO.import_predictions(store, shared_data / RESULTS_BBOX, "fake", label_set="coco-val2014-100")
    root = str(store.root)
    assert main(["--store", root, "runs", "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    top1 = cifar.score(store, r56)["top1"]
    assert (rows["r56"]["n"], rows["r56"]["coverage_%"], rows["r56"]["metric"], rows["r56"]["score_%"]) == (
        10_000, 100.0, "top1", round(100 * top1, 2))  # percent, as every other command prints
    assert rows["fake"]["score_%"] is None  # COCO is listed with its score once scored (stored), not computed here
    scoring.score(store, COCO, coco_run)
    assert main(["--store", root, "runs", "--suite", "coco", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["metric"], row["score_%"], row["n"]) == (
        "fake", "bbox AP", round(100 * COCO.score(store, coco_run)["bbox"]["AP"], 2), 100)
    assert main(["--store", root, "runs", "--name", "r5*"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["run_id", "name", "suite"] and len(table) == 4 and "r56" in table[2]
    assert table[-1] == "(1 rows)"

    # sql: an empty answer is a header and a count, never a pandas repr; markdown for pasting
    assert main(["--store", root, "sql", "SELECT name FROM runs WHERE false"]) == 0
    assert capsys.readouterr().out.splitlines() == ["name", "----", "(0 rows)"]
    assert main(["--store", root, "sql", "--format", "markdown", "SELECT name, suite FROM runs ORDER BY name"]) == 0
    assert capsys.readouterr().out.splitlines() == ["| name | suite |", "|---|---|", "| fake | coco |",
                                                    "| r56 | cifar10 |"]
    frame = store.sql("SELECT name, 0.5 AS x FROM runs ORDER BY name")
    assert format_frame(frame, "csv").splitlines() == ["name,x", "fake,0.5", "r56,0.5"]
    assert format_frame(frame, "table", max_rows=1).splitlines()[-1] == "(2 rows, first 1 shown)"
