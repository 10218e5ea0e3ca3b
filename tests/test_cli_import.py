"""The CLI's import paths for every task: classification, COCO ground truth and results, ActivityNet."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def harness(store, *args):
    return subprocess.run([sys.executable, "-m", "harness", "--store", str(store.root), *args], capture_output=True,
                          text=True, cwd=REPO, env=dict(os.environ), timeout=600)


def test_coco_ground_truth_and_yolo_detections_from_the_cli(store, shared_data):
    gt = shared_data / "coco/val2017-tiny/instances_val2017.json"
    proc = harness(store, "import-labels", "--suite", "coco", "--name", "tiny2017", str(gt))
    assert proc.returncode == 0, proc.stderr
    yolo = shared_data / "coco/yolov2_val2017_detections.json"
    refused = harness(store, "import", "--suite", "coco", "--name", "yolo", "--labels", "tiny2017", str(yolo))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr  # detections on images outside it
    proc = harness(store, "import", "--suite", "coco", "--name", "yolo", "--labels", "tiny2017",
                   "--drop-unknown-images", str(yolo))
    assert proc.returncode == 0, proc.stderr
    scored = harness(store, "score", "--run", "yolo", "--labels", "tiny2017", "--json")
    assert scored.returncode == 0, scored.stderr
    assert '"AP": 0.1897450798025076' in scored.stdout  # equal to pycocotools (tests/test_coco.py)


def test_import_options_a_suite_does_not_take_are_refused(store, shared_data):
    preds = shared_data / "imagenet/model_predictions/ViT.csv"
    proc = harness(store, "import", "--suite", "real", "--labels", "real", str(preds))
    assert proc.returncode == 2 and "suite real takes no --labels option" in proc.stderr
    proc = harness(store, "import-labels", "--suite", "real", "--name", "x", str(preds))
    assert proc.returncode == 2 and "has no ground-truth file import" in proc.stderr
    assert store.list_runs() == []
