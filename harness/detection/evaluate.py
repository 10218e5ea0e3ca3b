"""COCO and LVIS evaluation with ultrafast-pycocotools as the engine.

ultrafast-pycocotools (BSD-2-Clause) is pycocotools' matching and accumulation in Rust: its
``precision``, ``recall`` and ``scores`` arrays are bit for bit pycocotools' (tests/test_coco.py
runs both on boxes, masks, keypoints, crowd regions and other maxDets), and it reads box results
as an ``N x 7`` array without building a dict per detection. Why this engine and not hotcoco or
faster-coco-eval is measured in benchmarks/results/coco.md.

For LVIS, whose reference code (lvis-api) does not run on numpy 2, the rules are
ultrafast-pycocotools' ``lvis_style`` official protocol (lvis-api's federated negatives,
not-exhaustive categories and the global 300-per-image limit, applied here as lvis-api's
``limit_dets_per_image`` does); tests/test_lvis.py checks the properties those rules fix, not
equality with lvis-api's numbers.

Summaries are computed from the precision and recall arrays with the official indexing, so
they are bit-identical. One deliberate departure: pycocotools' ``summarize`` reads overall AP
at ``maxDets=100`` whatever ``params.maxDets`` is, reporting -1 when 100 is not among them;
here AP is read at the largest maxDets, as its other AP numbers are. With the default maxDets
(1, 10, 100; 20 for keypoints) every COCO number is the official one; LVIS takes no other
maxDets than its 300 per image.
"""
from __future__ import annotations

import contextlib
import functools
import io
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import HarnessError

IOU_TYPES = ("bbox", "segm", "keypoints")
COCO_MAX_DETS = (1, 10, 100)
KEYPOINT_MAX_DETS = (20,)
LVIS_MAX_DETS = 300


@dataclass
class Evaluation:
    """The accumulated arrays of one evaluation and the summary numbers read from them."""

    iou_type: str
    lvis: bool
    iou_thrs: np.ndarray
    rec_thrs: np.ndarray
    max_dets: list[int]
    area_labels: list[str]
    category_ids: list[int]
    image_ids: list[int]
    precision: np.ndarray  # [iou threshold, recall threshold, category, area, maxDets]
    recall: np.ndarray  # [iou threshold, category, area, maxDets]
    categories: dict[int, dict]
    n_detections: int
    summary: dict[str, float] = field(default_factory=dict)
    n_outside_label_set: int = 0  # detections on images the label set does not have (not evaluated)
    n_label_set_images: int = 0  # images in the label set; more than image_ids when the run saw only some
    ground_truth: list[dict] = field(default_factory=list, repr=False)  # the annotations evaluated against
    area_ranges: list = field(default_factory=list, repr=False)

    @functools.cached_property
    def num_gt(self) -> np.ndarray:
        """Valid (not ignored) ground truth per [category, area]; counted when asked (per_category), not
        on every score."""
        return _valid_ground_truth(self.ground_truth, self.category_ids, self.image_ids, self.area_ranges,
                                   self.iou_type)

    def mean(self, ap: bool, iou_thr: float | None = None, area: str = "all", max_dets: int | None = None,
             category_index: list[int] | None = None) -> float:
        """The official summary formula: mean over the entries that are not -1 (absent), else -1."""
        max_dets = self.max_dets[-1] if max_dets is None else max_dets
        aind = [i for i, a in enumerate(self.area_labels) if a == area]
        mind = [i for i, m in enumerate(self.max_dets) if m == max_dets]
        s = self.precision if ap else self.recall
        if iou_thr is not None:
            s = s[np.where(iou_thr == self.iou_thrs)[0]]
        if category_index is not None:
            s = s[:, :, category_index, aind, mind] if ap else s[:, category_index, aind, mind]
        else:
            s = s[:, :, :, aind, mind] if ap else s[:, :, aind, mind]
        valid = s[s > -1]
        return float(np.mean(valid)) if len(valid) else -1.0

    def per_category(self) -> pd.DataFrame:
        """AP, AP50 and AR (all areas, largest maxDets) for each category; NaN where it has no ground truth."""
        rows = []
        for k, cid in enumerate(self.category_ids):
            ap = self.mean(True, category_index=[k])
            ap50 = self.mean(True, iou_thr=0.5, category_index=[k])
            ar = self.mean(False, category_index=[k])
            cat = self.categories.get(cid, {})
            rows.append({"category_id": cid, "name": cat.get("name"), "frequency": cat.get("frequency"),
                         "num_gt": int(self.num_gt[k, 0]),
                         "AP": np.nan if ap == -1 else ap, "AP50": np.nan if ap50 == -1 else ap50,
                         "AR": np.nan if ar == -1 else ar})
        return pd.DataFrame(rows)


