"""COCO scoring speed: the harness (read from the store + ultrafast-pycocotools) against pycocotools,
faster-coco-eval, hotcoco and ultrafast-pycocotools on their own.

    .venv/bin/python benchmarks/coco_scoring.py [--replicas 50] [--repeats 3] [--segm]

(hotcoco and faster-coco-eval are in the ``bench`` extra: ``pip install -e '.[bench]'``.)

Workload: the real 100-image val2014 ground truth replicated to 5,000 images (new image and
annotation ids per replica), and the pycocotools bbox result file replicated with it, each
detection joined by two jittered copies and, for every other one, a far-off copy (seeded), so
~128k detections with realistic matches, near-misses and false positives.

The standalone tools start from files: each reads the ground truth and result JSON (``COCO(file)``,
``loadRes(file)``), evaluates, accumulates, summarizes; the harness scores the run already
imported into a store, reading its rows and the label set from Parquet (its stored-score cache
bypassed: this is the computation). Tools alternate within each repeat so machine noise hits all;
medians are reported with the import time (paid once per result file) on its own line. The 12
summary numbers must be identical to pycocotools' for every tool. Writes benchmarks/results/coco.md.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
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


def faster_coco_eval_from_files(gt_path: Path, results_path: Path, iou_type: str) -> list[float]:
    from faster_coco_eval import COCO, COCOeval_faster

    quiet = lambda *args, **kwargs: None  # noqa: E731
    gt = COCO(str(gt_path), print_function=quiet)
    ev = COCOeval_faster(gt, gt.loadRes(str(results_path)), iou_type, print_function=quiet)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return list(ev.stats)


def hotcoco_from_files(gt_path: Path, results_path: Path, iou_type: str) -> list[float]:
    import hotcoco

    with contextlib.redirect_stdout(io.StringIO()):
        gt = hotcoco.COCO(str(gt_path))
        ev = hotcoco.COCOeval(gt, gt.load_res(str(results_path)), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return list(ev.stats)


def ultrafast_from_files(gt_path: Path, results_path: Path, iou_type: str) -> list[float]:
    from ultrafast_pycocotools import COCO, COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path), verbose=False)
        ev = COCOeval(gt, gt.loadRes(str(results_path)), iou_type, print_function=lambda *a, **k: None)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return list(ev.stats)


def baseline_score(tree: Path, store_root: Path, run_id: str, iou_type: str) -> tuple[float, dict]:
    """An earlier harness's ``COCO.score`` of the same stored run, timed inside its own process."""
    import subprocess

    code = ("import json, sys, time; sys.path.insert(0, sys.argv[1]); "
            "from harness.detection.suite import COCO; from harness.store import Store; store = Store(sys.argv[2]); "
            "t0 = time.perf_counter(); "
            "r = COCO.score(store, sys.argv[3], label_set='coco-scaled', iou_types=[sys.argv[4]]); "
            "print(json.dumps({'seconds': time.perf_counter() - t0, 'summary': r[sys.argv[4]]}))")
    out = subprocess.run([sys.executable, "-c", code, str(tree.resolve()), str(store_root), run_id, iou_type],
                         capture_output=True, text=True, check=True, cwd=tree)
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    return answer["seconds"], answer["summary"]


