"""The ``coco`` and ``lvis`` suites: ground truth as label sets, detections as stored rows, scoring.

Stored tables (one row per object, queryable with SQL):

- run table ``coco_detections``: ``run_id, det_index, image_id, category_id, score, bbox_x, bbox_y,
  bbox_w, bbox_h, area, segm_counts, segm_height, segm_width, segm_polygons, keypoints``;
- label set tables ``coco_images`` (``image_id, file_name, width, height`` and LVIS's
  ``neg_category_ids, not_exhaustive_category_ids``), ``coco_annotations`` (same geometry
  columns plus ``ann_id, iscrowd, num_keypoints``) and ``coco_categories`` (``category_id, name,
  supercategory``, LVIS's ``frequency``, keypoint names and skeleton), each with ``label_set``.

Detections join the ground truth on ``image_id`` and ``category_id``, e.g. the detections per
category name of a run::

    SELECT c.name, count(*) FROM coco_detections d
    JOIN coco_categories c ON c.category_id = d.category_id AND c.label_set = 'coco-val2014-100'
    WHERE d.run_id = '...' GROUP BY c.name

Images share COCO's id space across val2014 and val2017 (and LVIS, whose images are COCO's),
so one run can be scored on any label set of its dataset.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from ..data import resolve_file, sha256_file
from ..errors import HarnessError
from ..identity import stored_import
from ..metrics import get_metric
from ..store import Store
from ..suites import Suite, declared
from . import formats
from .evaluate import IOU_TYPES, default_max_dets, evaluate, summary_lines
from .tables import (DETECTIONS, FIELD_OF_IOU_TYPE, GT_TABLES, available_iou_types, label_column,  # noqa: F401
                     read_detections, read_label_tables)


@dataclass(frozen=True)
class GroundTruthFile:
    manifest: str
    path: str
    description: str


@dataclass(repr=False)
class DetectionSuite(Suite):
    name: str
    dataset: str
    description: str
    default_label_set: str
    label_sets: dict[str, GroundTruthFile]
    lvis: bool = False
    default_images: tuple[str, str] | None = None  # (manifest, folder) of shipped images to run on
    example: tuple[str, str] | None = None  # (manifest, path) of a shipped result file

    task: ClassVar[str] = "detection"
    runner: ClassVar[str | None] = "detection"
    import_formats: ClassVar[tuple[str, ...]] = (".json",)
    options: ClassVar[dict[str, tuple[str, ...]]] = {
        "import": ("label_set", "drop_unknown_images", "model"), "import-labels": (),
        "score": ("iou_types", "max_dets"),
        "run": ("checkpoint", "batch_size", "device", "label_set", "model_kwargs", "name", "limit", "quiet",
                "chunk_images", "fresh", "resume"),
    }

    @property
    def metric_version(self) -> str:
        return get_metric("lvis_ap" if self.lvis else "coco_ap").version

    # ----- label sets --------------------------------------------------------
    def ensure_label_sets(self, store: Store, names: list[str] | None = None) -> None:
        for name in names or list(self.label_sets):
            if not store.has_label_set(name):
                source = self.label_sets[name]
                path = resolve_file(source.manifest, source.path)
                import_ground_truth(store, path, name, dataset=self.dataset, lvis=self.lvis,
                                    description=source.description, manifest=source.manifest)

    def key_of(self, name: str) -> str | None:
        """An image's key is its COCO image id; COCO file names are the zero-padded id."""
        stem = Path(str(name)).name.split(".", 1)[0]
        return str(int(stem)) if stem.isascii() and stem.isdigit() else None

    def sample_keys(self, store: Store, label_set: str | None = None) -> list[str]:
        ids = label_column(store, self.check_label_set(store, label_set), "coco_images", "image_id")
        return sorted(str(i) for i in ids)

    def check_label_set(self, store: Store, label_set: str | None, run: dict | None = None) -> str:
        """The label set to score against (given, else the run's, else the default), checked to be
        COCO-format ground truth of this suite's dataset; shipped ones are registered on first use."""
        label_set = label_set or (run or {}).get("label_set") or self.default_label_set
        if label_set in self.label_sets:
            self.ensure_label_sets(store, [label_set])
        meta = store.label_set_meta(label_set)
        if meta.get("dataset") != self.dataset or meta.get("format") != "coco":
            raise HarnessError(
                f"label set {label_set!r} holds {meta.get('dataset')!r} {meta.get('format', 'labels')}, "
                f"not {self.dataset} ground truth; suite {self.name} scores against "
                f"{', '.join(self.label_sets)} or a label set made with import_ground_truth")
        return label_set

    def _guess_label_set(self, store: Store, image_ids: set[int]) -> str:
        """The shipped label set with most of these images (all of them, when one has all)."""
        self.ensure_label_sets(store)
        best, best_overlap = self.default_label_set, -1
        for name in self.label_sets:
            overlap = len(image_ids & set(label_column(store, name, "coco_images", "image_id")))
            if overlap > best_overlap:
                best, best_overlap = name, overlap
        return best

    # ----- import ------------------------------------------------------------
    def _import_predictions(self, store: Store, path: Path, name: str, label_set: str | None = None,
                            drop_unknown_images: bool = False, model: str | None = None) -> str:
        """Import a COCO/LVIS result JSON as a run: every detection becomes a row; returns the run id."""
        existing = stored_import(store, self.dataset, path)
        if existing:
            return existing
        records = formats.read_json(path)
        if label_set is None and isinstance(records, list):
            label_set = self._guess_label_set(
                store, {r["image_id"] for r in records if isinstance(r, dict) and formats.is_int(r.get("image_id"))})
        label_set = self.check_label_set(store, label_set)
        images = read_label_tables(store, label_set, ["coco_images"])["coco_images"]
        image_ids = images.column("image_id").to_pylist()
        category_ids = set(label_column(store, label_set, "coco_categories", "category_id"))
        records, dropped = formats.validate_results(records, path, set(image_ids), category_ids, label_set,
                                                    drop_unknown_images)
        if "segmentation" in records[0] and "bbox" not in records[0]:
            sizes = dict(zip(image_ids, zip(images.column("height").to_pylist(),
                                            images.column("width").to_pylist())))
            records = formats.polygons_to_rle(records, sizes)
        table = formats.results_table(records)
        meta = {
            "name": name, "model": model or name, "suite": self.name, "dataset": self.dataset, "kind": "import",
            "metric_version": self.metric_version, "label_set": label_set,
            "source_file": str(path.resolve()), "source_sha256": sha256_file(path),
            "iou_types": available_iou_types(records[0]), "n_detections": len(records),
            "n_dropped_unknown_images": dropped,
        }
        return store.write_run(meta, {DETECTIONS: table})

    # ----- scoring -----------------------------------------------------------
    def evaluate(self, store: Store, run_id: str, label_set: str | None = None, iou_type: str | None = None,
                 max_dets: tuple[int, ...] | None = None):
        """(Evaluation, label set, run meta) for one IoU type: precision/recall arrays, per-category AP, summary."""
        run = store.run_meta(run_id)
        if run.get("suite") not in (self.name, None) and run.get("dataset") != self.dataset:
            raise HarnessError(f"run {run_id} is a {run.get('suite')} run on {run.get('dataset')!r}, "
                               f"not on suite {self.name}'s dataset {self.dataset!r}")
        label_set = self.check_label_set(store, label_set, run)
        detections = read_detections(store, run_id)
        kinds = run.get("iou_types") or IOU_TYPES
        iou_type = iou_type or kinds[0]
        if iou_type not in kinds:
            raise HarnessError(f"run {run_id} has no {FIELD_OF_IOU_TYPE.get(iou_type, iou_type)} results to "
                               f"score as {iou_type!r}; it has {', '.join(kinds)}")
        # Millions of small dicts: the cyclic collector would rescan them many times over, finding nothing.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            # Masks are most of the ground truth's bytes; only segm evaluation reads them.
            skip = () if iou_type == "segm" else ("segm_counts", "segm_height", "segm_width", "segm_polygons")
            gt = formats.ground_truth_dataset(read_label_tables(store, label_set, GT_TABLES, skip_columns=skip),
                                              with_segmentation=iou_type == "segm")
            if iou_type == "keypoints" and not any(a.get("num_keypoints") for a in gt["annotations"]):
                raise HarnessError(
                    f"label set {label_set!r} has no keypoint ground truth (no annotation with num_keypoints > 0); "
                    "score keypoints against a person_keypoints annotation file stored with import_ground_truth")
            # Another label set of the dataset may cover other images: it scores the images it has.
            known = {im["id"] for im in gt["images"]}
            inside = pc.is_in(detections.column("image_id"), pa.array(sorted(known), pa.int64()))
            detections_inside = detections.filter(inside)
            records = formats.result_box_array(detections_inside) if iou_type == "bbox" and not self.lvis else None
            if records is None:
                records = formats.result_records(detections_inside)
            image_ids = run.get("image_ids")
            if image_ids is not None:
                image_ids = [i for i in image_ids if i in known]
                if not image_ids:
                    raise HarnessError(f"run {run_id} ran on none of the images of label set {label_set!r}")
            ev = evaluate(gt, records, iou_type, lvis=self.lvis, max_dets=max_dets, image_ids=image_ids)
            ev.n_outside_label_set = detections.num_rows - len(records)
            ev.n_label_set_images = len(known)
        finally:
            if gc_was_enabled:
                gc.enable()
        return ev, label_set, run

    def _score(self, store: Store, run_id: str, label_set: str | None = None,
               iou_types: list[str] | None = None, max_dets: tuple[int, ...] | None = None) -> dict:
        """Summary numbers of a stored run for each IoU type it has (AP, AP50, ..., AR@100 ...).

        The result records the maxDets of each IoU type (``max_dets``) and whether they all are the
        official protocol's (``official_max_dets``): AP at other maxDets is not the official AP.
        Unless ``iou_types`` are asked for, a keypoint model's keypoints are left out (``not_scored``)
        on a label set without keypoint ground truth, and its boxes and masks scored."""
        run = store.run_meta(run_id)
        not_scored = {}
        if not iou_types:
            iou_types = list(run.get("iou_types") or ["bbox"])
            name = self.check_label_set(store, label_set, run)
            if len(iou_types) > 1 and "keypoints" in iou_types and not any(
                    label_column(store, name, "coco_annotations", "num_keypoints")):
                iou_types.remove("keypoints")
                not_scored["keypoints"] = f"label set {name!r} has no keypoint ground truth"
        summaries, max_dets_used = {}, {}
        for iou_type in iou_types:
            ev, label_set, run = self.evaluate(store, run_id, label_set, iou_type, max_dets)
            summaries[iou_type], max_dets_used[iou_type] = ev.summary, ev.max_dets
        result = {"run_id": run_id, "name": run.get("name"), "suite": self.name, "label_set": label_set,
                  "dataset": self.dataset, "metric_version": self.metric_version,
                  "n": len(ev.image_ids), "n_images_in_label_set": ev.n_label_set_images,
                  # a run on some of the images (--limit) is scored on those: not the label set's AP
                  "partial": len(ev.image_ids) < ev.n_label_set_images, "n_detections": ev.n_detections,
                  "n_detections_outside_label_set": ev.n_outside_label_set,
                  "iou_types": list(iou_types), "max_dets": max_dets_used, "official_max_dets": all(
                      tuple(m) == default_max_dets(t, self.lvis) for t, m in max_dets_used.items())}
        if not_scored:
            result["not_scored"] = not_scored
        return {**result, **summaries}

    def describe(self, result: dict) -> str:
        """pycocotools' summary lines (lvis-api's for LVIS) per IoU type, under one line saying what was scored."""
        partial = ", PARTIAL run: not the label set's AP" if result.get("partial") else ""
        lines = [f"{result['name']} on {result['label_set']}{partial}: {result['n']:,} of "
                 f"{result['n_images_in_label_set']:,} images, {result['n_detections']:,} detections "
                 f"({result['metric_version']})"]
        if result.get("n_detections_outside_label_set"):
            lines.append(f"{result['n_detections_outside_label_set']:,} detections on images outside the label set "
                         "are not evaluated")
        if not result.get("official_max_dets", True):
            lines.append("maxDets are not the official protocol's: AP is read at the largest (not comparable)")
        for iou_type in result["iou_types"]:
            lines.append(f"{iou_type}:")
            lines += summary_lines(result[iou_type], iou_type, result["max_dets"][iou_type], self.lvis)
        for iou_type, why in result.get("not_scored", {}).items():
            lines.append(f"{iou_type}: not scored ({why})")
        return "\n".join(lines)

    def _import_ground_truth(self, store: Store, path: Path, name: str) -> str:
        """Register an annotation file of this suite's format as a label set."""
        return import_ground_truth(store, path, name, dataset=self.dataset, lvis=self.lvis)

    # ----- running models ------------------------------------------------------
    def _run(self, store: Store, model_name: str, data_dir: str | Path | None = None, **options) -> str:
        """Run a detection model on an image folder and store every detection (see ``detection.runner``)."""
        from .runner import run_detector

        return run_detector(store, self, model_name, data_dir, **options)


