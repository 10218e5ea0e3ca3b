"""COCO-format records <-> store rows.

Results (detections) and ground truth (images, annotations, categories) are stored
column by column so that SQL sees plain numbers (``bbox_w * bbox_h``, ``score``) and the
evaluator gets back exactly the records it would have read from the JSON file: floats
round-trip bit for bit, record order is kept (``det_index``; ties in score are broken by
file order in pycocotools and faster-coco-eval alike), and a field absent from the file
stays absent (pycocotools derives a result's area from its box when it has one, from its
mask otherwise, so presence matters).

Uncompressed RLE (``counts`` as a list of run lengths) is stored compressed, and ground truth
polygons are stored with their RLE beside them: the evaluators make exactly that conversion
before computing any IoU, so the numbers are the same and scoring skips the work. Where a
row has both, the record handed to an evaluator carries the RLE.
"""
from __future__ import annotations

import json
import math
from numbers import Integral
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow as pa

from ..errors import HarnessError
from .. import jsonfile
from ..jsonfile import is_finite_number
from ..store import LABEL_TABLES, RUN_TABLES

DETECTIONS_SCHEMA = RUN_TABLES["coco_detections"]
IMAGES_SCHEMA = LABEL_TABLES["coco_images"]
ANNOTATIONS_SCHEMA = LABEL_TABLES["coco_annotations"]
CATEGORIES_SCHEMA = LABEL_TABLES["coco_categories"]
GEOMETRY = ("bbox", "segmentation", "keypoints")


def read_json(path: Path) -> Any:
    return jsonfile.read_json(path, "COCO result or annotation file")


# ----- validation -----------------------------------------------------------

def is_int(v) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


def _numbers(v, what: str) -> str | None:
    if not isinstance(v, list) or not all(is_finite_number(x) for x in v):
        return f"{what} must be a list of finite numbers"
    return None


def _bbox_problem(b) -> str | None:
    if not isinstance(b, list) or len(b) != 4 or not all(is_finite_number(x) for x in b):
        return "bbox must be [x, y, width, height] with 4 finite numbers"
    if b[2] < 0 or b[3] < 0:
        return "bbox width and height must not be negative"
    if not all(math.isfinite(v) for v in (b[0] + b[2], b[1] + b[3], b[2] * b[3])):
        return "bbox overflows: x + width, y + height and the area width * height must be finite numbers"
    return None


def _segmentation_problem(s) -> str | None:
    if isinstance(s, dict):
        size, counts = s.get("size"), s.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(is_int(x) and x > 0 for x in size)):
            return "an RLE segmentation needs size [height, width] with positive integers"
        if isinstance(counts, str) or (isinstance(counts, list) and all(is_int(x) and x >= 0 for x in counts)):
            return None
        return "RLE counts must be a compressed string or a list of non-negative run lengths"
    if isinstance(s, list) and s:
        for poly in s:
            if _numbers(poly, "a polygon") or len(poly) < 6 or len(poly) % 2:
                return "a polygon segmentation must be lists of at least 3 (x, y) pairs of finite numbers"
        return None
    return "segmentation must be an RLE {size, counts} or a non-empty list of polygons"


def _keypoints_problem(k) -> str | None:
    if _numbers(k, "keypoints") or not k or len(k) % 3:
        return "keypoints must be a non-empty list of finite numbers, (x, y, v) per keypoint"
    return None


class _Problems:
    """Collects every problem in a file, then reports the first and how many records are bad."""

    def __init__(self, path: Path, what: str, n: int):
        self.path, self.what, self.n = path, what, n
        self.first: tuple[int, str] | None = None
        self.bad: set[int] = set()

    def add(self, index: int, problem: str) -> None:
        self.bad.add(index)
        if self.first is None or index < self.first[0]:
            self.first = (index, problem)

    def raise_if_any(self, records: list, expected: str, hint: str = "") -> None:
        if not self.bad:
            return
        index, problem = self.first
        shown = json.dumps(records[index], default=str)
        if len(shown) > 160:
            shown = shown[:157] + "..."
        raise HarnessError(
            f"{self.path}: {len(self.bad)} of {self.n} {self.what} are invalid; the first is record {index} "
            f"{shown}: {problem}; expected {expected}{hint}. Nothing was stored.")