def limit_per_image(records: list[dict], max_dets: int) -> list[dict]:
    """LVIS's rule: keep each image's ``max_dets`` highest-scoring detections over all categories.

    Written to select as lvis-api's ``limit_dets_per_image`` does (stable sort by score, grouped by image).
    """
    by_image: dict[int, list[dict]] = defaultdict(list)
    for r in records:
        by_image[r["image_id"]].append(r)
    out = []
    for anns in by_image.values():
        if len(anns) > max_dets:
            anns = sorted(anns, key=lambda a: a["score"], reverse=True)[:max_dets]
        out.extend(anns)
    return out


def default_max_dets(iou_type: str, lvis: bool = False) -> tuple[int, ...]:
    """The maxDets of the official protocol: the only ones whose summary numbers are the official ones."""
    if lvis:
        return (LVIS_MAX_DETS,)
    return KEYPOINT_MAX_DETS if iou_type == "keypoints" else COCO_MAX_DETS


def evaluate(gt: dict, results: list[dict] | np.ndarray, iou_type: str, lvis: bool = False,
             max_dets: tuple[int, ...] | None = None, image_ids: list[int] | None = None,
             kpt_oks_sigmas: list[float] | None = None) -> Evaluation:
    """Evaluate results against a COCO/LVIS annotation dict (both are consumed).

    ``results`` are result records as in a result file, or for boxes pycocotools' ``loadRes`` array
    form: one row ``[image_id, x, y, width, height, score, category_id]`` per detection, float64."""
    from ultrafast_pycocotools import COCO, COCOeval

    if iou_type not in IOU_TYPES or (lvis and iou_type == "keypoints"):
        allowed = "bbox, segm" if lvis else ", ".join(IOU_TYPES)
        raise HarnessError(f"iou type {iou_type!r} is not supported here; expected one of {allowed}")
    if lvis and max_dets is not None and tuple(max_dets) != (LVIS_MAX_DETS,):
        raise HarnessError(f"max_dets {tuple(max_dets)!r} does not apply to LVIS: its rules count the "
                           f"{LVIS_MAX_DETS} highest-scoring detections per image (AR@{LVIS_MAX_DETS}); leave "
                           "max_dets unset")
    if isinstance(results, np.ndarray) and (iou_type != "bbox" or lvis):
        raise HarnessError("an array of results holds boxes only; pass result records for "
                           f"{'LVIS' if lvis else iou_type} evaluation")
    if lvis:
        results = limit_per_image(results, LVIS_MAX_DETS)
    max_dets = default_max_dets(iou_type, lvis) if max_dets is None else tuple(max_dets)
    if list(max_dets) != sorted(max_dets) or not all(isinstance(m, int) and m > 0 for m in max_dets):
        raise HarnessError(f"max_dets {max_dets!r} must be increasing positive integers, e.g. (1, 10, 100)")

    quiet = lambda *args, **kwargs: None  # noqa: E731 - the engine prints through this hook
    n_detections = len(results)
    coco_gt = COCO(gt, verbose=False)
    with contextlib.redirect_stdout(io.StringIO()):  # loadRes of an array prints pycocotools' progress lines
        coco_dt = coco_gt.loadRes(results)
    engine = COCOeval(coco_gt, coco_dt, iou_type, print_function=quiet, lvis_style=lvis,
                      kpt_oks_sigmas=kpt_oks_sigmas)
    engine.params.maxDets = list(max_dets)
    if image_ids is not None:
        engine.params.imgIds = sorted(set(image_ids))
    # A category without ground truth on the evaluated images has no precision (-1, left out of every
    # mean); leaving it out of the evaluation changes no number and spares most of LVIS's 1,230.
    evaluated = set(engine.params.imgIds)
    annotated = {a["category_id"] for a in gt["annotations"] if a["image_id"] in evaluated}
    engine.params.catIds = [c for c in engine.params.catIds if c in annotated]
    engine.evaluate()
    engine.accumulate()
    p = engine.params
    ev = Evaluation(
        iou_type=iou_type, lvis=lvis, iou_thrs=np.asarray(p.iouThrs), rec_thrs=np.asarray(p.recThrs),
        max_dets=list(p.maxDets), area_labels=list(p.areaRngLbl), category_ids=[int(c) for c in p.catIds],
        image_ids=[int(i) for i in p.imgIds], precision=np.asarray(engine.eval["precision"]),
        recall=np.asarray(engine.eval["recall"]), categories=dict(coco_gt.cats), n_detections=n_detections,
        ground_truth=gt["annotations"], area_ranges=[list(a) for a in p.areaRng])
    ev.summary = summarize(ev)
    return ev