STANDALONE = {
    "pycocotools": (pycocotools_from_files, "pycocotools"),
    "faster-coco-eval": (faster_coco_eval_from_files, "faster-coco-eval"),
    "hotcoco": (hotcoco_from_files, "hotcoco"),
    "ultrafast-pycocotools": (ultrafast_from_files, "ultrafast-pycocotools"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--segm", action="store_true", help="segmentation instead of boxes")
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                        help="a copy of an earlier harness/ (git archive COMMIT harness | tar -x -C DIR): its "
                             "score of the same stored run is timed too, in its own process")
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

    tools = {name: fn for name, (fn, package) in STANDALONE.items()
             if importlib.util.find_spec(package.replace("-", "_")) is not None}
    # pycocotools (minutes on a loaded 2-core machine) runs once: its numbers are the reference for every repeat.
    t0 = time.perf_counter()
    official = pycocotools_from_files(gt_path, results_path, iou_type)
    times: dict[str, list[float]] = {"pycocotools": [time.perf_counter() - t0]}
    tools.pop("pycocotools")
    times.update({name: [] for name in [*tools, "harness"] + (["harness before"] if args.baseline else [])})
    print(f"pycocotools {times['pycocotools'][0]:.2f} s")

    def check(name: str, numbers: list[float]) -> None:
        if numbers != official:
            raise SystemExit(f"numbers differ:\n  pycocotools {official}\n  {name} {numbers}")

    for i in range(args.repeats):
        for name, fn in tools.items():
            t0 = time.perf_counter()
            check(name, fn(gt_path, results_path, iou_type))
            times[name].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        result = COCO.score(store, run_id, label_set="coco-scaled", iou_types=[iou_type])
        times["harness"].append(time.perf_counter() - t0)
        check("harness", [result[iou_type][k] for k in COCO_SUMMARY_ORDER])
        if args.baseline:
            seconds, summary = baseline_score(args.baseline, store.root, run_id, iou_type)
            times["harness before"].append(seconds)
            check("harness before", [summary[k] for k in COCO_SUMMARY_ORDER])
        print(f"repeat {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()) + " (identical numbers)")

    medians = {k: statistics.median(v) for k, v in times.items()}
    print("median: " + ", ".join(f"{k} {v:.2f} s" for k, v in medians.items()))
    write_results(iou_type, n_images, len(gt["annotations"]), n_dets, args.repeats, medians, t_gt, t_import,
                  result[iou_type])


def write_results(iou_type, n_images, n_objects, n_dets, repeats, medians, t_gt, t_import, summary) -> None:
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
    versions = ", ".join(f"{p} {md.version(p)}" for p in ("ultrafast-pycocotools", "hotcoco", "faster-coco-eval",
                                                          "pycocotools", "numpy")
                         if importlib.util.find_spec(p.replace("-", "_")) is not None)
    harness_s = medians["harness"]
    reference = medians.get("pycocotools")
    fastest = min((v, k) for k, v in medians.items() if not k.startswith("harness"))
    rows = []
    for name, seconds in medians.items():
        what = {"harness": "**harness score** (read Parquet rows and label set, ultrafast-pycocotools)",
                "harness before": "harness score before (faster-coco-eval engine, official-precision fix-up)"}.get(
                    name, f"{name} on its own (read JSON files, evaluate, accumulate, summarize)")
        speedup = f"{reference / seconds:.1f}x" if reference else ""
        rows.append(f"| {what} | {seconds:.2f} | {speedup} |")
    sections[iou_type] = [
        f"## {iou_type} ({datetime.date.today().isoformat()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})",
        "",
        f"Workload: {n_images:,} images, {n_objects:,} objects, {n_dets:,} detections; medians of {repeats} "
        "repeats, the tools alternating within each (pycocotools once: its numbers are the reference); the 12 "
        "summary numbers identical to pycocotools' for every tool in every repeat.",
        "",
        "| | seconds (median) | vs pycocotools |",
        "|---|---:|---:|",
        *rows,
        f"| **harness / fastest standalone ({fastest[1]})** (goal <= 2x) | **{harness_s / fastest[0]:.2f}x** | |",
        *([f"| **harness before / harness now** (goal >= 15x) | **{medians['harness before'] / harness_s:.1f}x** | |"]
          if "harness before" in medians else []),
        f"| once per file: import ground truth as a label set | {t_gt:.2f} | |",
        f"| once per file: import results as a run (validate every record) | {t_import:.2f} | |",
        "",
        f"AP {summary['AP']:.4f}, AP50 {summary['AP50']:.4f}, AR@100 {summary['AR@100']:.4f}. {versions}.",
        "",
    ]
    body = [line for key in sorted(sections) for line in sections[key]]
    path.write_text("\n".join(HEADER + body) + "\n")
    print(f"wrote {path}")


HEADER = ["# COCO scoring speed", "", "`.venv/bin/python benchmarks/coco_scoring.py [--segm]` "
          "(harness vs pycocotools, faster-coco-eval, hotcoco and ultrafast-pycocotools, side by side). "
          "Measured on the shared 2-core development machine with other jobs running: seconds are noisy, "
          "the side-by-side ratios are the numbers to read.", ""]


if __name__ == "__main__":
    main()