RESULT_EXPECTED = ('COCO results: a JSON list of {"image_id": int, "category_id": int, "score": number} '
                   'with "bbox" [x, y, w, h] and/or "segmentation" (RLE or polygons) and/or "keypoints"')


def validate_results(records: Any, path: Path, image_ids: set[int], category_ids: set[int],
                     label_set: str, drop_unknown_images: bool = False) -> tuple[list[dict], int]:
    """Check every record of a result file; returns (the records to store, how many were dropped)."""
    if not isinstance(records, list):
        raise HarnessError(f"{path} holds a JSON {type(records).__name__}; expected {RESULT_EXPECTED}")
    if not records:
        raise HarnessError(f"{path} holds no detections; expected {RESULT_EXPECTED}")
    problems = _Problems(path, "detections", len(records))
    kinds = None
    unknown_images: list[int] = []
    hint = ""
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            problems.add(i, f"it is a JSON {type(r).__name__}, not an object")
            continue
        if not is_int(r.get("image_id")):
            problems.add(i, "image_id must be an integer")
            continue
        if not is_int(r.get("category_id")):
            problems.add(i, "category_id must be an integer")
            continue
        if not is_finite_number(r.get("score")) or r["score"] < 0:
            problems.add(i, "score must be a finite number, 0 or more (a detector's confidence)")
            continue
        these = tuple(k for k in GEOMETRY if k in r)
        if not these:
            problems.add(i, "it has none of bbox, segmentation, keypoints")
            continue
        if kinds is None:
            kinds = these
        elif these != kinds:
            problems.add(i, f"it has {', '.join(these)} but the first record has {', '.join(kinds)}")
            continue
        problem = (("bbox" in r and _bbox_problem(r["bbox"]))
                   or ("segmentation" in r and _segmentation_problem(r["segmentation"]))
                   or ("keypoints" in r and _keypoints_problem(r["keypoints"])))
        if problem:
            problems.add(i, problem)
            continue
        if r["category_id"] not in category_ids:
            problems.add(i, f"category_id {r['category_id']} is not a category of label set {label_set}")
            continue
        if r["image_id"] not in image_ids:
            if drop_unknown_images:
                unknown_images.append(i)
            else:
                problems.add(i, f"image_id {r['image_id']} is not an image of label set {label_set} "
                                f"({len(image_ids)} images)")
                hint = " (detections on images outside the label set can be skipped with drop_unknown_images)"
    problems.raise_if_any(records, RESULT_EXPECTED, hint)
    if unknown_images:
        dropped = set(unknown_images)
        records = [r for i, r in enumerate(records) if i not in dropped]
        if not records:
            raise HarnessError(f"{path}: none of its {len(dropped)} detections is on an image of label set "
                               f"{label_set}; choose the label set the detections were made on")
    return records, len(unknown_images)


# ----- records -> columns ---------------------------------------------------

def _rle_string(segm: dict) -> str:
    counts = segm["counts"]
    if isinstance(counts, list):
        from pycocotools import mask as mask_utils

        h, w = segm["size"]
        counts = mask_utils.frPyObjects(segm, h, w)["counts"]
    return counts.decode() if isinstance(counts, bytes) else counts


