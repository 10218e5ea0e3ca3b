"""harness.detection.evaluate directly (no store): per-category counts and AP, crowd regions, the printed
summary and the per-image limit, each against pycocotools run on the same input or a hand count."""
from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO as OfficialCOCO
from pycocotools.cocoeval import COCOeval as OfficialEval

from harness.detection.evaluate import (COCO_MAX_DETS, KEYPOINT_MAX_DETS, LVIS_MAX_DETS, default_max_dets, evaluate,
                                        limit_per_image, summary_lines)
from harness.errors import HarnessError

GT = "coco/instances_val2014_100.json"
BOXES = "coco/instances_val2014_fakebbox100_results.json"


@pytest.fixture(scope="module")
def gt(shared_data) -> dict:
    return json.loads((shared_data / GT).read_text())


@pytest.fixture(scope="module")
def boxes(shared_data) -> list[dict]:
    return json.loads((shared_data / BOXES).read_text())


def official(gt: dict, results: list[dict], iou_type: str = "bbox", max_dets=None):
    """pycocotools on deep copies (it writes into both), its printed summary captured."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        coco = OfficialCOCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        engine = OfficialEval(coco, coco.loadRes(copy.deepcopy(results)), iou_type)
        if max_dets is not None:
            engine.params.maxDets = list(max_dets)
        engine.evaluate()
        engine.accumulate()
        engine.summarize()
    return engine, out.getvalue()


def ours(gt: dict, results: list[dict], **kwargs):
    return evaluate(copy.deepcopy(gt), copy.deepcopy(results), "bbox", **kwargs)


def official_per_category(engine) -> dict[int, tuple[int, float]]:
    """(valid ground truth, AP) per category id from pycocotools' own per-image records and arrays."""
    p = engine.params
    n_area, n_img = len(p.areaRng), len(p.imgIds)
    out = {}
    for k, cid in enumerate(p.catIds):
        records = [engine.evalImgs[k * n_area * n_img + i] for i in range(n_img)]  # area index 0: all
        num_gt = sum(int((np.asarray(r["gtIgnore"]) == 0).sum()) for r in records if r is not None)
        s = engine.eval["precision"][:, :, k, 0, -1]
        out[cid] = (num_gt, float(s[s > -1].mean()) if (s > -1).any() else float("nan"))
    return out


def test_per_category_counts_and_ap_are_pycocotools(gt, boxes):
    ev = ours(gt, boxes)
    table = ev.per_category().set_index("category_id")
    engine, _ = official(gt, boxes)
    theirs = official_per_category(engine)
    assert list(table.index) == sorted(c for c, (n, _) in theirs.items() if n > 0)
    for cid, row in table.iterrows():
        n, ap = theirs[cid]
        assert row["num_gt"] == n and row["AP"] == pytest.approx(ap, abs=1e-12), cid
        assert row["name"] == engine.cocoGt.cats[cid]["name"]
    # by hand: annotations that are not crowd, per category
    by_hand: dict[int, int] = {}
    for a in gt["annotations"]:
        if not a["iscrowd"]:
            by_hand[a["category_id"]] = by_hand.get(a["category_id"], 0) + 1
    assert table["num_gt"].to_dict() == {c: by_hand.get(c, 0) for c in table.index}
    assert int(table["num_gt"].sum()) == 839 - 9  # 839 instances, 9 of them crowd regions
    # AP50 per category from the same array at IoU 0.5; AR from recall
    k = list(engine.params.catIds).index(1)
    s50 = engine.eval["precision"][0, :, k, 0, -1]
    assert table.loc[1, "AP50"] == pytest.approx(s50[s50 > -1].mean())
    assert table.loc[1, "AR"] == pytest.approx(engine.eval["recall"][:, k, 0, -1].mean())


def test_a_category_with_only_crowd_ground_truth_counts_zero(gt, boxes):
    """A category whose every annotation is a crowd region: no valid ground truth, AP absent (NaN)."""
    crowd_only = copy.deepcopy(gt)
    crowds = [a for a in crowd_only["annotations"] if a["iscrowd"]]
    cid = crowds[0]["category_id"]
    crowd_only["annotations"] = [a for a in crowd_only["annotations"] if a["category_id"] != cid or a["iscrowd"]]
    table = ours(crowd_only, boxes).per_category().set_index("category_id")
    assert table.loc[cid, "num_gt"] == 0 and np.isnan(table.loc[cid, "AP"]) and np.isnan(table.loc[cid, "AR"])


def test_printed_summary_is_pycocotools_line_for_line(gt, boxes):
    ev = ours(gt, boxes)
    _, printed = official(gt, boxes)
    assert summary_lines(ev.summary, "bbox", list(COCO_MAX_DETS)) == printed.strip("\n").splitlines()[-12:]


def test_other_max_dets_summary_matches_pycocotools_where_it_reads_them(gt, boxes):
    ev = ours(gt, boxes, max_dets=(5, 20, 100))
    engine, _ = official(gt, boxes, max_dets=(5, 20, 100))
    assert [ev.summary[k] for k in ("AR@5", "AR@20", "AR@100")] == list(engine.stats[6:9])
    assert ev.summary["AP"] == engine.stats[0] and ev.summary["ARl@100"] == engine.stats[11]


