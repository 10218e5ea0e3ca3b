"""ActivityNet v1.3 temporal action detection and proposal metrics.

Follows the official ``Evaluation/eval_detection.py`` and ``eval_proposal.py`` of
activitynet/ActivityNet:

* detection: per class, detections sorted by decreasing score are matched
  greedily, one to one, to the not yet matched ground-truth segment of the
  same video with the highest tIoU, if that tIoU >= the threshold; AP is the
  VOC-2011 interpolated area under precision/recall; mAP averages the classes
  of the ground truth; the headline number averages mAP over tIoU
  0.5:0.05:0.95.  A class without detections has AP 0; a detection in a video
  without ground truth of its class is a false positive.
* proposals: each video keeps its best-scored proposals, the number scaled so
  that videos average ``max_avg_nr_proposals`` (100); recall at tIoU >= t
  (a ground-truth segment counts once, whichever proposal hits it) is
  measured at 1..100 % of those, averaged over the thresholds (AR) and
  plotted against the average number of proposals per video (AN); the score
  is the area under that curve divided by its last AN (percent).

Where the official tools differ from this: ties in score keep submission
order (they use an unstable sort); the blocked-video list of the 2016 server is
not applied; a class with ground truth and no detections scores 0 instead of
stopping the evaluation.
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..errors import HarnessError
from ..metrics import TEMPORAL_VERSION

TIOUS = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))
MAX_AVG_NR_PROPOSALS = 100
METRIC_VERSION = TEMPORAL_VERSION


def segment_iou(target: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """tIoU of one [start, end] with each row of ``candidates``, in the official arithmetic."""
    tt1 = np.maximum(target[0], candidates[:, 0])
    tt2 = np.minimum(target[1], candidates[:, 1])
    intersection = (tt2 - tt1).clip(0)
    union = (candidates[:, 1] - candidates[:, 0]) + (target[1] - target[0]) - intersection
    return intersection.astype(float) / union


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC-2011 interpolated average precision (all points)."""
    mprec = np.hstack([[0.0], precision, [0.0]])
    mrec = np.hstack([[0.0], recall, [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    idx = np.where(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def rows_by_key(keys) -> dict:
    """Row positions of each key, keys in order of first appearance, rows in their order."""
    codes, uniques = pd.factorize(np.asarray(keys, dtype=object))
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=len(uniques)))[:-1]
    return dict(zip(uniques, np.split(order, bounds)))


def _segments_by_video(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    segments = frame[["start", "end"]].to_numpy(dtype=float)
    return {k: segments[rows] for k, rows in rows_by_key(frame["key"]).items()}


def average_precision(ground_truth: pd.DataFrame, detections: pd.DataFrame,
                      tious=TIOUS) -> np.ndarray:
    """AP at each threshold of one class: rows with columns key, start, end (+ score for detections)."""
    tious = np.asarray(tious, dtype=float)
    n_pos = len(ground_truth)
    ap = np.zeros(len(tious))
    if len(detections) == 0 or n_pos == 0:
        return ap
    gt = _segments_by_video(ground_truth)
    offset, first = 0, {}
    for k, segs in gt.items():
        first[k] = offset
        offset += len(segs)
    order = np.argsort(-detections["score"].to_numpy(dtype=float), kind="stable")
    keys = detections["key"].to_numpy()[order]
    segs = detections[["start", "end"]].to_numpy(dtype=float)[order]
    tp = np.zeros((len(tious), len(order)))
    fp = np.zeros((len(tious), len(order)))
    taken = np.zeros((len(tious), n_pos), dtype=bool)
    for i, (key, seg) in enumerate(zip(keys, segs)):
        video_gt = gt.get(key)
        if video_gt is None:
            fp[:, i] = 1
            continue
        tiou = segment_iou(seg, video_gt)
        best_first = tiou.argsort()[::-1]  # the official order, ties included
        for t, threshold in enumerate(tious):
            for j in best_first:
                if tiou[j] < threshold:
                    break
                if taken[t, first[key] + j]:
                    continue
                tp[t, i] = 1
                taken[t, first[key] + j] = True
                break
            if tp[t, i] == 0:
                fp[t, i] = 1
    tp_cum = np.cumsum(tp, axis=1)
    fp_cum = np.cumsum(fp, axis=1)
    recall = tp_cum / n_pos
    precision = tp_cum / (tp_cum + fp_cum)
    for t in range(len(tious)):
        ap[t] = interpolated_ap(precision[t], recall[t])
    return ap


def evaluate_detection(ground_truth: pd.DataFrame, detections: pd.DataFrame, tious=TIOUS,
                       progress: bool = False) -> dict:
    """mAP of labelled detections; ``ground_truth`` without labels makes it class-agnostic.

    Both frames have columns key, label, start, end (+ score for detections).
    """
    class_agnostic = ground_truth["label"].isna().all()
    if class_agnostic:
        ground_truth = ground_truth.assign(label="")
        detections = detections.assign(label="")
    elif detections["label"].isna().any():
        raise HarnessError("the detections have no class labels but the ground truth has classes; "
                           "score proposals against class-agnostic ground truth, or add labels")
    classes = list(dict.fromkeys(ground_truth["label"]))
    unknown = sorted(set(detections["label"]) - set(classes))
    if unknown:
        raise HarnessError(f"{len(unknown)} detection label(s) are not classes of the ground truth, "
                           f"first {unknown[:3]}; expected one of its {len(classes)} class names "
                           "(the official evaluation stops on them too)")
    gt_by_class = dict(tuple(ground_truth.groupby("label", sort=False)))
    det_by_class = dict(tuple(detections.groupby("label", sort=False)))
    empty = detections.iloc[:0]
    bar = tqdm(classes, desc="AP", unit="class", disable=not progress, file=sys.stderr)
    ap = np.stack([average_precision(gt_by_class[c], det_by_class.get(c, empty), tious) for c in bar], axis=1)
    mean_ap = ap.mean(axis=1)
    return {
        "average_mAP": float(mean_ap.mean()),
        "mAP": [float(x) for x in mean_ap],
        "tious": [float(t) for t in tious],
        "ap_per_class": {c: [float(x) for x in ap[:, i]] for i, c in enumerate(classes)},
        "class_agnostic": bool(class_agnostic),
        "n_classes": len(classes),
        "n": int(ground_truth["key"].nunique()),
    }


def _trapezoid(y, x) -> float:
    integrate = getattr(np, "trapezoid", None) or np.trapz
    return float(integrate(y, x))


def evaluate_proposals(ground_truth: pd.DataFrame, proposals: pd.DataFrame, tious=TIOUS,
                       max_avg_nr_proposals: int = MAX_AVG_NR_PROPOSALS) -> dict:
    """Average recall against the average number of proposals per video, and its area."""
    tious = np.asarray(tious, dtype=float)
    if len(proposals) == 0:
        raise HarnessError("there are no proposals to evaluate; expected at least one")
    gt = _segments_by_video(ground_truth)
    videos = list(gt)
    by_video = rows_by_key(proposals["key"])
    all_scores = proposals["score"].to_numpy(dtype=float)
    all_segments = proposals[["start", "end"]].to_numpy(dtype=float)
    ratio = max_avg_nr_proposals * float(len(videos)) / len(proposals)

    # For each video and threshold: per ground-truth segment, the rank of the
    # first proposal that reaches the threshold (n_kept when none does).
    first_hits, kept, total = [], [], 0
    for vid in videos:
        segs = gt[vid]
        rows = by_video.get(vid)
        if rows is None:
            first_hits.append(np.ones((len(tious), len(segs))))  # one placeholder proposal, never a hit
            kept.append(1)
            continue
        order = np.argsort(-all_scores[rows], kind="stable")
        props = all_segments[rows][order]
        n = min(int(len(props) * ratio), len(props))
        total += n
        if n == 0:
            first_hits.append(np.ones((len(tious), len(segs))))
            kept.append(1)
            continue
        tiou = np.stack([segment_iou(p, segs) for p in props[:n]], axis=1)
        hits = tiou[None, :, :] >= tious[:, None, None]
        first_hits.append(np.where(hits.any(axis=2), hits.argmax(axis=2), n))
        kept.append(n)
    if total == 0:
        raise HarnessError("no proposal falls on a video of the ground truth; expected the same video ids")
    pcn = np.arange(1, 101) / 100.0 * (max_avg_nr_proposals * float(len(videos)) / total)
    positives = sum(len(gt[v]) for v in videos)
    matches = np.zeros((len(tious), len(pcn)))
    for first, n in zip(first_hits, kept):
        budget = np.minimum((n * pcn).astype(int), n)
        matches += (first[:, :, None] < budget[None, None, :]).sum(axis=1)
    recall = matches / positives
    avg_recall = recall.mean(axis=0)
    per_video = pcn * (float(total) / len(videos))
    auc = _trapezoid(avg_recall, per_video)
    out = {
        "AUC": 100.0 * auc / per_video[-1],
        "average_recall": [float(x) for x in avg_recall],
        "average_nr_proposals": [float(x) for x in per_video],
        "recall": [[float(x) for x in row] for row in recall],
        "tious": [float(t) for t in tious],
        "n": len(videos),
    }
    for n in (1, 5, 10, 50, 100):
        if n <= per_video[-1] + 1e-9:
            out[f"AR@{n}"] = float(np.interp(n, per_video, avg_recall))
    return out