def _geometry_columns(records: list[dict]) -> dict[str, list]:
    n = len(records)
    cols: dict[str, list] = {k: [None] * n for k in (
        "bbox_x", "bbox_y", "bbox_w", "bbox_h", "segm_counts", "segm_height", "segm_width", "segm_polygons",
        "keypoints")}
    for i, r in enumerate(records):
        b = r.get("bbox")
        if b is not None and len(b) == 4:
            cols["bbox_x"][i], cols["bbox_y"][i], cols["bbox_w"][i], cols["bbox_h"][i] = b
        s = r.get("segmentation")
        if isinstance(s, dict):
            cols["segm_counts"][i] = _rle_string(s)
            cols["segm_height"][i], cols["segm_width"][i] = s["size"]
        elif s:
            cols["segm_polygons"][i] = s
        if r.get("keypoints") is not None:
            cols["keypoints"][i] = r["keypoints"]
    return cols


def _float_list(values: list) -> pa.Array:
    return pa.array(values, type=pa.float64())


def polygons_to_rle(records: list[dict], sizes: dict[int, tuple[int, int]]) -> list[dict]:
    """Polygon masks as RLE for results without boxes: an evaluator takes such a result's area from its
    mask, which for polygons needs the image size, so they are converted once, at the door."""
    from pycocotools import mask as mask_utils

    out = []
    for r in records:
        s = r["segmentation"]
        if isinstance(s, list):
            h, w = sizes[r["image_id"]]
            rle = mask_utils.merge(mask_utils.frPyObjects(s, h, w))
            r = {**r, "segmentation": {"size": [h, w], "counts": rle["counts"].decode()}}
        out.append(r)
    return out


def results_table(records: list[dict]) -> pa.Table:
    """Validated result records as ``coco_detections`` rows, with the area the evaluator will use."""
    cols = _geometry_columns(records)
    area = _result_areas(records)
    data = {
        "det_index": pa.array(np.arange(len(records), dtype=np.int64)),
        "image_id": pa.array([r["image_id"] for r in records], type=pa.int64()),
        "category_id": pa.array([r["category_id"] for r in records], type=pa.int64()),
        "score": _float_list([r["score"] for r in records]),
        "area": _float_list(area),
        **{k: pa.array(v, type=DETECTIONS_SCHEMA.field(k).type) for k, v in cols.items()},
    }
    return pa.table(data, schema=DETECTIONS_SCHEMA)


def _result_areas(records: list[dict]) -> list[float | None]:
    """pycocotools' rule: a result with a box has the box's area, else its mask's, else its keypoints' extent."""
    from pycocotools import mask as mask_utils

    first = records[0]
    if "bbox" in first:
        return [float(r["bbox"][2] * r["bbox"][3]) for r in records]
    if "segmentation" in first:
        out = []
        for r in records:
            s = r["segmentation"]
            h, w = s["size"]
            out.append(float(mask_utils.area(mask_utils.frPyObjects(s, h, w) if isinstance(s["counts"], list)
                                             else {"size": s["size"], "counts": s["counts"]})))
        return out
    out = []
    for r in records:
        k = np.asarray(r["keypoints"], dtype=np.float64)
        x, y = k[0::3], k[1::3]
        out.append(float((x.max() - x.min()) * (y.max() - y.min())))
    return out


