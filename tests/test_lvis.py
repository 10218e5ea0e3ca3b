"""LVIS suite on the real 100-image validation ground truth.

No real LVIS result file is available, so result sets are built from the ground truth with
controlled, seeded noise. One of them is scored against numbers computed once by the reference
implementation (lvis-api); the PyPI ``lvis`` package does not run on numpy 2, so it cannot be a test
dependency. The other tests check properties that LVIS's rules fix: perfect results score 1; removing one category's
detections changes that category only; detections of categories an image has no information
about are ignored (federated), those of its negative categories count as false positives;
unmatched detections of not-exhaustively annotated categories are ignored; at most 300
detections per image count, the highest-scoring.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from harness.detection.suite import LVIS
from harness.errors import HarnessError

GT = "lvis/lvis_val_100.json"
SUMMARY = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf", "AR@300", "ARs@300", "ARm@300",
           "ARl@300")


@pytest.fixture(scope="module")
def gt(shared_data):
    return json.loads((shared_data / GT).read_text())


def from_ground_truth(gt, noise=0.0, seed=0, segm=False):
    """One detection per ground truth object, boxes jittered by ``noise`` x their size, random scores."""
    rng = np.random.default_rng(seed)
    out = []
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        dx, dy, dw, dh = rng.normal(0, noise, 4) * [w, h, w, h] if noise else (0, 0, 0, 0)
        rec = {"image_id": a["image_id"], "category_id": a["category_id"], "score": float(rng.uniform(0.05, 1)),
               "bbox": [x + dx, y + dy, max(w + dw, 1.0), max(h + dh, 1.0)]}
        if segm:  # polygons without a box: the import turns them into RLE, area from the mask
            rec["segmentation"] = a["segmentation"]
            del rec["bbox"]
        out.append(rec)
    return out


def score(store, tmp_path, records, name, iou_type="bbox"):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(records))
    run_id = LVIS.import_predictions(store, path, name)
    ev, label_set, _ = LVIS.evaluate(store, run_id, iou_type=iou_type)
    assert label_set == "lvis-val-100"
    return ev


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_perfect_results_score_one(store, tmp_path, gt, iou_type):
    ev = score(store, tmp_path, from_ground_truth(gt, segm=iou_type == "segm"), "perfect", iou_type)
    stored = store.sql("SELECT count(segm_counts) AS rle, count(bbox_x) AS boxes FROM coco_detections")
    assert stored.values.tolist() == ([[len(gt["annotations"]), 0]] if iou_type == "segm"
                                      else [[0, len(gt["annotations"])]])
    assert list(ev.summary) == list(SUMMARY) and ev.max_dets == [300]
    groups = {c["frequency"] for c in gt["categories"] if c["id"] in {a["category_id"] for a in gt["annotations"]}}
    for key, value in ev.summary.items():
        if key in ("APr", "APc", "APf") and key[-1] not in groups:
            assert value == -1, key
        else:
            assert value == pytest.approx(1.0, abs=1e-12), key
    assert ev.per_category()["AP"].dropna().size == len({a["category_id"] for a in gt["annotations"]})


def test_dropping_a_category_lowers_exactly_that_category(store, tmp_path, gt):
    noisy = from_ground_truth(gt, noise=0.08)
    full = score(store, tmp_path, noisy, "noisy").per_category().set_index("category_id")
    assert 0.3 < np.nanmean(full["AP"]) < 0.95
    victim = int(full["num_gt"].idxmax())
    without = score(store, tmp_path, [r for r in noisy if r["category_id"] != victim], "without")
    after = without.per_category().set_index("category_id")
    assert full.loc[victim, "AP"] > 0 and after.loc[victim, "AP"] == 0
    others = full.index != victim
    pd.testing.assert_frame_equal(full[others], after[others])
    assert without.summary["AP"] < np.nanmean(full["AP"])


def test_federated_rules(store, tmp_path, gt):
    base = from_ground_truth(gt, noise=0.08)
    reference = score(store, tmp_path, base, "base")
    present = {}
    for a in gt["annotations"]:
        present.setdefault(a["image_id"], set()).add(a["category_id"])
    annotated = {c for cats in present.values() for c in cats}
    image = next(im for im in gt["images"] if set(im["neg_category_ids"]) & annotated)
    negative = sorted(set(image["neg_category_ids"]) & annotated)[0]
    unknown = next(c["id"] for c in gt["categories"]
                   if c["id"] in annotated and c["id"] not in present.get(image["id"], set())
                   and c["id"] not in image["neg_category_ids"])
    box = {"image_id": image["id"], "bbox": [1.0, 1.0, 30.0, 30.0], "score": 0.99}

    # A category the image says nothing about: the detection is not evaluated at all.
    ignored = score(store, tmp_path, base + [{**box, "category_id": unknown}], "unknown-category")
    assert ignored.summary == reference.summary
    # A category the image is known not to contain: a false positive for that category.
    wrong = score(store, tmp_path, base + [{**box, "category_id": negative}], "negative-category")
    before, after = (e.per_category().set_index("category_id") for e in (reference, wrong))
    assert after.loc[negative, "AP"] < before.loc[negative, "AP"]
    others = before.index != negative
    pd.testing.assert_frame_equal(before[others], after[others])

    # Not exhaustively annotated: an unmatched detection there is ignored, unlike on an exhaustive image.
    lax = next(im for im in gt["images"] if im["not_exhaustive_category_ids"])
    category = lax["not_exhaustive_category_ids"][0]
    far = {"image_id": lax["id"], "category_id": category, "bbox": [0.0, 0.0, 2.0, 2.0], "score": 0.999}
    assert score(store, tmp_path, base + [far], "not-exhaustive").summary == reference.summary
    strict = next(im for im in gt["images"] if category in present.get(im["id"], set())
                  and category not in im["not_exhaustive_category_ids"])
    penalised = score(store, tmp_path, base + [{**far, "image_id": strict["id"]}], "exhaustive")
    assert penalised.per_category().set_index("category_id").loc[category, "AP"] < before.loc[category, "AP"]


def test_at_most_300_detections_per_image(store, tmp_path, gt):
    base = from_ground_truth(gt)
    counts = pd.Series([r["image_id"] for r in base]).value_counts()
    image = int(counts.index[0])
    negative = gt["images"][[im["id"] for im in gt["images"]].index(image)]["neg_category_ids"][0]
    junk = [{"image_id": image, "category_id": negative, "bbox": [float(i), 0.0, 5.0, 5.0], "score": 1.0 + i}
            for i in range(300)]
    crowded = score(store, tmp_path, base + junk, "crowded")
    # The 300 junk detections outscore the image's real ones, which therefore do not count at all.
    pushed_out = score(store, tmp_path, [r for r in base if r["image_id"] != image] + junk, "pushed-out")
    assert crowded.summary == pushed_out.summary
    assert crowded.summary["AR@300"] < 1.0
    one_slot_left = score(store, tmp_path, base + junk[1:], "one-slot-left")
    assert one_slot_left.summary["AR@300"] > crowded.summary["AR@300"]


def test_lvis_refuses_keypoints_and_coco_label_sets(store, tmp_path, gt):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(from_ground_truth(gt)[:10]))
    run_id = LVIS.import_predictions(store, path, "few")
    with pytest.raises(HarnessError, match="has no keypoints results"):
        LVIS.score(store, run_id, iou_types=["keypoints"])
    # LVIS always counts 300 detections per image: another maxDets is refused, not silently replaced.
    with pytest.raises(HarnessError, match=r"max_dets \(1, 10, 100\) does not apply to LVIS.*300 highest-scoring"):
        LVIS.score(store, run_id, max_dets=(1, 10, 100))
    result = LVIS.score(store, run_id, max_dets=(300,))
    assert result["max_dets"] == {"bbox": [300]} and result["official_max_dets"]
    assert result["bbox"] == LVIS.score(store, run_id)["bbox"]
    from harness.detection.suite import COCO

    COCO.ensure_label_sets(store, ["coco-val2014-100"])
    with pytest.raises(HarnessError, match="not lvis ground truth"):
        LVIS.score(store, run_id, label_set="coco-val2014-100")


def reference_case(gt):
    """Jittered boxes of every object, plus on each image one box of a category it is known not to contain
    (a false positive) and one of a category it says nothing about (ignored)."""
    records = from_ground_truth(gt, noise=0.1, seed=4)
    rng = np.random.default_rng(5)
    annotated = {a["category_id"] for a in gt["annotations"]}
    for image in gt["images"]:
        box = [float(rng.uniform(0, 200)), float(rng.uniform(0, 200)), 40.0, 30.0]
        if image["neg_category_ids"]:
            records.append({"image_id": image["id"], "category_id": image["neg_category_ids"][0], "bbox": box,
                            "score": float(rng.uniform(0.05, 1))})
        silent = sorted(annotated - set(image["neg_category_ids"]) - set(image["not_exhaustive_category_ids"])
                        - {a["category_id"] for a in gt["annotations"] if a["image_id"] == image["id"]})
        records.append({"image_id": image["id"], "category_id": silent[0], "bbox": box, "score": 0.5})
    return records


# lvis-api's numbers for reference_case on the shipped 100 images, computed once with the PyPI package lvis
# 0.5.3 (LVISEval(gt, LVISResults(gt, results), "bbox"): evaluate, accumulate, summarize; its eval.py patched
# np.float -> float for numpy 2, and its __init__ without the cv2 visualiser).
LVIS_API_REFERENCE = {
    "AP": 0.4089566394612164,
    "AP50": 0.9247105619672125,
    "AP75": 0.2943747735776555,
    "APs": 0.4207820083316216,
    "APm": 0.4005211311183171,
    "APl": 0.43417006607493047,
    "APr": 0.19999999999999998,
    "APc": 0.43235777149143484,
    "APf": 0.4058555242320004,
    "AR@300": 0.44351804623373997,
    "ARs@300": 0.4388744712398516,
    "ARm@300": 0.43395667052245995,
    "ARl@300": 0.44836093857832987,
}


def test_ap_matches_the_lvis_api_reference(store, tmp_path, gt):
    ev = score(store, tmp_path, reference_case(gt), "reference")
    assert set(ev.summary) == set(LVIS_API_REFERENCE)
    for key, expected in LVIS_API_REFERENCE.items():
        assert ev.summary[key] == pytest.approx(expected, abs=1e-12), key
