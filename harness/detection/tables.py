"""The stored detection tables: their names, and reading them back (a run's detections, a label set's
ground truth). Both the suite (imports, scoring) and the runner (model runs) use these."""
from __future__ import annotations

import pyarrow as pa

from ..errors import HarnessError
from ..store import Store
from .evaluate import IOU_TYPES

GT_TABLES = ("coco_images", "coco_annotations", "coco_categories")
DETECTIONS = "coco_detections"
FIELD_OF_IOU_TYPE = {"bbox": "bbox", "segm": "segmentation", "keypoints": "keypoints"}


def available_iou_types(record: dict) -> list[str]:
    """The IoU types a result record can be scored as (the geometry fields it has)."""
    return [t for t in IOU_TYPES if FIELD_OF_IOU_TYPE[t] in record]


def read_label_tables(store: Store, label_set: str, tables, skip_columns=()) -> dict[str, pa.Table]:
    """The named ground-truth tables of a COCO-format label set (without ``skip_columns``)."""
    out = {}
    for t in tables:
        if t not in store.label_set_entry(label_set).files:
            raise HarnessError(f"label set {label_set!r} has no {t} table; it is not COCO-format ground truth")
        out[t] = store.read_label_table(label_set, t, exclude=skip_columns)
    return out


def label_column(store: Store, label_set: str, table: str, column: str) -> list:
    """One column of one ground-truth table of a label set, as a list."""
    return read_label_tables(store, label_set, [table])[table].column(column).to_pylist()


def read_detections(store: Store, run_id: str) -> pa.Table:
    """A run's detections in file (or inference) order."""
    if DETECTIONS not in store.run_entry(run_id).files:
        raise HarnessError(f"run {run_id} has no detections ({DETECTIONS} rows); it is not a detection run")
    return store.read_run_table(run_id, DETECTIONS).sort_by("det_index")
