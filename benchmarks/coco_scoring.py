"""COCO scoring speed: the harness (read from the store + faster-coco-eval) against pycocotools.

    .venv/bin/python benchmarks/coco_scoring.py [--replicas 50] [--repeats 3] [--segm]

Workload: the real 100-image val2014 ground truth replicated to 5,000 images (new image and
annotation ids per replica), and the pycocotools bbox result file replicated with it, each
detection joined by two jittered copies and, for every other one, a far-off copy (seeded), so
~128k detections with realistic matches, near-misses and false positives.

Both sides start from files: pycocotools reads the ground truth and result JSON (``COCO(file)``,
``loadRes(file)``), evaluates, accumulates, summarizes; the harness scores the run already
imported into a store, reading its rows and the label set from Parquet. Runs alternate
(pycocotools, harness, ...) so machine noise hits both; medians are reported with the import
time (paid once per result file) on its own line. The 12 summary numbers must be identical.
Writes benchmarks/results/coco.md.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("REALBENCH_MIRROR", str(REPO.parent / "shared" / "data"))

ID_STRIDE = 1_000_000


def scaled_workload(replicas: int, segm: bool, seed: int = 0) -> tuple[dict, list[dict]]:
    from harness.data import resolve_file

    gt = json.loads(resolve_file("coco-val2014-100", "coco/instances_val2014_100.json").read_text())
    rel = f"coco/instances_val2014_fake{'segm' if segm else 'bbox'}100_results.json"
    results = json.loads(resolve_file("coco-val2014-100", rel).read_text())
    rng = np.random.default_rng(seed)
    images, annotations, detections = [], [], []
    for k in range(replicas):
        offset = k * ID_STRIDE
        images += [{**im, "id": im["id"] + offset} for im in gt["images"]]
        annotations += [{**a, "id": a["id"] + offset, "image_id": a["image_id"] + offset}
                        for a in gt["annotations"]]
        for i, r in enumerate(results):
            base = {**r, "image_id": r["image_id"] + offset}
            detections.append(base)
            if segm:
                continue  # masks are not jittered: the replicas alone make the segm workload
            x, y, w, h = r["bbox"]
            for _ in range(2):
                dx, dy, dw, dh = rng.normal(0, 0.1, 4) * [w, h, w, h]
                detections.append({**base, "bbox": [x + dx, y + dy, max(w + dw, 1.0), max(h + dh, 1.0)],
                                   "score": float(r["score"] * rng.uniform(0.3, 1.0))})
            if i % 2:
                detections.append({**base, "bbox": [x + 2 * w, y, w, h], "score": float(rng.uniform(0, 0.5))})
    return {**gt, "images": images, "annotations": annotations}, detections


def pycocotools_from_files(gt_path: Path, results_path: Path, iou_type: str) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(str(results_path)), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return list(ev.stats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--segm", action="store_true", help="segmentation instead of boxes")
    args = parser.parse_args()

    from harness.detection.evaluate import COCO_SUMMARY_ORDER
    from harness.detection.suite import COCO, import_ground_truth
    from harness.store import Store

    iou_type = "segm" if args.segm else "bbox"
    work = Path(tempfile.mkdtemp(prefix="coco-bench-"))
    gt, detections = scaled_workload(args.replicas, args.segm)
    gt_path, results_path = work / "gt.json", work / "results.json"
    gt_path.write_text(json.dumps(gt))
    results_path.write_text(json.dumps(detections))
    n_images, n_dets = len(gt["images"]), len(detections)
    print(f"workload: {n_images:,} images, {len(gt['annotations']):,} objects, {n_dets:,} detections ({iou_type})")

    store = Store(work / "store")
    t0 = time.perf_counter()
    import_ground_truth(store, gt_path, "coco-scaled")
    t_gt = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_id = COCO.import_predictions(store, results_path, "scaled", label_set="coco-scaled")
    t_import = time.perf_counter() - t0

    theirs, ours = [], []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        official = pycocotools_from_files(gt_path, results_path, iou_type)
        theirs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        result = COCO.score(store, run_id, label_set="coco-scaled", iou_types=[iou_type])
        ours.append(time.perf_counter() - t0)
        mine = [result[iou_type][k] for k in COCO_SUMMARY_ORDER]
        if mine != official:
            raise SystemExit(f"numbers differ:\n  pycocotools {official}\n  harness     {mine}")
        print(f"repeat {i + 1}: pycocotools {theirs[-1]:.2f} s, harness {ours[-1]:.2f} s (identical numbers)")

    t_theirs, t_ours = statistics.median(theirs), statistics.median(ours)
    ratio = t_theirs / t_ours
    print(f"median: pycocotools {t_theirs:.2f} s, harness {t_ours:.2f} s, speed-up {ratio:.2f}x (goal >= 3x)")
    write_results(iou_type, n_images, len(gt["annotations"]), n_dets, args.repeats, t_theirs, t_ours, ratio,
                  t_gt, t_import, result[iou_type])


def write_results(iou_type, n_images, n_objects, n_dets, repeats, t_theirs, t_ours, ratio, t_gt, t_import,
                  summary) -> None:
    import importlib.metadata as md

    path = REPO / "benchmarks" / "results" / "coco.md"
    sections = {}
    if path.exists():
        current = None
        for line in path.read_text().splitlines():
            if line.startswith("## "):
                current = line[3:].split(" ")[0]
                sections[current] = []
            if current:
                sections[current].append(line)
    versions = ", ".join(f"{p} {md.version(p)}" for p in ("faster-coco-eval", "pycocotools", "numpy"))
    sections[iou_type] = [
        f"## {iou_type} ({datetime.date.today().isoformat()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores)",
        "",
        f"Workload: {n_images:,} images, {n_objects:,} objects, {n_dets:,} detections; medians of {repeats} "
        "alternating repeats; the 12 summary numbers identical in every repeat.",
        "",
        "| | seconds |",
        "|---|---:|",
        f"| pycocotools (read JSON files, evaluate, accumulate, summarize) | {t_theirs:.2f} |",
        f"| harness score (read Parquet rows and label set, faster-coco-eval, official precision) | {t_ours:.2f} |",
        f"| **speed-up** (goal >= 3x) | **{ratio:.2f}x** |",
        f"| once per file: import ground truth as a label set | {t_gt:.2f} |",
        f"| once per file: import results as a run (validate every record) | {t_import:.2f} |",
        "",
        f"AP {summary['AP']:.4f}, AP50 {summary['AP50']:.4f}, AR@100 {summary['AR@100']:.4f}. {versions}.",
        "",
    ]
    header = ["# COCO scoring speed", "", "`.venv/bin/python benchmarks/coco_scoring.py [--segm]` "
              "(harness vs pycocotools, side by side). Measured on the shared 2-core development machine "
              "with other jobs running: seconds are noisy, the side-by-side ratio is the number to read.", ""]
    body = [line for key in sorted(sections) for line in sections[key]]
    path.write_text("\n".join(header + body) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
