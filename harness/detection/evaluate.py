"""COCO and LVIS evaluation with faster-coco-eval as the engine.

COCO numbers equal pycocotools' bit for bit (tests/test_coco.py runs both). For LVIS, whose
reference code (lvis-api) does not run on numpy 2, the rules are faster-coco-eval's
``lvis_style`` plus the 300-per-image limit below; tests/test_lvis.py checks the properties
those rules fix (federated negatives, not-exhaustive categories, the limit, perfect results
score 1), not equality with lvis-api's numbers.

faster-coco-eval matches detections to ground truth as pycocotools does, in C++. One difference
remains in its accumulation: the official code computes precision as ``tp / (fp + tp +
np.spacing(1))``, faster-coco-eval as ``tp / (tp + fp)``. The two differ only where exactly one
valid detection has been seen so far (``1 / (1 + eps)`` is 1 - 2.2e-16, while ``n / (n + eps)
== n`` for n >= 2), which moves summary numbers by an ulp. ``_accumulate``
restores the official value: such an entry is the curve's maximum only when the first valid
detection of a category is a true positive and the second is not, which extra recall thresholds
at 2/G (G the valid ground truth count) in the same accumulation reveal without re-matching.

Summaries are computed from the precision and recall arrays with the official indexing, so
they are bit-identical. One deliberate departure: pycocotools' ``summarize`` reads overall AP
at ``maxDets=100`` whatever ``params.maxDets`` is, reporting -1 when 100 is not among them;
here AP is read at the largest maxDets, as its other AP numbers are. With the default maxDets
(1, 10, 100; 20 for keypoints) every COCO number is the official one; LVIS takes no other
maxDets than its 300 per image.
"""
from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import HarnessError

IOU_TYPES = ("bbox", "segm", "keypoints")
COCO_MAX_DETS = (1, 10, 100)
KEYPOINT_MAX_DETS = (20,)
LVIS_MAX_DETS = 300
_OFFICIAL_ONE = 1.0 / (1.0 + np.spacing(1))


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
    num_gt: np.ndarray  # valid (not ignored) ground truth per [category, area]
    categories: dict[int, dict]
    n_detections: int
    summary: dict[str, float] = field(default_factory=dict)
    n_outside_label_set: int = 0  # detections on images the label set does not have (not evaluated)
    n_label_set_images: int = 0  # images in the label set; more than image_ids when the run saw only some

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


def evaluate(gt: dict, results: list[dict], iou_type: str, lvis: bool = False,
             max_dets: tuple[int, ...] | None = None, image_ids: list[int] | None = None,
             kpt_oks_sigmas: list[float] | None = None) -> Evaluation:
    """Evaluate result records against a COCO/LVIS annotation dict (both are consumed)."""
    from faster_coco_eval import COCO, COCOeval_faster

    if iou_type not in IOU_TYPES or (lvis and iou_type == "keypoints"):
        allowed = "bbox, segm" if lvis else ", ".join(IOU_TYPES)
        raise HarnessError(f"iou type {iou_type!r} is not supported here; expected one of {allowed}")
    if lvis and max_dets is not None and tuple(max_dets) != (LVIS_MAX_DETS,):
        raise HarnessError(f"max_dets {tuple(max_dets)!r} does not apply to LVIS: its rules count the "
                           f"{LVIS_MAX_DETS} highest-scoring detections per image (AR@{LVIS_MAX_DETS}); leave "
                           "max_dets unset")
    if lvis:
        results = limit_per_image(results, LVIS_MAX_DETS)
    max_dets = default_max_dets(iou_type, lvis) if max_dets is None else tuple(max_dets)
    if list(max_dets) != sorted(max_dets) or not all(isinstance(m, int) and m > 0 for m in max_dets):
        raise HarnessError(f"max_dets {max_dets!r} must be increasing positive integers, e.g. (1, 10, 100)")

    quiet = lambda *args, **kwargs: None  # noqa: E731 - the engine prints through this hook
    coco_gt = COCO(gt, print_function=quiet)
    n_detections = len(results)
    coco_dt = coco_gt.loadRes(results)
    engine = COCOeval_faster(coco_gt, coco_dt, iou_type, print_function=quiet, lvis_style=lvis,
                             separate_eval=True, kpt_oks_sigmas=kpt_oks_sigmas)
    engine.params.maxDets = list(max_dets)
    if image_ids is not None:
        engine.params.imgIds = sorted(set(image_ids))
    # A category without ground truth on the evaluated images has no precision (-1, left out of every
    # mean); leaving it out of the evaluation changes no number and spares most of LVIS's 1,230.
    evaluated = set(engine.params.imgIds)
    annotated = {a["category_id"] for a in coco_gt.dataset["annotations"] if a["image_id"] in evaluated}
    engine.params.catIds = [c for c in engine.params.catIds if c in annotated]
    engine.evaluate()
    p = engine.params
    num_gt = _valid_ground_truth(coco_gt, p, iou_type)
    precision = _accumulate(engine, num_gt)
    ev = Evaluation(
        iou_type=iou_type, lvis=lvis, iou_thrs=np.asarray(p.iouThrs), rec_thrs=np.asarray(p.recThrs),
        max_dets=list(p.maxDets), area_labels=list(p.areaRngLbl), category_ids=[int(c) for c in p.catIds],
        image_ids=[int(i) for i in p.imgIds], precision=precision, recall=np.asarray(engine.eval["recall"]),
        num_gt=num_gt, categories=dict(coco_gt.cats), n_detections=n_detections)
    ev.summary = summarize(ev)
    return ev