_INT32, _INT64 = 2 ** 31, 2 ** 63
# Ground truth fields beyond the required ones: (field, check, what it must be); None is allowed for these.
_GT_FIELDS = {
    "images": (("id", lambda v: is_int(v) and abs(v) < _INT64, "an integer"),
               ("file_name", lambda v: isinstance(v, str), "a string"),
               ("width", lambda v: is_int(v) and 0 < v < _INT32, "a positive integer"),
               ("height", lambda v: is_int(v) and 0 < v < _INT32, "a positive integer"),
               ("neg_category_ids", lambda v: _ints(v, _INT64), "a list of integers"),
               ("not_exhaustive_category_ids", lambda v: _ints(v, _INT64), "a list of integers")),
    "categories": (("id", lambda v: is_int(v) and abs(v) < _INT64, "an integer"),
                   ("name", lambda v: isinstance(v, str), "a string"),
                   ("supercategory", lambda v: isinstance(v, str), "a string"),
                   ("frequency", lambda v: isinstance(v, str), "a string"),
                   ("image_count", lambda v: is_int(v) and abs(v) < _INT64, "an integer"),
                   ("instance_count", lambda v: is_int(v) and abs(v) < _INT64, "an integer"),
                   ("keypoints", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                    "a list of strings"),
                   ("skeleton", lambda v: isinstance(v, list) and all(_ints(x, _INT32) for x in v),
                    "a list of integer lists")),
    "annotations": (("id", lambda v: is_int(v) and abs(v) < _INT64, "an integer"),
                    ("image_id", lambda v: is_int(v) and abs(v) < _INT64, "an integer"),
                    ("category_id", lambda v: is_int(v) and abs(v) < _INT64, "an integer"),
                    ("iscrowd", lambda v: is_int(v) and abs(v) < _INT32, "an integer"),
                    ("num_keypoints", lambda v: is_int(v) and abs(v) < _INT32, "an integer"),
                    ("bbox", lambda v: not _bbox_problem(v), "[x, y, width, height] with 4 finite numbers, "
                     "width and height not negative"),
                    ("area", is_finite_number, "a finite number"),
                    ("segmentation", lambda v: v == [] or not _segmentation_problem(v),
                     "an RLE {size, counts} or a list of polygons of at least 3 (x, y) pairs"),
                    ("keypoints", lambda v: not _keypoints_problem(v), "a list of (x, y, v) numbers")),
}
_GT_REQUIRED = {"images": ("id",), "categories": ("id",),
                "annotations": ("id", "image_id", "category_id", "bbox", "area")}


def _ints(v, bound: int) -> bool:
    return isinstance(v, list) and all(is_int(x) and abs(x) < bound for x in v)


def _gt_record_problem(key: str, i: int, r) -> str | None:
    """The first problem of ground truth record ``key[i]``, named like ``images[0].id``, or None."""
    if not isinstance(r, dict):
        return f"{key}[{i}] is a JSON {type(r).__name__}; expected an object"
    missing = [k for k in _GT_REQUIRED[key] if k not in r]
    if missing:
        return f"{key}[{i}] has no {', '.join(missing)}"
    for field, ok, expected in _GT_FIELDS[key]:
        if r.get(field) is not None and not ok(r[field]):
            return f"{key}[{i}].{field} is {json.dumps(r[field], default=str)[:40]}; expected {expected}"
        if r.get(field) is None and field in _GT_REQUIRED[key]:
            return f"{key}[{i}].{field} is null; expected {expected}"
    return None


