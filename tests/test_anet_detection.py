"""ActivityNet v1.3 temporal detection and proposals: hand-computed cases and real caption segments."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from harness.activitynet import formats, temporal
from harness.activitynet.suites import ANET_DETECTION
from harness.errors import HarnessError


def frame(rows, score=False):
    cols = ["key", "label", "start", "end"] + (["score"] if score else [])
    return pd.DataFrame(rows, columns=cols)


def test_average_precision_by_hand():
    gt = frame([("v1", "A", 0, 10), ("v1", "A", 20, 30), ("v1", "B", 40, 50)])
    det = frame([("v1", "A", 0, 10, 0.9),      # TP everywhere
                 ("v1", "A", 0, 10, 0.8),      # duplicate of a matched segment: FP
                 ("v1", "A", 22.2, 30, 0.7),   # tIoU 0.78 with [20, 30]: TP up to 0.75, FP above
                 ("v2", "A", 0, 5, 0.6)],      # a video without ground truth: FP
                score=True)
    r = temporal.evaluate_detection(gt, det)
    # TP FP TP FP: precision 1, 1/2, 2/3, 1/2 at recall 1/2, 1/2, 1, 1 -> AP 1/2 + 1/2 * 2/3 = 5/6;
    # TP FP FP FP -> AP 1/2.  Class B has no detection: AP 0.
    expected_a = [5 / 6] * 6 + [0.5] * 4
    assert r["ap_per_class"]["A"] == pytest.approx(expected_a)
    assert r["ap_per_class"]["B"] == [0.0] * 10
    assert r["mAP"] == pytest.approx([a / 2 for a in expected_a])
    assert r["average_mAP"] == pytest.approx(0.35)
    assert r["n_classes"] == 2 and not r["class_agnostic"]


def test_scores_order_the_matching():
    gt = frame([("v1", "A", 0, 10)])
    # The lower-scored exact detection comes second and finds the segment taken.
    det = frame([("v1", "A", 0, 6, 0.9), ("v1", "A", 0, 10, 0.5)], score=True)
    r = temporal.evaluate_detection(gt, det, tious=[0.5, 0.7])
    # At 0.5 the first (tIoU 0.6) is a TP: AP 1.  At 0.7 only the second hits: precision 1/2 at recall 1.
    assert r["mAP"] == pytest.approx([1.0, 0.5])


def test_a_tiou_exactly_at_the_threshold_matches():
    # [0, 5] on [0, 10] and [0, 3] on [0, 4]: tIoU exactly 0.5 and 0.75 in binary floating point.
    assert temporal.segment_iou(np.array([0.0, 5.0]), np.array([[0.0, 10.0]]))[0] == 0.5
    assert temporal.segment_iou(np.array([0.0, 3.0]), np.array([[0.0, 4.0]]))[0] == 0.75
    gt = frame([("v1", "A", 0, 10), ("v2", "A", 0, 4)])
    det = frame([("v1", "A", 0, 5, 0.9), ("v2", "A", 0, 3, 0.8)], score=True)
    r = temporal.evaluate_detection(gt, det, tious=[0.5, 0.75, 0.8])
    # At 0.5 both are hits (AP 1); at 0.75 the first is a FP and the second a hit, precision 1/2 at recall
    # 1/2: AP 1/4; at 0.8 neither.
    assert r["mAP"] == pytest.approx([1.0, 0.25, 0.0])
    assert temporal.evaluate_detection(gt, det)["mAP"][0] == 1.0  # the official first threshold, 0.5


def test_detection_labels_must_be_ground_truth_classes():
    gt = frame([("v1", "A", 0, 10)])
    with pytest.raises(HarnessError, match=r"not classes of the ground truth, first \['Z'\]"):
        temporal.evaluate_detection(gt, frame([("v1", "Z", 0, 10, 1.0)], score=True))
    with pytest.raises(HarnessError, match="no class labels"):
        temporal.evaluate_detection(gt, frame([("v1", None, 0, 10, 1.0)], score=True))


def test_proposal_recall_by_hand():
    gt = frame([("v1", None, 0, 10), ("v2", None, 0, 5)])
    props = frame([("v1", None, 50, 60, 0.9), ("v1", None, 0, 10, 0.8)], score=True)
    r = temporal.evaluate_proposals(gt, props, max_avg_nr_proposals=2)
    # Two videos, two proposals: v1 keeps both; the hit is its 2nd best, found once v1 may use 2
    # proposals (AN >= 1.0); v2 has none.  Recall is 0 up to AN 0.98, then 1/2 up to AN 2.
    assert r["average_recall"][:49] == [0.0] * 49 and r["average_recall"][49:] == [0.5] * 51
    assert r["average_nr_proposals"][0] == pytest.approx(0.02) and r["average_nr_proposals"][-1] == pytest.approx(2)
    # Area: 0.02 * 0.5 / 2 + 1.0 * 0.5 = 0.505, over AN 2 -> 25.25 %.
    assert r["AUC"] == pytest.approx(25.25)
    assert r["AR@1"] == pytest.approx(0.5)


def test_a_proposal_exactly_at_the_threshold_recalls():
    gt = frame([("v1", None, 0, 10), ("v2", None, 0, 4)])
    props = frame([("v1", None, 0, 5, 0.9), ("v2", None, 0, 3, 0.8)], score=True)  # tIoU 0.5 and 0.75
    r = temporal.evaluate_proposals(gt, props, tious=[0.5, 0.75, 0.8], max_avg_nr_proposals=1)
    assert [row[-1] for row in r["recall"]] == [1.0, 0.5, 0.0]


def test_proposal_budget_is_scaled_to_the_average():
    gt = frame([("v1", None, 0, 10)])
    props = frame([("v1", None, 50, 60, 0.9), ("v1", None, 0, 10, 0.8)], score=True)
    r = temporal.evaluate_proposals(gt, props, max_avg_nr_proposals=2)
    # Only the last point (both proposals) finds the segment: area 0.02 * 1 / 2 over AN 2.
    assert r["average_recall"][-1] == 1.0 and r["average_recall"][-2] == 0.0
    assert r["AUC"] == pytest.approx(0.5)


@pytest.fixture
def mdvc_as_detections(tmp_path, shared_data):
    """MDVC's val_1 segments (exactly the ground-truth segments of the 4,483 available videos) as
    a v1.3-style submission: ids without the ``v_`` prefix, score 1 / (rank + 1)."""
    rows, _ = formats.read_caption_submission(shared_data / "activitynet/mdvc_results_val_1_e30.json")
    results: dict = {}
    for key, rank, start, end in zip(rows["key"], rows["rank"], rows["start"], rows["end"]):
        results.setdefault(key[2:], []).append({"label": "event", "score": 1 / (rank + 1), "segment": [start, end]})
    det = tmp_path / "det.json"
    det.write_text(json.dumps({"version": "VERSION 1.3", "external_data": {}, "results": results}))
    props = tmp_path / "props.json"
    for entries in results.values():
        for e in entries:
            del e["label"]
    props.write_text(json.dumps({"version": "VERSION 1.3", "external_data": {}, "results": results}))
    return det, props


def test_caption_segments_as_class_agnostic_ground_truth(store, mdvc_as_detections):
    det_path, prop_path = mdvc_as_detections
    share = 15921 / 17505  # segments of the available videos among all val_1 segments
    prop_run = ANET_DETECTION.import_predictions(store, prop_path, "mdvc-proposals")
    r = ANET_DETECTION.score(store, prop_run)  # default: anet-captions-val_1, class-agnostic
    assert r["label_set"] == "anet-captions-val_1" and r["task"] == "proposals" and r["n"] == 4917
    assert r["average_recall"][-1] == pytest.approx(share, abs=1e-12)
    assert r["average_nr_proposals"][-1] == pytest.approx(100)
    assert r["AR@100"] == pytest.approx(share, abs=1e-12)
    assert np.all(np.diff(r["average_recall"]) >= 0)
    assert r["n_unknown_videos"] == 0

    det_run = ANET_DETECTION.import_predictions(store, det_path, "mdvc-detections")
    d = ANET_DETECTION.score(store, det_run)
    # Every detection is a true positive: precision 1 up to the recall reached.
    assert d["class_agnostic"] and d["mAP"] == pytest.approx([share] * 10, abs=1e-12)
    assert d["average_mAP"] == pytest.approx(share, abs=1e-12)


def jittered_submission(shared_data, labelled: bool) -> dict:
    """BMT's val_1 event segments (shipped; they are the ground-truth segments of the videos BMT had) moved
    and stretched by seeded noise of 15 % of their length, so that their tIoUs spread over the thresholds,
    with distinct random scores (no tie leaves the order to a sort), as a v1.3 submission (ids without v_)."""
    rows, _ = formats.read_caption_submission(shared_data / "activitynet/bmt_captioning_results_val_1_e26.json")
    rng = np.random.default_rng(14)
    start, end = np.minimum(rows["start"], rows["end"]), np.maximum(rows["start"], rows["end"])
    length = end - start
    start = start + rng.normal(0, 0.15, len(rows)) * length
    end = np.maximum(end + rng.normal(0, 0.15, len(rows)) * length, start)
    score = (rng.permutation(len(rows)) + 1.0) / len(rows)
    results: dict = {}
    for key, s, e, p in zip(rows["key"], start, end, score):
        entry = {"score": float(p), "segment": [float(s), float(e)]}
        if labelled:
            entry["label"] = "event"
        results.setdefault(key[2:], []).append(entry)
    return {"version": "VERSION 1.3", "external_data": {}, "results": results}


# The official evaluator's numbers for jittered_submission (labelled: detection; unlabelled: proposals) against
# the val_1 caption segments (class-agnostic: one class "event"), computed once on 2026-12-01 with
# activitynet/ActivityNet Evaluation/eval_detection.py and eval_proposal.py at commit
# 82304fa9f4a7219421df13dae6347a445c4cf5bc, ported to Python 3 and numpy 2 by syntax only (print, iteritems,
# urllib2, xrange, np.float/np.int -> float/int, np.trapz -> np.trapezoid), with check_status=False (the
# blocked-video list needs the network) and max_avg_nr_proposals=100 as get_proposal_performance.py passes;
# ground truth: the rows of label set anet-captions-val_1 written as a v1.3 database. Equal to the last digit.
OFFICIAL_JITTERED_VAL_1 = {
    "mAP": [0.8884363672359593,
            0.8654253741436517,
            0.818670344246606,
            0.7375537411519199,
            0.6082990386899064,
            0.4241693518577205,
            0.2363943552243532,
            0.09412570990550126,
            0.020873976473649185,
            0.0015014854314007618],
    "average_mAP": 0.4695449744360668,  # printed by the official tool as "Average-mAP"
    "proposals_AUC": 56.613978863181934,  # printed as "Area Under the AR vs AN curve: ...%"
    "average_recall": [0.07286489574407314, 0.2771151099685804, 0.4263524707226507] + [0.5790059982862038] * 97,
    "average_nr_proposals_last": 100.0,
}


@pytest.mark.slow
def test_jittered_segments_match_the_official_evaluator(store, shared_data, tmp_path):
    for labelled, name in ((True, "bmt-detections"), (False, "bmt-proposals")):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(jittered_submission(shared_data, labelled)))
        ANET_DETECTION.import_predictions(store, path, name)
    detections = ANET_DETECTION.score(store, store.resolve_run("bmt-detections")["run_id"], progress=False)
    assert detections["class_agnostic"] and detections["n"] == 4917
    np.testing.assert_allclose(detections["mAP"], OFFICIAL_JITTERED_VAL_1["mAP"], rtol=1e-12, atol=1e-15)
    assert detections["average_mAP"] == pytest.approx(OFFICIAL_JITTERED_VAL_1["average_mAP"], rel=1e-12)
    proposals = ANET_DETECTION.score(store, store.resolve_run("bmt-proposals")["run_id"])
    assert proposals["AUC"] == pytest.approx(OFFICIAL_JITTERED_VAL_1["proposals_AUC"], rel=1e-12)
    np.testing.assert_allclose(proposals["average_recall"], OFFICIAL_JITTERED_VAL_1["average_recall"], rtol=1e-12,
                               atol=1e-15)
    assert proposals["average_nr_proposals"][-1] == pytest.approx(OFFICIAL_JITTERED_VAL_1["average_nr_proposals_last"],
                                                                  rel=1e-12)


def test_v13_ground_truth_label_set(tmp_path, store):
    database = {
        "vid1": {"subset": "validation", "duration": 60.0, "annotations": [
            {"segment": [0, 10], "label": "Long jump"}, {"segment": [30, 40], "label": "Shot put"}]},
        "vid2": {"subset": "validation", "duration": 20.0, "annotations": [
            {"segment": [5, 15], "label": "Long jump"}]},
        "vid3": {"subset": "training", "duration": 9.0, "annotations": [{"segment": [0, 9], "label": "Shot put"}]},
    }
    gt_path = tmp_path / "activity_net.v1-3.min.json"
    gt_path.write_text(json.dumps({"version": "VERSION 1.3", "taxonomy": [], "database": database}))
    ANET_DETECTION.import_ground_truth(store, gt_path, "anet13-val")
    sub = {"version": "VERSION 1.3", "external_data": {}, "results": {
        "vid1": [{"label": "Long jump", "score": 0.9, "segment": [0, 10]},
                 {"label": "Shot put", "score": 0.8, "segment": [30, 40]}],
        "vid2": [{"label": "Long jump", "score": 0.4, "segment": [50, 60]}],
        "vid3": [{"label": "Shot put", "score": 0.95, "segment": [0, 9]}]}}
    path = tmp_path / "det.json"
    path.write_text(json.dumps(sub))
    run_id = ANET_DETECTION.import_predictions(store, path, "toy")
    r = ANET_DETECTION.score(store, run_id, "anet13-val")
    # Long jump: TP then FP, recall 1/2 -> AP 1/2.  Shot put: vid3 is training (no validation
    # ground truth) so its detection is a FP ranked first, then the TP: AP = 1/2 * 1 ... = 0.5.
    assert r["ap_per_class"]["Long jump"] == pytest.approx([0.5] * 10)
    assert r["ap_per_class"]["Shot put"] == pytest.approx([0.5] * 10)
    assert r["average_mAP"] == pytest.approx(0.5) and r["n"] == 2 and r["n_unknown_videos"] == 1
    with pytest.raises(HarnessError, match=r"no annotated video in subset 'testing'.*'training', 'validation'"):
        ANET_DETECTION.import_ground_truth(store, gt_path, "anet13-test", subset="testing")


@pytest.mark.parametrize("entry, message", [
    ({"label": "A", "score": 1.0, "segment": [10, 5]}, "ends before it starts"),
    ({"label": "A", "score": float("nan"), "segment": [0, 5]}, "expected a finite number"),
    ({"label": "A", "segment": [0, 5]}, "expected an object with keys"),
    ({"label": 7, "score": 1.0, "segment": [0, 5]}, "expected a class name"),
])
def test_bad_detection_files_are_refused(tmp_path, store, entry, message):
    path = tmp_path / "det.json"
    path.write_text(json.dumps({"version": "1.3", "external_data": {}, "results": {"vid1": [entry]}}))
    with pytest.raises(HarnessError, match=message):
        ANET_DETECTION.import_predictions(store, path, "bad")
    assert store.list_runs() == []


def test_detections_and_proposals_do_not_mix(tmp_path, store):
    path = tmp_path / "det.json"
    path.write_text(json.dumps({"version": "1.3", "external_data": {}, "results": {"vid1": [
        {"label": "A", "score": 1.0, "segment": [0, 5]}, {"score": 0.5, "segment": [0, 5]}]}}))
    with pytest.raises(HarnessError, match="expected all detections .labelled. or all proposals"):
        formats.read_detection_submission(path)