def _far_crowd(gt: dict, image_id: int, category_id: int) -> dict:
    """``gt`` plus one crowd region in a corner of an image, 1 x 1 pixels, of a category."""
    out = copy.deepcopy(gt)
    out["annotations"].append({"id": 10**9, "image_id": image_id, "category_id": category_id, "iscrowd": 1,
                               "bbox": [0.0, 0.0, 1.0, 1.0], "area": 1.0,
                               "segmentation": {"counts": [0, 1, 10**6], "size": [1000, 1000]}})
    return out


@settings(max_examples=8, deadline=None, database=None, derandomize=True)
@given(pick=st.integers(0, 10**6))
def test_a_crowd_region_no_detection_touches_changes_no_number(gt, boxes, pick):
    images = sorted({im["id"] for im in gt["images"]})
    categories = sorted({a["category_id"] for a in gt["annotations"]})
    image_id, category_id = images[pick % len(images)], categories[(pick // 7) % len(categories)]
    touched = [b for b in boxes if b["image_id"] == image_id and b["category_id"] == category_id
               and b["bbox"][0] < 1 and b["bbox"][1] < 1]
    if touched:
        return
    before, after = ours(gt, boxes), ours(_far_crowd(gt, image_id, category_id), boxes)
    assert after.summary == before.summary
    b, a = before.per_category().set_index("category_id"), after.per_category().set_index("category_id")
    assert a["num_gt"].to_dict() == {**b["num_gt"].to_dict(), **({} if category_id in b.index else {category_id: 0})}


def test_a_crowd_region_over_a_false_positive_ignores_it_as_pycocotools_does(gt, boxes):
    """A detection on a crowd region is neither a true nor a false positive: AP of its category rises."""
    image_id = boxes[0]["image_id"]
    cid = 1
    fp = {"image_id": image_id, "category_id": cid, "bbox": [1.0, 1.0, 30.0, 30.0], "score": 0.99}
    with_fp = boxes + [fp]
    crowd = copy.deepcopy(gt)
    crowd["annotations"].append({"id": 10**9, "image_id": image_id, "category_id": cid, "iscrowd": 1,
                                 "bbox": [0.0, 0.0, 40.0, 40.0], "area": 1600.0,
                                 "segmentation": {"counts": [0, 1600, 10**6], "size": [1000, 1000]}})
    plain, covered = ours(gt, with_fp), ours(crowd, with_fp)
    ap_plain = plain.per_category().set_index("category_id").loc[cid, "AP"]
    ap_covered = covered.per_category().set_index("category_id").loc[cid, "AP"]
    assert ap_covered > ap_plain
    engine, _ = official(crowd, with_fp)
    assert ap_covered == pytest.approx(official_per_category(engine)[cid][1], abs=1e-12)
    assert list(covered.summary.values()) == pytest.approx(list(engine.stats), abs=1e-12)


def test_limit_per_image_keeps_the_highest_scores_of_each_image():
    records = [{"image_id": i % 2, "score": s, "category_id": 1} for i, s in enumerate([.1, .9, .5, .3, .7, .8])]
    # image 0: scores .1 .5 .7; image 1: .9 .3 .8
    kept = limit_per_image(records, 2)
    assert sorted((r["image_id"], r["score"]) for r in kept) == [(0, .5), (0, .7), (1, .8), (1, .9)]
    # no image over the limit: every record kept, grouped by image in order of first appearance
    assert limit_per_image(records, 3) == records[0::2] + records[1::2]
    assert limit_per_image([], 5) == []


def test_default_max_dets_are_the_official_protocols():
    assert default_max_dets("bbox") == (1, 10, 100) == default_max_dets("segm")
    assert default_max_dets("keypoints") == KEYPOINT_MAX_DETS == (20,)
    assert default_max_dets("bbox", lvis=True) == (LVIS_MAX_DETS,) == (300,)


def test_image_ids_restrict_the_evaluation(gt, boxes):
    first = sorted({im["id"] for im in gt["images"]})[:10]
    ev = ours(gt, boxes, image_ids=first + first[:2])
    assert ev.image_ids == first
    sub = {**gt, "images": [im for im in gt["images"] if im["id"] in first]}
    engine, _ = official(sub, [b for b in boxes if b["image_id"] in first])
    assert ev.summary["AP"] == engine.stats[0]
    assert int(ev.per_category()["num_gt"].sum()) == sum(
        1 for a in gt["annotations"] if a["image_id"] in first and not a["iscrowd"])


@pytest.mark.parametrize("kwargs,message", [
    ({"iou_type": "boxes"}, "iou type 'boxes' is not supported here; expected one of bbox, segm, keypoints"),
    ({"iou_type": "keypoints", "lvis": True}, "expected one of bbox, segm$"),
    ({"iou_type": "bbox", "lvis": True, "max_dets": (100,)}, r"max_dets \(100,\) does not apply to LVIS"),
    ({"iou_type": "bbox", "max_dets": (100, 10)}, "must be increasing positive integers"),
    ({"iou_type": "bbox", "max_dets": (0, 10)}, "must be increasing positive integers"),
])
def test_bad_arguments_are_refused(gt, boxes, kwargs, message):
    with pytest.raises(HarnessError, match=message):
        evaluate(copy.deepcopy(gt), copy.deepcopy(boxes), **kwargs)


def test_an_array_of_results_holds_boxes_only(gt):
    with pytest.raises(HarnessError, match="an array of results holds boxes only; pass result records for segm"):
        evaluate(copy.deepcopy(gt), np.zeros((1, 7)), "segm")