def ground_truth_tables(gt: dict, path: Path) -> dict[str, pa.Table]:
    """A COCO/LVIS annotation file as the label set tables ``coco_images/annotations/categories``."""
    for key in ("images", "annotations", "categories"):
        if not isinstance(gt.get(key), list):
            raise HarnessError(f"{path} has no list {key!r}; expected a COCO annotation file "
                               "with images, annotations and categories")
    images = gt["images"]
    anns = gt["annotations"]
    cats = gt["categories"]
    for key, records in (("images", images), ("categories", cats), ("annotations", anns)):
        problems = _Problems(path, key, len(records))
        for i, r in enumerate(records):
            problem = _gt_record_problem(key, i, r)
            if problem:
                problems.add(i, problem)
        problems.raise_if_any(records, f"COCO {key} with {', '.join(_GT_REQUIRED[key])} of the right types")
    image_ids = {im["id"] for im in images}
    category_ids = {c["id"] for c in cats}
    problems = _Problems(path, "annotations", len(anns))
    for i, a in enumerate(anns):
        if a["image_id"] not in image_ids or a["category_id"] not in category_ids:
            problems.add(i, "its image_id or category_id is not among the file's images or categories")
    problems.raise_if_any(anns, "annotations of the file's own images and categories")
    img_table = pa.table({
        "image_id": pa.array([im["id"] for im in images], type=pa.int64()),
        "file_name": pa.array([im.get("file_name") for im in images], type=pa.string()),
        "width": pa.array([im.get("width") for im in images], type=pa.int32()),
        "height": pa.array([im.get("height") for im in images], type=pa.int32()),
        "neg_category_ids": pa.array([im.get("neg_category_ids") for im in images], type=pa.list_(pa.int64())),
        "not_exhaustive_category_ids": pa.array([im.get("not_exhaustive_category_ids") for im in images],
                                                type=pa.list_(pa.int64())),
    }, schema=IMAGES_SCHEMA)
    cols = _geometry_columns(anns)
    _add_polygon_rle(cols, anns, {im["id"]: (im.get("height"), im.get("width")) for im in images}, path)
    ann_table = pa.table({
        "ann_id": pa.array([a["id"] for a in anns], type=pa.int64()),
        "image_id": pa.array([a["image_id"] for a in anns], type=pa.int64()),
        "category_id": pa.array([a["category_id"] for a in anns], type=pa.int64()),
        **{k: pa.array(cols[k], type=pa.float64()) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")},
        "area": _float_list([a.get("area") for a in anns]),
        "iscrowd": pa.array([a.get("iscrowd") for a in anns], type=pa.int32()),
        **{k: pa.array(cols[k], type=ANNOTATIONS_SCHEMA.field(k).type)
           for k in ("segm_counts", "segm_height", "segm_width", "segm_polygons", "keypoints")},
        "num_keypoints": pa.array([a.get("num_keypoints") for a in anns], type=pa.int32()),
    }, schema=ANNOTATIONS_SCHEMA)
    cat_table = pa.table({
        "category_id": pa.array([c["id"] for c in cats], type=pa.int64()),
        "name": pa.array([c.get("name") for c in cats], type=pa.string()),
        "supercategory": pa.array([c.get("supercategory") for c in cats], type=pa.string()),
        "frequency": pa.array([c.get("frequency") for c in cats], type=pa.string()),
        "image_count": pa.array([c.get("image_count") for c in cats], type=pa.int64()),
        "instance_count": pa.array([c.get("instance_count") for c in cats], type=pa.int64()),
        "keypoint_names": pa.array([c.get("keypoints") for c in cats], type=pa.list_(pa.string())),
        "skeleton": pa.array([c.get("skeleton") for c in cats], type=pa.list_(pa.list_(pa.int32()))),
    }, schema=CATEGORIES_SCHEMA)
    return {"coco_images": img_table, "coco_annotations": ann_table, "coco_categories": cat_table}


def _add_polygon_rle(cols: dict[str, list], anns: list[dict], sizes: dict, path: Path) -> None:
    """Store each polygon mask's RLE beside the polygons: every evaluator converts polygons to exactly
    this RLE before computing an IoU, so doing it once at import saves it at every scoring."""
    from pycocotools import mask as mask_utils

    for i, polygons in enumerate(cols["segm_polygons"]):
        if polygons is None:
            continue
        h, w = sizes[anns[i]["image_id"]]
        if not (is_int(h) and is_int(w)):
            raise HarnessError(f"{path}: image {anns[i]['image_id']} has no integer height and width, "
                               "which its polygon masks need")
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, h, w))
        cols["segm_counts"][i], cols["segm_height"][i], cols["segm_width"][i] = rle["counts"].decode(), h, w


# ----- columns -> records ---------------------------------------------------

def _segmentations(table: pa.Table) -> list:
    counts = table.column("segm_counts").to_pylist()
    heights = table.column("segm_height").to_pylist()
    widths = table.column("segm_width").to_pylist()
    polygons = table.column("segm_polygons").to_pylist()
    return [{"size": [h, w], "counts": c} if c is not None else p
            for c, h, w, p in zip(counts, heights, widths, polygons)]