def _valid_ground_truth(coco_gt, p, iou_type: str) -> np.ndarray:
    """Ground truth counted by the accumulation, per [category, area range]: not crowd (for keypoints:
    with keypoints), area within the range, on an evaluated image."""
    anns = coco_gt.dataset["annotations"]
    images = set(p.imgIds)
    cat_index = {c: k for k, c in enumerate(p.catIds)}
    counts = np.zeros((len(p.catIds), len(p.areaRng)), dtype=np.int64)
    for a in anns:
        k = cat_index.get(a["category_id"])
        if k is None or a["image_id"] not in images or a.get("iscrowd", 0):
            continue
        if iou_type == "keypoints" and a.get("num_keypoints", 0) == 0:
            continue
        for j, (lo, hi) in enumerate(p.areaRng):
            if lo <= a["area"] <= hi:
                counts[k, j] += 1
    return counts


def _accumulate(engine, num_gt: np.ndarray) -> np.ndarray:
    """faster-coco-eval's accumulation with the official ``tp / (fp + tp + eps)`` precision (see top).

    Returns the precision array; recall and the rest are left in ``engine.eval``.
    """
    import faster_coco_eval.faster_eval_api_cpp as engine_cpp

    rec_thrs = np.asarray(engine._paramsEval.recThrs)
    with np.errstate(divide="ignore"):
        first_recall = np.where(num_gt > 0, 1.0 / num_gt, 0.0)  # rc after one true positive, as computed there
        probe = np.where(num_gt > 0, 2.0 / num_gt, np.inf)  # rc after two
    probes = np.unique(probe[np.isfinite(probe)])
    # Extra thresholds only add columns: each is looked up on its own in the same precision curves.
    params = copy.copy(engine._paramsEval)
    params.recThrs = np.concatenate([rec_thrs, probes])
    engine.eval = engine_cpp.COCOevalAccumulate(params, engine._evalImgs_cpp)
    both = np.asarray(engine.eval["precision"], dtype=np.float64)
    precision, probed = both[:, :len(rec_thrs)].copy(), both[:, len(rec_thrs):]
    first_is_tp = precision[:, 0] == 1.0  # [T, K, A, M]: the first valid detection matched
    if not first_is_tp.any():
        return precision
    probe_index = np.minimum(np.searchsorted(probes, probe), len(probes) - 1)  # [K, A]
    k_idx, a_idx = np.meshgrid(np.arange(num_gt.shape[0]), np.arange(num_gt.shape[1]), indexing="ij")
    second_is_tp = probed[:, probe_index, k_idx, a_idx, :] == 1.0  # [T, K, A, M]
    fix = first_is_tp & ~second_is_tp
    in_first = rec_thrs[None, None, :] <= first_recall[:, :, None]  # [K, A, R]
    mask = fix[:, None, :, :, :] & np.moveaxis(in_first, 2, 0)[None, :, :, :, None]
    assert np.all(precision[mask] == 1.0), "the precision curve is 1 up to the first true positive's recall"
    precision[mask] = _OFFICIAL_ONE
    return precision


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
