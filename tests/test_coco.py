"""COCO suite: parity with pycocotools on real result files, storage fidelity, SQL, bad input, maxDets."""
from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest
from pycocotools.coco import COCO as OfficialCOCO
from pycocotools.cocoeval import COCOeval as OfficialEval

from harness.detection import formats
from harness.detection.evaluate import COCO_SUMMARY_ORDER, KEYPOINT_SUMMARY_ORDER
from harness.detection.suite import COCO, import_ground_truth, read_detections
from harness.errors import HarnessError

GT_2014 = "coco/instances_val2014_100.json"
RESULTS = {
    "bbox": "coco/instances_val2014_fakebbox100_results.json",
    "segm": "coco/instances_val2014_fakesegm100_results.json",
}
KEYPOINTS = "coco/person_keypoints_val2014_fakekeypoints100_results.json"
GT_TINY = "coco/val2017-tiny/instances_val2017.json"
YOLO = "coco/yolov2_val2017_detections.json"


def official(gt_path, results, iou_type, max_dets=None):
    """pycocotools, run as its README says, on the original files."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = OfficialCOCO(str(gt_path))
        dt = gt.loadRes(results if isinstance(results, list) else str(results))
        ev = OfficialEval(gt, dt, iou_type)
        if max_dets is not None:
            ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.fixture
def coco_store(store):
    COCO.ensure_label_sets(store)
    return store


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_summary_equals_pycocotools_exactly(coco_store, shared_data, iou_type):
    run_id = COCO.import_predictions(coco_store, shared_data / RESULTS[iou_type], f"fake-{iou_type}")
    result = COCO.score(coco_store, run_id)
    ours = [result[iou_type][k] for k in COCO_SUMMARY_ORDER]
    theirs = official(shared_data / GT_2014, shared_data / RESULTS[iou_type], iou_type)
    assert ours == list(theirs.stats)
    assert result["label_set"] == "coco-val2014-100" and result["n"] == 100 and result["n_detections"] == 734
    assert result["n_images_in_label_set"] == 100 and not result["partial"]  # an imported file covers them all
    # Whole arrays too; categories without ground truth on these images are -1 there and left out here.
    ev, _, _ = COCO.evaluate(coco_store, run_id, iou_type=iou_type)
    evaluated = np.isin(theirs.params.catIds, ev.category_ids)
    assert 60 < evaluated.sum() < 80
    assert np.array_equal(ev.precision, theirs.eval["precision"][:, :, evaluated])
    assert np.array_equal(ev.recall, theirs.eval["recall"][:, evaluated])
    assert (theirs.eval["precision"][:, :, ~evaluated] == -1).all()


def test_real_yolo_detections_on_val2017_equal_pycocotools(coco_store, shared_data):
    records = json.loads((shared_data / YOLO).read_text())
    tiny_ids = {im["id"] for im in json.loads((shared_data / GT_TINY).read_text())["images"]}
    kept = [r for r in records if r["image_id"] in tiny_ids]
    first_unknown = next(i for i, r in enumerate(records) if r["image_id"] not in tiny_ids)
    with pytest.raises(HarnessError, match=rf"{len(records) - len(kept)} of {len(records)} detections are invalid; "
                                           rf"the first is record {first_unknown} .*drop_unknown_images"):
        COCO.import_predictions(coco_store, shared_data / YOLO, "yolov2")
    run_id = COCO.import_predictions(coco_store, shared_data / YOLO, "yolov2", drop_unknown_images=True)
    meta = coco_store.run_meta(run_id)
    assert meta["label_set"] == "coco-val2017-tiny"
    assert meta["n_detections"] == len(kept) == 193 and meta["n_dropped_unknown_images"] == 10897 - 193
    ours = COCO.score(coco_store, run_id)["bbox"]
    theirs = official(shared_data / GT_TINY, kept, "bbox").stats
    assert [ours[k] for k in COCO_SUMMARY_ORDER] == list(theirs)
    assert 0.1 < ours["AP"] < 0.3  # YOLOv2 with only scores >= 0.6 kept reads low


def test_stored_rows_give_back_the_file(coco_store, shared_data):
    for iou_type, rel in RESULTS.items():
        run_id = COCO.import_predictions(coco_store, shared_data / rel, iou_type)
        original = json.loads((shared_data / rel).read_text())
        assert formats.result_records(read_detections(coco_store, run_id)) == original
    gt = json.loads((shared_data / GT_2014).read_text())
    tables = {t: coco_store.sql(f"SELECT * EXCLUDE label_set FROM {t} WHERE label_set = 'coco-val2014-100'")
              for t in ("coco_images", "coco_annotations", "coco_categories")}
    assert [len(tables[t]) for t in tables] == [len(gt["images"]), len(gt["annotations"]), len(gt["categories"])]


def test_sql_joins_detections_with_ground_truth(coco_store, shared_data):
    run_id = COCO.import_predictions(coco_store, shared_data / RESULTS["bbox"], "fake-bbox")
    records = json.loads((shared_data / RESULTS["bbox"]).read_text())
    gt = json.loads((shared_data / GT_2014).read_text())
    names = {c["id"]: c["name"] for c in gt["categories"]}

    per_category = coco_store.sql(f"""
        SELECT c.name, count(*) AS n FROM coco_detections d
        JOIN coco_categories c ON c.category_id = d.category_id AND c.label_set = 'coco-val2014-100'
        WHERE d.run_id = '{run_id}' GROUP BY c.name""")
    expected = {}
    for r in records:
        expected[names[r["category_id"]]] = expected.get(names[r["category_id"]], 0) + 1
    assert dict(zip(per_category["name"], per_category["n"])) == expected

    # Per image: detections against ground truth objects, and the small (< 32^2 px) share of each.
    per_image = coco_store.sql(f"""
        WITH d AS (SELECT image_id, count(*) AS dets, count(*) FILTER (WHERE area < 1024) AS small_dets
                   FROM coco_detections WHERE run_id = '{run_id}' GROUP BY image_id),
             g AS (SELECT image_id, count(*) AS objects FROM coco_annotations
                   WHERE label_set = 'coco-val2014-100' AND iscrowd = 0 GROUP BY image_id)
        SELECT i.image_id, i.width, coalesce(d.dets, 0) AS dets, coalesce(d.small_dets, 0) AS small_dets,
               coalesce(g.objects, 0) AS objects
        FROM coco_images i LEFT JOIN d USING (image_id) LEFT JOIN g USING (image_id)
        WHERE i.label_set = 'coco-val2014-100' ORDER BY i.image_id""")
    assert len(per_image) == 100 and per_image["dets"].sum() == len(records)
    small = sum(1 for r in records if r["bbox"][2] * r["bbox"][3] < 1024)
    assert per_image["small_dets"].sum() == small
    crowd = sum(1 for a in gt["annotations"] if a["iscrowd"])
    assert per_image["objects"].sum() == len(gt["annotations"]) - crowd


def test_max_dets_pycocotools_reports_minus_one_the_harness_does_not(coco_store, shared_data):
    run_id = COCO.import_predictions(coco_store, shared_data / RESULTS["bbox"], "fake-bbox")
    theirs = official(shared_data / GT_2014, shared_data / RESULTS["bbox"], "bbox", max_dets=(1, 10, 5))
    assert theirs.stats[0] == -1  # pycocotools' summarize reads AP at maxDets=100 whatever the params say
    scored = COCO.score(coco_store, run_id, max_dets=(1, 5, 10))
    # The result says which maxDets made it, so AP at 10 detections per image is not taken for the official AP.
    assert (scored["iou_types"], scored["max_dets"], scored["official_max_dets"]) == (["bbox"], {"bbox": [1, 5, 10]},
                                                                                      False)
    ours = scored["bbox"]
    assert set(ours) >= {"AR@1", "AR@5", "AR@10", "ARs@10"}
    at_10 = theirs.eval["precision"][:, :, :, 0, 2]  # their arrays hold the right numbers; only the summary is off
    assert ours["AP"] == np.mean(at_10[at_10 > -1])
    assert ours["AP"] < COCO.score(coco_store, run_id)["bbox"]["AP"]  # fewer detections per image, lower AP
    default = COCO.score(coco_store, run_id, max_dets=(1, 10, 100))
    assert default["official_max_dets"] and default["max_dets"] == {"bbox": [1, 10, 100]}
    default = default["bbox"]
    assert [default[k] for k in COCO_SUMMARY_ORDER] == list(
        official(shared_data / GT_2014, shared_data / RESULTS["bbox"], "bbox").stats)
    with pytest.raises(HarnessError, match="increasing positive integers"):
        COCO.score(coco_store, run_id, max_dets=(100, 10))


def synthetic_keypoint_ground_truth(shared_data) -> dict:
    """No real keypoint ground truth ships with the data: the real val2014 person boxes get keypoints
    near those of the best-overlapping pycocotools keypoint result, jittered (seeded), so matches are
    partial and the OKS spread is realistic. Crowd boxes and people without a result stay without."""
    gt = json.loads((shared_data / GT_2014).read_text())
    results = json.loads((shared_data / KEYPOINTS).read_text())
    rng = np.random.default_rng(0)
    by_image: dict[int, list] = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r)
    people = []
    for a in gt["annotations"]:
        if a["category_id"] != 1:
            continue
        a = {k: v for k, v in a.items() if k != "segmentation"}
        a["keypoints"], a["num_keypoints"] = [0] * 51, 0
        x, y, w, h = a["bbox"]
        best, best_iou = None, 0.3
        for r in by_image.get(a["image_id"], []):
            k = np.asarray(r["keypoints"], dtype=float).reshape(-1, 3)
            rx0, ry0, rx1, ry1 = k[:, 0].min(), k[:, 1].min(), k[:, 0].max(), k[:, 1].max()
            inter = max(0, min(x + w, rx1) - max(x, rx0)) * max(0, min(y + h, ry1) - max(y, ry0))
            iou = inter / (w * h + (rx1 - rx0) * (ry1 - ry0) - inter + 1e-9)
            if iou > best_iou:
                best, best_iou = k, iou
        if best is not None and not a["iscrowd"]:
            visible = best[:, 2] > 0
            noisy = best[:, :2] + rng.normal(0, 0.04 * math.sqrt(a["area"]), (len(best), 2))
            kps = np.column_stack([noisy, np.where(visible, 2, 0)])
            kps[~visible] = 0
            a["keypoints"], a["num_keypoints"] = [round(float(v), 2) for v in kps.ravel()], int(visible.sum())
        people.append(a)
    person = next(c for c in gt["categories"] if c["id"] == 1)
    person = {**person, "keypoints": [f"k{i}" for i in range(17)], "skeleton": [[16, 14], [14, 12]]}
    return {"images": gt["images"], "annotations": people, "categories": [person]}


def test_keypoints_equal_pycocotools_exactly(store, shared_data, tmp_path):
    gt_path = tmp_path / "person_keypoints_synthetic.json"
    gt = synthetic_keypoint_ground_truth(shared_data)
    gt_path.write_text(json.dumps(gt))
    assert sum(a["num_keypoints"] > 0 for a in gt["annotations"]) > 40
    import_ground_truth(store, gt_path, "coco-keypoints-synthetic")
    run_id = COCO.import_predictions(store, shared_data / KEYPOINTS, "fake-keypoints",
                                     label_set="coco-keypoints-synthetic")
    result = COCO.score(store, run_id)
    assert list(result)[-1] == "keypoints" and result["n_detections"] == 125
    ours = [result["keypoints"][k] for k in KEYPOINT_SUMMARY_ORDER]
    theirs = official(gt_path, shared_data / KEYPOINTS, "keypoints")
    assert ours == list(theirs.stats)
    assert 0.05 < ours[0] < 0.95
    # The same file again is the same run (a run is a file on a dataset); a label set is how it is scored.
    assert COCO.import_predictions(store, shared_data / KEYPOINTS, "on-instances",
                                   label_set="coco-val2014-100") == run_id
    with pytest.raises(HarnessError, match="'coco-val2014-100' has no keypoint ground truth"):
        COCO.score(store, run_id, "coco-val2014-100")


@pytest.mark.parametrize("mutate, message", [
    (lambda rs: rs[5].update(image_id=7), r"1 of 734 detections are invalid; the first is record 5 .*image_id 7 is not"),
    (lambda rs: [r.update(category_id=12) for r in rs[3:10]], r"7 of 734 .* record 3 .*category_id 12 is not"),
    (lambda rs: rs[7]["bbox"].__setitem__(2, float("nan")), r"record 7 .*4 finite numbers"),
    (lambda rs: rs[2]["bbox"].__setitem__(3, -4.0), r"record 2 .*must not be negative"),
    (lambda rs: rs[9].update(image_id="42"), r"record 9 .*image_id must be an integer"),
    (lambda rs: rs[0].pop("score"), r"record 0 .*score must be a finite number"),
    (lambda rs: rs[4].pop("bbox"), r"record 4 .*none of bbox"),
    (lambda rs: rs[1].update(segmentation=[[1, 2, 3]]), r"record 1 .*has bbox, segmentation but the first"),
])
def test_bad_records_are_refused_whole(coco_store, shared_data, tmp_path, mutate, message):
    records = json.loads((shared_data / RESULTS["bbox"]).read_text())
    mutate(records)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(records))
    with pytest.raises(HarnessError, match=message):
        COCO.import_predictions(coco_store, path, "bad", label_set="coco-val2014-100")
    assert coco_store.list_runs() == [] and not list((coco_store.root / "runs").iterdir())


def test_bad_files_and_mismatched_label_sets(coco_store, shared_data, tmp_path):
    (tmp_path / "obj.json").write_text('{"annotations": []}')
    with pytest.raises(HarnessError, match="holds a JSON dict; expected COCO results"):
        COCO.import_predictions(coco_store, tmp_path / "obj.json", "x")
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(HarnessError, match="is not valid JSON"):
        COCO.import_predictions(coco_store, tmp_path / "broken.json", "x")
    gt = json.loads((shared_data / GT_2014).read_text())
    gt["annotations"][3].pop("area")
    gt["annotations"][8]["image_id"] = 7
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    with pytest.raises(HarnessError, match=r"1 of 839 annotations are invalid; the first is record 3 .*has no area"):
        import_ground_truth(coco_store, tmp_path / "gt.json", "broken-gt")
    gt["annotations"][3]["area"] = 1.0
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    with pytest.raises(HarnessError, match=r"record 8 .*not among the file's images"):
        import_ground_truth(coco_store, tmp_path / "gt.json", "broken-gt")
    assert not coco_store.has_label_set("broken-gt")
    run_id = COCO.import_predictions(coco_store, shared_data / RESULTS["bbox"], "fake-bbox")
    with pytest.raises(HarnessError, match="no segmentation results to score as 'segm'"):
        COCO.score(coco_store, run_id, iou_types=["segm"])
    from harness.detection.suite import LVIS

    with pytest.raises(HarnessError, match="not lvis ground truth|not on suite lvis"):
        LVIS.score(coco_store, run_id)
    assert coco_store.sql("SELECT count(*) AS n FROM runs")["n"][0] == 1


def test_suites_are_registered():
    from harness.suites import get_suite

    assert get_suite("coco") is COCO and get_suite("lvis").lvis


def test_cli_import_score_and_sql(tmp_path, shared_data, capsys):
    from harness.cli import main

    store_dir = str(tmp_path / "cli-store")
    assert main(["--store", store_dir, "import", "--suite", "coco", "--name", "fake",
                 str(shared_data / RESULTS["segm"])]) == 0
    capsys.readouterr()
    assert main(["--store", store_dir, "score", "--run", "fake", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    theirs = official(shared_data / GT_2014, shared_data / RESULTS["segm"], "segm")
    assert [printed["segm"][k] for k in COCO_SUMMARY_ORDER] == list(theirs.stats)
    # --iou-type and --max-dets: AP at 50 detections per image, read from pycocotools' own arrays.
    assert main(["--store", store_dir, "score", "--run", "fake", "--json", "--iou-type", "segm",
                 "--max-dets", "1,10,50"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["max_dets"] == {"segm": [1, 10, 50]} and not printed["official_max_dets"]
    theirs = official(shared_data / GT_2014, shared_data / RESULTS["segm"], "segm", max_dets=(1, 10, 50))
    at_50 = theirs.eval["precision"][:, :, :, 0, 2]
    assert theirs.stats[0] == -1 and printed["segm"]["AP"] == np.mean(at_50[at_50 > -1])
    assert main(["--store", store_dir, "score", "--run", "fake", "--iou-type", "bbox"]) == 2
    assert "no bbox results to score as 'bbox'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: not a list of integers
        main(["--store", store_dir, "score", "--run", "fake", "--max-dets", "1,ten"])
    assert "not a comma-separated list of integers" in capsys.readouterr().err
    assert main(["--store", store_dir, "sql", "--format", "csv",
                 "SELECT count(*) AS n FROM coco_detections WHERE segm_counts IS NOT NULL"]) == 0
    assert capsys.readouterr().out.split() == ["n", "734"]


def test_a_run_scores_on_another_label_set_of_its_images(coco_store, shared_data, tmp_path):
    """A label set over half the images (as a relabel of a subset would be): only those images count."""
    run_id = COCO.import_predictions(coco_store, shared_data / RESULTS["bbox"], "fake-bbox")
    records = json.loads((shared_data / RESULTS["bbox"]).read_text())
    gt = json.loads((shared_data / GT_2014).read_text())
    half = {im["id"] for im in gt["images"][:50]}
    subset = {**gt, "images": gt["images"][:50], "annotations": [a for a in gt["annotations"] if a["image_id"] in half]}
    path = tmp_path / "half.json"
    path.write_text(json.dumps(subset))
    import_ground_truth(coco_store, path, "coco-val2014-half")
    inside = [r for r in records if r["image_id"] in half]
    result = COCO.score(coco_store, run_id, label_set="coco-val2014-half")
    assert result["n"] == 50 and result["n_detections_outside_label_set"] == len(records) - len(inside) > 0
    assert [result["bbox"][k] for k in COCO_SUMMARY_ORDER] == list(official(path, inside, "bbox").stats)