def _boxes(table: pa.Table) -> list:
    x, y, w, h = (table.column(c).to_pylist() for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
    return [[a, b, c, d] if a is not None else None for a, b, c, d in zip(x, y, w, h)]


def _present(table: pa.Table, column: str) -> bool:
    return table.num_rows > 0 and table.column(column).null_count < table.num_rows


def result_records(table: pa.Table, with_fields: Iterable[str] = GEOMETRY) -> list[dict]:
    """Stored detections back to the result records of the file they came from (in file order)."""
    base = {c: table.column(c).to_pylist() for c in ("image_id", "category_id", "score")}
    fields: dict[str, list] = {}
    wanted = set(with_fields)
    if "bbox" in wanted and _present(table, "bbox_x"):
        fields["bbox"] = _boxes(table)
    if "segmentation" in wanted and (_present(table, "segm_counts") or _present(table, "segm_polygons")):
        fields["segmentation"] = _segmentations(table)
    if "keypoints" in wanted and _present(table, "keypoints"):
        fields["keypoints"] = table.column("keypoints").to_pylist()
    names = ["image_id", "category_id", "score", *fields]
    columns = [base["image_id"], base["category_id"], base["score"], *fields.values()]
    return [dict(zip(names, values)) for values in zip(*columns)]


def result_box_array(table: pa.Table) -> np.ndarray | None:
    """Stored box detections as pycocotools' ``loadRes`` array: ``[image_id, x, y, w, h, score, category_id]``
    per row in file order, float64 (the stored floats, so the same numbers as the records); None when
    some detection has no box."""
    if table.num_rows == 0 or table.column("bbox_x").null_count:
        return None
    ids = [table.column(c).to_numpy() for c in ("image_id", "category_id")]
    if any(np.abs(i).max() > 2 ** 53 for i in ids):  # not exact as float64
        return None
    columns = ("image_id", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "score", "category_id")
    return np.column_stack([table.column(c).to_numpy().astype(np.float64, copy=False) for c in columns])


def ground_truth_dataset(tables: dict[str, pa.Table], with_segmentation: bool = True) -> dict:
    """Label set tables back to a COCO annotation dict (for faster-coco-eval or pycocotools).

    Box and keypoint evaluation never look at the masks, which are the bulk of the data.
    """
    images = []
    img = tables["coco_images"]
    for image_id, file_name, width, height, neg, nel in zip(
            *(img.column(c).to_pylist() for c in IMAGES_SCHEMA.names)):
        entry = {"id": image_id, "file_name": file_name, "width": width, "height": height}
        if neg is not None:
            entry["neg_category_ids"] = neg
        if nel is not None:
            entry["not_exhaustive_category_ids"] = nel
        images.append(entry)
    ann = tables["coco_annotations"]
    boxes = _boxes(ann)
    segms = _segmentations(ann) if with_segmentation else [None] * ann.num_rows
    annotations = []
    for (ann_id, image_id, category_id, area, iscrowd, keypoints, num_keypoints), box, segm in zip(
            zip(*(ann.column(c).to_pylist() for c in
                  ("ann_id", "image_id", "category_id", "area", "iscrowd", "keypoints", "num_keypoints"))),
            boxes, segms):
        entry = {"id": ann_id, "image_id": image_id, "category_id": category_id, "area": area}
        if box is not None:
            entry["bbox"] = box
        if segm is not None:
            entry["segmentation"] = segm
        if iscrowd is not None:
            entry["iscrowd"] = iscrowd
        if keypoints is not None:
            entry["keypoints"] = keypoints
            entry["num_keypoints"] = num_keypoints
        annotations.append(entry)
    cats = tables["coco_categories"]
    categories = []
    for row in zip(*(cats.column(c).to_pylist() for c in CATEGORIES_SCHEMA.names)):
        cid, name, supercategory, frequency, image_count, instance_count, kp_names, skeleton = row
        entry = {"id": cid, "name": name, "supercategory": supercategory}
        for key, value in (("frequency", frequency), ("image_count", image_count),
                           ("instance_count", instance_count), ("keypoints", kp_names), ("skeleton", skeleton)):
            if value is not None:
                entry[key] = value
        categories.append(entry)
    return {"images": images, "annotations": annotations, "categories": categories}