def import_ground_truth(store: Store, path: str | Path, name: str, dataset: str = "coco", lvis: bool = False,
                        description: str = "", manifest: str | None = None) -> str:
    """Store a COCO or LVIS annotation file as a label set (images, annotations, categories tables)."""
    path = Path(path)
    gt = formats.read_json(path)
    if not isinstance(gt, dict):
        raise HarnessError(f"{path} holds a JSON {type(gt).__name__}; expected a COCO annotation file (an object "
                           "with images, annotations and categories)")
    tables = formats.ground_truth_tables(gt, path)
    if lvis and any(c.get("frequency") not in ("r", "c", "f") for c in gt["categories"]):
        raise HarnessError(f"{path} is not LVIS ground truth: every category needs a frequency r, c or f")
    meta = {"dataset": dataset, "format": "coco", "lvis": lvis, "description": description or f"ground truth {path.name}",
            "source_file": path.name, "source_sha256": sha256_file(path), "manifest": manifest}
    store.put_label_set(name, meta, tables)
    return name


COCO = DetectionSuite(
    **declared("coco"),
    label_sets={
        "coco-val2014-100": GroundTruthFile("coco-val2014-100", "coco/instances_val2014_100.json",
                                            "COCO val2014 ground truth, 100 images"),
        "coco-val2017-tiny": GroundTruthFile("coco-val2017-tiny", "coco/val2017-tiny/instances_val2017.json",
                                             "COCO val2017 ground truth, 80 images (COCO_Tiny)"),
    },
    default_images=("coco-val2017-tiny", "coco/val2017-tiny"),
    example=("coco-val2014-100", "coco/instances_val2014_fakebbox100_results.json"),
)
LVIS = DetectionSuite(
    **declared("lvis"),
    label_sets={"lvis-val-100": GroundTruthFile("lvis-val-100", "lvis/lvis_val_100.json",
                                                "LVIS validation ground truth, 100 images")},
    lvis=True,
)