def _valid_ground_truth(anns: list[dict], category_ids: list[int], image_ids: list[int], area_ranges: list,
                        iou_type: str) -> np.ndarray:
    """Ground truth counted by the accumulation, per [category, area range]: not crowd (for keypoints:
    with keypoints), area within the range, on an evaluated image."""
    counts = np.zeros((len(category_ids), len(area_ranges)), dtype=np.int64)
    if not anns or not category_ids:
        return counts
    category = np.fromiter((a["category_id"] for a in anns), np.int64, len(anns))
    image = np.fromiter((a["image_id"] for a in anns), np.int64, len(anns))
    area = np.fromiter((a["area"] for a in anns), np.float64, len(anns))
    valid = ~np.fromiter((bool(a.get("iscrowd", 0)) for a in anns), bool, len(anns))
    if iou_type == "keypoints":
        valid &= np.fromiter((bool(a.get("num_keypoints", 0)) for a in anns), bool, len(anns))
    cat_ids = np.asarray(category_ids, dtype=np.int64)
    k = np.searchsorted(cat_ids, category)  # catIds are sorted (the engine sorts them)
    valid &= (k < len(cat_ids)) & (cat_ids[np.minimum(k, len(cat_ids) - 1)] == category)
    valid &= np.isin(image, np.asarray(image_ids, dtype=np.int64))
    for j, (lo, hi) in enumerate(area_ranges):
        in_range = valid & (lo <= area) & (area <= hi)
        counts[:, j] = np.bincount(k[in_range], minlength=len(cat_ids))
    return counts


def summarize(ev: Evaluation) -> dict[str, float]:
    """The standard summary numbers, named; AP at the largest maxDets (see top)."""
    m = ev.max_dets[-1]
    out: dict[str, float] = {}
    if ev.iou_type == "keypoints":
        out["AP"] = ev.mean(True)
        out["AP50"] = ev.mean(True, iou_thr=0.5)
        out["AP75"] = ev.mean(True, iou_thr=0.75)
        out["APm"] = ev.mean(True, area="medium")
        out["APl"] = ev.mean(True, area="large")
        out["AR"] = ev.mean(False)
        out["AR50"] = ev.mean(False, iou_thr=0.5)
        out["AR75"] = ev.mean(False, iou_thr=0.75)
        out["ARm"] = ev.mean(False, area="medium")
        out["ARl"] = ev.mean(False, area="large")
        return out
    out["AP"] = ev.mean(True)
    out["AP50"] = ev.mean(True, iou_thr=0.5)
    out["AP75"] = ev.mean(True, iou_thr=0.75)
    out["APs"] = ev.mean(True, area="small")
    out["APm"] = ev.mean(True, area="medium")
    out["APl"] = ev.mean(True, area="large")
    if ev.lvis:
        freq = [ev.categories.get(c, {}).get("frequency") for c in ev.category_ids]
        for group in ("r", "c", "f"):
            out[f"AP{group}"] = ev.mean(True, category_index=[k for k, f in enumerate(freq) if f == group])
    for md in ev.max_dets:
        out[f"AR@{md}"] = ev.mean(False, max_dets=md)
    for area, short in (("small", "s"), ("medium", "m"), ("large", "l")):
        out[f"AR{short}@{m}"] = ev.mean(False, area=area)
    return out


COCO_SUMMARY_ORDER = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR@1", "AR@10", "AR@100", "ARs@100", "ARm@100",
                      "ARl@100")
KEYPOINT_SUMMARY_ORDER = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def summary_lines(summary: dict[str, float], iou_type: str, max_dets: list[int], lvis: bool = False) -> list[str]:
    """The summary as pycocotools' ``summarize`` prints it (lvis-api's ``print_results`` for LVIS, with its
    catIds column): the 12 lines of boxes and masks, the 10 of keypoints, 13 for LVIS."""
    if lvis:
        template = " {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} catIds={:>3s}] = {:0.3f}"
    else:
        template = " {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}"
    m = max_dets[-1]
    rows = []  # (key, is AP, IoU, area, maxDets, categories)
    if iou_type == "keypoints":
        for ap, prefix in ((True, "AP"), (False, "AR")):
            rows += [(prefix, ap, "0.50:0.95", "all", m, "all"), (f"{prefix}50", ap, "0.50", "all", m, "all"),
                     (f"{prefix}75", ap, "0.75", "all", m, "all"), (f"{prefix}m", ap, "0.50:0.95", "medium", m, "all"),
                     (f"{prefix}l", ap, "0.50:0.95", "large", m, "all")]
    else:
        rows += [("AP", True, "0.50:0.95", "all", m, "all"), ("AP50", True, "0.50", "all", m, "all"),
                 ("AP75", True, "0.75", "all", m, "all")]
        rows += [(f"AP{a[0]}", True, "0.50:0.95", a, m, "all") for a in ("small", "medium", "large")]
        if lvis:
            rows += [(f"AP{f}", True, "0.50:0.95", "all", m, f) for f in ("r", "c", "f")]
        rows += [(f"AR@{md}", False, "0.50:0.95", "all", md, "all") for md in max_dets]
        rows += [(f"AR{a[0]}@{m}", False, "0.50:0.95", a, m, "all") for a in ("small", "medium", "large")]
    out = []
    for key, ap, iou, area, md, cats in rows:
        title, kind = ("Average Precision", "(AP)") if ap else ("Average Recall", "(AR)")
        values = (title, kind, iou, area, md, cats, summary[key]) if lvis else (title, kind, iou, area, md, summary[key])
        out.append(template.format(*values))
    return out
