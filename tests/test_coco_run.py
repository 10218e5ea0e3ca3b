"""Running detectors end to end on the 10 real val2017 images (randomly initialised weights: the
plumbing is the point, not the AP)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from pycocotools import mask as mask_utils
from torchvision.transforms.functional import pil_to_tensor

from harness.detection.runner import DETS_PER_IMAGE
from harness.detection.suite import COCO, read_detections
from harness.errors import HarnessError

from childproc import INTERRUPTIBLE

MODEL = "fasterrcnn_mobilenet_v3_large_320_fpn"
# Random weights score every class about equally, under the default 0.05 threshold; keep a few
# low-scoring boxes per image and fewer proposals so the CPU run stays short.
SMALL = {"box_score_thresh": 0.0, "box_detections_per_img": 8, "rpn_pre_nms_top_n_test": 100,
         "rpn_post_nms_top_n_test": 30}
TINY = "coco/val2017-tiny"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = torchvision.models.get_model(MODEL, weights=None, weights_backbone=None)
    path = tmp_path_factory.mktemp("weights") / "random.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.slow
def test_torchvision_detector_from_checkpoint(store, shared_data, checkpoint):
    run_id = COCO.run(store, MODEL, None, checkpoint=checkpoint, batch_size=4, model_kwargs=SMALL, quiet=True)
    meta = store.run_meta(run_id)
    files = sorted((shared_data / TINY).glob("*.jpg"))
    assert meta["status"] == "complete" and meta["kind"] == "run" and meta["label_set"] == "coco-val2017-tiny"
    assert meta["image_ids"] == [int(f.stem) for f in files]  # val2017 file names are the ids
    assert meta["weights_source"].startswith("checkpoint:") and len(meta["weights_sha256"]) == 64

    rows = read_detections(store, run_id).to_pandas()
    assert len(rows) == meta["n_detections"] and set(rows["image_id"]) <= set(meta["image_ids"])
    # det_index: the image's position in the listing, then the detection's rank within the image
    position = {image_id: i for i, image_id in enumerate(meta["image_ids"])}
    assert (rows["det_index"] // DETS_PER_IMAGE == rows["image_id"].map(position)).all()
    assert (rows.groupby("image_id")["det_index"].apply(lambda d: list(d % DETS_PER_IMAGE)) ==
            rows.groupby("image_id")["det_index"].apply(lambda d: list(range(len(d))))).all()

    # The stored rows are the model's own output for that image, boxes turned into x, y, w, h. The
    # first batch is fed again as a batch: images of a batch are padded to a common size, which
    # changes what an untrained model sees.
    model = torchvision.models.get_model(MODEL, weights=None, weights_backbone=None, **SMALL)
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    model.eval()
    batch = []
    for f in files[:4]:
        with Image.open(f) as im:
            batch.append(pil_to_tensor(im.convert("RGB")).float().div_(255))
    height, width = batch[0].shape[1:]
    with torch.inference_mode():
        out = model(batch)[0]
    mine = rows[rows["image_id"] == int(files[0].stem)]
    known = np.isin(out["labels"].numpy(), COCO_CATEGORY_IDS)
    # Stored in the run's defined order: score (highest first), then category, then the box (x1, y1, x2, y2).
    order = sorted(np.flatnonzero(known), key=lambda j: (-float(out["scores"][j]), int(out["labels"][j]),
                                                          *out["boxes"][j].double().tolist()))
    known = np.asarray(order, dtype=int)
    boxes = out["boxes"].double().numpy()[known]
    np.testing.assert_allclose(mine[["bbox_x", "bbox_y"]].to_numpy(), boxes[:, :2], rtol=0, atol=1e-3)
    np.testing.assert_allclose(mine["bbox_w"].to_numpy(), boxes[:, 2] - boxes[:, 0], rtol=0, atol=1e-3)
    np.testing.assert_allclose(mine["bbox_h"].to_numpy(), boxes[:, 3] - boxes[:, 1], rtol=0, atol=1e-3)
    np.testing.assert_allclose(mine["score"].to_numpy(), out["scores"].double().numpy()[known], atol=1e-5)
    assert (mine["bbox_x"] >= 0).all() and (mine["bbox_x"] + mine["bbox_w"] <= width + 1e-3).all()
    assert (mine["bbox_y"] + mine["bbox_h"] <= height + 1e-3).all()

    result = COCO.score(store, run_id)
    assert result["n"] == 10 and result["label_set"] == "coco-val2017-tiny"
    assert result["n_images_in_label_set"] == 80 and result["partial"]  # 10 of its 80 images ship as JPEGs
    assert all(-1 <= v <= 1 for v in result["bbox"].values())


COCO_CATEGORY_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]


class BrightestRegion(torch.nn.Module):
    """A stand-in detector with torchvision's interface: one person at the brightest tenth of the
    image (box, mask, keypoints on the box) and one box of a category COCO does not have."""

    def forward(self, images):
        outputs = []
        for im in images:
            gray = im.mean(0)
            mask = gray > torch.quantile(gray.flatten()[::7], 0.9)
            ys, xs = mask.nonzero(as_tuple=True)
            box = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)
            corners = torch.stack([box[0, [0, 1]], box[0, [2, 1]], box[0, [0, 3]], box[0, [2, 3]]])
            keypoints = torch.cat([corners.repeat(5, 1)[:17], torch.ones(17, 1)], dim=1)[None]
            outputs.append({
                "boxes": torch.cat([box, box / 2]), "labels": torch.tensor([1, 12]),
                "scores": torch.tensor([0.9, 0.8]),
                "masks": torch.stack([mask, mask]).float()[:, None],
                "keypoints": torch.cat([keypoints, keypoints]),
            })
        return outputs


def brightest_region():
    return BrightestRegion()


def test_any_model_with_the_interface_masks_and_keypoints(store, shared_data):
    run_id = COCO.run(store, "test_coco_run:brightest_region", shared_data / TINY, batch_size=3, quiet=True)
    meta = store.run_meta(run_id)
    assert meta["iou_types"] == ["bbox", "segm", "keypoints"]
    assert meta["n_detections"] == 10 and meta["n_dropped_unknown_category"] == 10
    rows = read_detections(store, run_id).to_pandas()
    first = rows.iloc[0]
    with Image.open(shared_data / TINY / f"{int(first['image_id']):012d}.jpg") as im:
        x = pil_to_tensor(im.convert("RGB")).float().div_(255)
    expected = BrightestRegion()([x])[0]["masks"][0, 0].numpy() > 0.5
    rle = {"size": [int(first["segm_height"]), int(first["segm_width"])], "counts": first["segm_counts"]}
    assert (mask_utils.decode(rle).astype(bool) == expected).all()
    assert len(first["keypoints"]) == 51
    result = COCO.score(store, run_id, iou_types=["bbox", "segm"])
    assert result["n"] == 10 and set(result) >= {"bbox", "segm"}


@pytest.mark.slow
def test_cli_runs_a_detector_with_name_limit_and_label_set(store, shared_data):
    """``python -m harness run --suite coco`` end to end, in its own process, with the stand-in above."""
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tests), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "harness", "--store", str(store.root), "run", "--suite", "coco", "--quiet",
           "--model", "test_coco_run:brightest_region"]
    proc = subprocess.run(cmd + ["--name", "bright", "--limit", "4", "--labels", "coco-val2017-tiny",
                                 "--batch-size", "3"], capture_output=True, text=True, env=env, cwd=tests.parent,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    run_id = store.resolve_run("bright")["run_id"]
    meta = store.run_meta(run_id)
    first_four = [int(f.stem) for f in sorted((shared_data / TINY).glob("*.jpg"))[:4]]
    assert (meta["name"], meta["label_set"], meta["batch_size"]) == ("bright", "coco-val2017-tiny", 3)
    assert meta["image_ids"] == first_four and meta["n_detections"] == 4 and meta["n_dropped_unknown_category"] == 4
    stored, printed = proc.stdout.split("\n", 1)
    assert stored == f"stored as run {run_id} in {store.root}"
    scored = COCO.score(store, run_id)
    assert printed == COCO.describe(scored) + "\n"  # pycocotools' summary lines, not JSON
    lines = printed.splitlines()
    assert lines[0].startswith("bright on coco-val2017-tiny, PARTIAL run: not the label set's AP: 4 of 80 images")
    ap_line = lines[lines.index("bbox:") + 1]
    assert ap_line == (" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = "
                       f"{scored['bbox']['AP']:0.3f}")
    # Boxes and masks are scored; keypoints cannot be on instance ground truth, and the result says so.
    assert scored["n"] == 4 and scored["iou_types"] == ["bbox", "segm"] and scored["official_max_dets"]
    assert scored["partial"] and scored["n_images_in_label_set"] == 80
    assert scored["not_scored"] == {"keypoints": "label set 'coco-val2017-tiny' has no keypoint ground truth"}
    assert lines[-1] == "keypoints: not scored (label set 'coco-val2017-tiny' has no keypoint ground truth)"
    assert len([line for line in lines if line.startswith(" Average")]) == 24  # 12 per IoU type

    refused = subprocess.run(cmd + ["--workers", "2", "--topk", "3"], capture_output=True, text=True, env=env,
                             cwd=tests.parent, timeout=600)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "suite coco takes no --workers, --topk options for runs; for runs it takes --checkpoint" in refused.stderr
    assert [r["run_id"] for r in store.list_runs()] == [run_id]


def small_detector():
    """MODEL with SMALL's settings, for the command line (``--model test_coco_run:small_detector``). With
    REALBENCH_TEST_SIGINT_AFTER=N the process sends itself Ctrl-C (SIGINT) once N batches went through."""
    import itertools
    import signal

    model = torchvision.models.get_model(MODEL, weights=None, weights_backbone=None, **SMALL)
    after = int(os.environ.get("REALBENCH_TEST_SIGINT_AFTER", "0"))
    if after:
        calls = itertools.count(1)
        model.register_forward_hook(lambda *_: os.kill(os.getpid(), signal.SIGINT) if next(calls) == after else None)
    return model


@pytest.mark.slow
def test_interrupted_detection_run_resumes_to_the_rows_of_an_uninterrupted_one(store, shared_data, checkpoint):
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tests), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "harness", "--store", str(store.root), "run", "--suite", "coco",
           "--model", "test_coco_run:small_detector", "--checkpoint", str(checkpoint), "--batch-size", "2",
           "--chunk-images", "2"]
    # Ctrl-C during the third batch: two chunks (4 images) are stored, the run is recorded as interrupted.
    # A background job (`nohup pytest &`, CI) starts with SIGINT ignored and passes that on to its children;
    # the child gets Ctrl-C's default handling back, in a session of its own, whatever pytest inherited.
    stopped = subprocess.run(cmd, capture_output=True, text=True, cwd=tests.parent, timeout=600,
                             env={**env, "REALBENCH_TEST_SIGINT_AFTER": "3"}, **INTERRUPTIBLE)
    assert stopped.returncode == 130 and "interrupted; run the same command again" in stopped.stderr
    [meta] = store.list_runs()
    assert meta["status"] == "interrupted"
    assert store.sql("SELECT count(*) AS n FROM coco_detections")["n"][0] == 0  # not complete: not in the view
    partial = store.sql("SELECT count(DISTINCT image_id) AS n FROM coco_detections_all")["n"][0]
    assert 0 < partial <= 4

    resumed = subprocess.run(cmd, capture_output=True, text=True, cwd=tests.parent, timeout=600, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming run {meta['run_id']}: 4 of 10 samples already stored" in resumed.stderr
    [done] = store.list_runs()
    assert done["status"] == "complete" and done["run_id"] == meta["run_id"]

    fresh = COCO.run(store, "test_coco_run:small_detector", None, checkpoint=checkpoint, batch_size=2,
                     chunk_images=2, quiet=True, fresh=True)
    assert fresh != done["run_id"]
    a = read_detections(store, done["run_id"]).to_pandas()
    b = read_detections(store, fresh).to_pandas()
    assert len(a) == len(b) == done["n_detections"] == store.run_meta(fresh)["n_detections"] > 0
    assert a["det_index"].tolist() == b["det_index"].tolist()
    assert a[["image_id", "category_id"]].equals(b[["image_id", "category_id"]])
    np.testing.assert_allclose(a[["score", "bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(),
                               b[["score", "bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(), rtol=0, atol=1e-6)
    for field in ("iou_types", "n_dropped_unknown_category", "image_ids", "fingerprint"):
        assert done[field] == store.run_meta(fresh)[field], field
    assert COCO.score(store, done["run_id"])["bbox"] == COCO.score(store, fresh)["bbox"]
    # The same command once more: the run is complete, nothing runs again.
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tests.parent, timeout=600, env=env)
    assert again.returncode == 0 and "already complete as run" in again.stdout
    assert len(store.list_runs()) == 2


@pytest.mark.slow
def test_two_torchrun_ranks_detect_into_one_run_with_the_rows_of_one_process(store, checkpoint):
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(tests), os.environ.get("PYTHONPATH")]))}
    # Batches of one image: a batch is padded to its largest image, so other batch partners would
    # change what a randomly initialised detector sees.
    proc = subprocess.run([str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node", "2",
                           "-m", "harness", "--store", str(store.root), "run", "--suite", "coco", "--quiet",
                           "--model", "test_coco_run:small_detector", "--checkpoint", str(checkpoint),
                           "--batch-size", "1", "--chunk-images", "2"],
                          capture_output=True, text=True, cwd=tests.parent, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr
    [sharded] = store.list_runs()
    assert sharded["status"] == "complete" and sharded["world_size"] == 2
    assert [s["images_this_session"] for s in sharded["shards"]] == [5, 5]
    assert proc.stdout.count("stored as run") == 1  # rank 0 alone reports
    # The reference runs with the ranks' one thread: a detector's float sums (and so which of its nearly
    # equal-scored boxes it keeps) depend on the thread count, whatever OMP_NUM_THREADS pytest started with.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = COCO.run(store, "test_coco_run:small_detector", None, checkpoint=checkpoint, batch_size=1,
                          quiet=True, fresh=True)
    finally:
        torch.set_num_threads(threads)
    a = read_detections(store, sharded["run_id"]).to_pandas()
    b = read_detections(store, single).to_pandas()
    assert len(a) == len(b) > 0 and a["det_index"].tolist() == b["det_index"].tolist()
    assert a[["image_id", "category_id"]].equals(b[["image_id", "category_id"]])
    np.testing.assert_allclose(a[["score", "bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(),
                               b[["score", "bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(), rtol=0, atol=1e-3)


def test_offline_without_weights_and_bad_folders(store, shared_data, tmp_path, monkeypatch, checkpoint):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no cached weights to fall back on
    with pytest.raises(HarnessError, match=r"weights for ssdlite320_mobilenet_v3_large could not be downloaded"
                                           r".*--checkpoint"):
        COCO.run(store, "ssdlite320_mobilenet_v3_large", shared_data / TINY, quiet=True)
    with pytest.raises(HarnessError, match=r"checkpoint .*random.pth does not fit model retinanet_resnet50_fpn"):
        COCO.run(store, "retinanet_resnet50_fpn", shared_data / TINY, checkpoint=checkpoint, quiet=True)
    with pytest.raises(HarnessError, match="unknown detection model 'yolo9000'"):
        COCO.run(store, "yolo9000", shared_data / TINY, quiet=True)
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(shared_data / TINY / "000000005001.jpg", folder / "holiday.jpg")
    with pytest.raises(HarnessError, match=r"1 of the 1 images .* not images of label set .*first: holiday.jpg"):
        COCO.run(store, MODEL, folder, quiet=True)
    with pytest.raises(HarnessError, match="does not exist"):
        COCO.run(store, MODEL, tmp_path / "nowhere", quiet=True)
    assert store.list_runs() == []
