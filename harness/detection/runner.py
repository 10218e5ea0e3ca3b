"""Run detection models on a COCO-layout image folder and store every detection.

A model is a torchvision detection model name (``fasterrcnn_resnet50_fpn``, ``maskrcnn_resnet50_fpn``,
``keypointrcnn_resnet50_fpn`` ...) or ``package.module:factory`` for any model with the same
interface: ``model(list of CHW float tensors in [0, 1])`` returns one dict per image with
``boxes`` (x1, y1, x2, y2 in pixels), ``labels`` (category ids of the label set), ``scores`` and
optionally ``masks`` (N x 1 x H x W probabilities) and ``keypoints`` (N x K x 3). Resizing and
normalisation happen inside such models, so the images go in at full size.

Weights come from ``checkpoint`` (a state_dict file) or, when online, torchvision's download.
"""
from __future__ import annotations

import hashlib
import importlib
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa

from ..distributed import Shard
from ..errors import HarnessError
from ..inference import pick_device
from ..runner import BackoffForward, Job, Outcome, check_coverage, environment, execute, shard_device
from ..store import RunWriter, Store
from . import formats
from .tables import DETECTIONS, label_column, read_label_tables

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_MASK_THRESHOLD = 0.5  # torchvision's reference evaluation binarises mask probabilities at 0.5


def load_detector(name: str, checkpoint: str | Path | None = None, model_kwargs: dict | None = None):
    """(model in eval mode, weights source, weights sha256) for a torchvision name or ``module:factory``."""
    import torchvision

    from ..data import sha256_file
    from ..models import read_checkpoint, state_dict_sha256

    kwargs = dict(model_kwargs or {})
    if ":" in name:
        module, attr = name.split(":", 1)
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise HarnessError(f"model {name!r}: cannot import {attr} from {module} ({exc})") from None
        construct = lambda weights: factory(**kwargs)  # noqa: E731
        downloadable = False
    else:
        known = torchvision.models.list_models(module=torchvision.models.detection)
        if name not in known:
            raise HarnessError(f"unknown detection model {name!r}; expected one of {', '.join(known)} "
                               "or module:factory for a model with the same interface")
        # No backbone weights either: the detector's own weights replace them, and offline they cannot download.
        construct = lambda weights: torchvision.models.get_model(  # noqa: E731
            name, weights=weights, **({"weights_backbone": None} if weights is None else {}), **kwargs)
        downloadable = True

    def build(weights):
        try:
            return construct(weights)
        except TypeError as exc:
            raise HarnessError(f"model {name} cannot be built with options {kwargs}: {exc}") from None

    if checkpoint is not None:
        path = Path(checkpoint)
        model = build(None)
        state = read_checkpoint(path)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise HarnessError(f"checkpoint {path} does not fit model {name}: "
                               f"{' '.join(str(exc).splitlines()[:3])}") from None
        source, digest = f"checkpoint:{path.resolve()}", sha256_file(path)
    elif downloadable:
        try:
            model = build("DEFAULT")
        except HarnessError:
            raise
        except Exception as exc:  # noqa: BLE001 - network, hub and cache errors all mean "no weights"
            raise HarnessError(
                f"weights for {name} could not be downloaded ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200]}); offline, pass --checkpoint FILE with a state_dict") from None
        source, digest = f"torchvision:{name}.DEFAULT", state_dict_sha256(model.state_dict())
    else:
        model = build(None)
        source, digest = f"factory:{name}", state_dict_sha256(model.state_dict())
    return model.eval(), source, digest


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise HarnessError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise HarnessError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _image_ids(store: Store, suite, files: list[Path], label_set: str | None) -> tuple[str, list[int]]:
    """The label set whose images the files are (by file name), and each file's image id."""
    names = [f.name for f in files]
    candidates = [label_set] if label_set else list(suite.label_sets)
    if not label_set:
        suite.ensure_label_sets(store)
    best = None
    for candidate in candidates:
        label_set = suite.check_label_set(store, candidate)
        images = read_label_tables(store, label_set, ["coco_images"])["coco_images"]
        by_name = dict(zip(images.column("file_name").to_pylist(), images.column("image_id").to_pylist()))
        missing = [n for n in names if n not in by_name]
        if not missing:
            return label_set, [by_name[n] for n in names]
        if best is None or len(missing) < len(best[1]):
            best = (label_set, missing)
    label_set, missing = best
    raise HarnessError(
        f"{len(missing)} of the {len(names)} images in {files[0].parent} are not images of label set {label_set} "
        f"(first: {missing[0]}); expected file names listed in the ground truth, or pass the label set "
        "they belong to")


# Detections of one image get det_index = position of the image in the run's listing * DETS_PER_IMAGE + its
# rank among the image's kept detections: unique and in a defined order (image order, then score, category and box)
# however the images were split between ranks and sessions, so a resumed or sharded run stores the very
# rows of an uninterrupted one.
DETS_PER_IMAGE = 1 << 20


def detection_rows(outputs: list[dict], image_ids: list[int], positions: list[int], categories: set[int]
          ) -> tuple[pa.Table | None, int]:
    """Model outputs as COCO result records (boxes as x, y, w, h); detections of unknown categories dropped."""
    from pycocotools import mask as mask_utils

    records, indices, dropped = [], [], 0
    for out, image_id, position in zip(outputs, image_ids, positions):
        boxes = out["boxes"].detach().cpu().double().numpy()
        labels = out["labels"].detach().cpu().numpy()
        scores = out["scores"].detach().cpu().double().numpy()
        masks = out.get("masks")
        rles = None
        if masks is not None:
            binary = (masks.detach().cpu()[:, 0] > _MASK_THRESHOLD).numpy().astype(np.uint8)
            rles = mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0))) if len(binary) else []
        keypoints = out.get("keypoints")
        if keypoints is not None:
            keypoints = keypoints.detach().cpu().double().numpy().reshape(len(boxes), -1)
        if len(boxes) >= DETS_PER_IMAGE:
            raise HarnessError(f"image {image_id}: the model returned {len(boxes):,} detections, more than the "
                               f"{DETS_PER_IMAGE:,} per image a run stores")
        kept = 0
        # The model's own order among equal scores depends on its sort and thread count; a defined order
        # (score, then category, then the box, then the model's index) makes det_index a function of the
        # detections alone, in one process, several threads or torchrun ranks.
        order = sorted(range(len(boxes)), key=lambda j: (-scores[j], int(labels[j]), *boxes[j].tolist(), j))
        for j in order:
            if int(labels[j]) not in categories:
                dropped += 1
                continue
            x1, y1, x2, y2 = boxes[j].tolist()
            rec = {"image_id": int(image_id), "category_id": int(labels[j]), "score": float(scores[j]),
                   "bbox": [x1, y1, x2 - x1, y2 - y1]}
            if rles is not None:
                rec["segmentation"] = {"size": [int(s) for s in rles[j]["size"]], "counts": rles[j]["counts"].decode()}
            if keypoints is not None:
                rec["keypoints"] = keypoints[j].tolist()
            records.append(rec)
            indices.append(position * DETS_PER_IMAGE + kept)
            kept += 1
    if not records:
        return None, dropped
    table = formats.results_table(records).set_column(0, "det_index", pa.array(indices, pa.int64()))
    return table, dropped


def run_detector(store: Store, suite, model_name: str, data_dir: str | Path | None = None, **options) -> str:
    """Run ``model_name`` on every image of ``data_dir`` (or the first ``limit`` by file name) and store its
    detections; returns the run id (see :func:`evaluate_detection` for the options)."""
    return evaluate_detection(store, suite, model_name, data_dir, **options).run_id


def evaluate_detection(store: Store, suite, model_name: str, data_dir: str | Path | None = None,
                       checkpoint: str | Path | None = None, batch_size: int = 2, device: str | None = None,
                       label_set: str | None = None, model_kwargs: dict | None = None, name: str | None = None,
                       limit: int | None = None, quiet: bool = False, chunk_images: int = 64, fresh: bool = False,
                       resume: str | None = None, skip_complete: bool = False, shard: Shard | None = None,
                       record_failures: bool = False, on_claim: Callable[[str], None] | None = None,
                       log: Callable[[str], None] | None = None) -> Outcome:
    """Run a detector on an image folder through the run engine (``harness.runner.execute``): resumed
    when killed or interrupted, sharded under torchrun, isolated in bulk runs like a classifier.

    The run is scored on the images it ran on (``image_ids``). Every ``chunk_images`` images become one
    atomic chunk of detections that also names the images it covers, those without a detection included.
    """
    from ..data import load_manifest, resolve

    shard = shard or Shard()
    quiet = quiet or not shard.is_leader

    def prepare() -> Job:
        folder = data_dir
        if folder is None:
            if suite.default_images is None:
                raise HarnessError(f"suite {suite.name} ships no images; pass an image folder (--data-dir)")
            manifest, sub = suite.default_images
            folder = resolve(manifest, [e.path for e in load_manifest(manifest).under(sub)]) / sub
        files = list_images(Path(folder))
        if limit is not None:
            if limit < 1:
                raise HarnessError(f"limit {limit} must be at least 1 image")
            files = files[:limit]
        if batch_size < 1:
            raise HarnessError(f"batch size {batch_size} must be at least 1")
        if chunk_images < 1:
            raise HarnessError(f"chunk size {chunk_images} must be at least 1 image")

        chosen, image_ids = _image_ids(store, suite, files, label_set)
        categories = set(label_column(store, chosen, "coco_categories", "category_id"))
        dev = shard_device(pick_device(device), shard)
        model, source, digest = load_detector(model_name, checkpoint, model_kwargs)
        model.to(dev)
        listing = hashlib.sha256("".join(f"{f.name}\t{f.stat().st_size}\n" for f in files).encode()).hexdigest()
        config = {
            "model": model_name, "weights_sha256": digest, "model_kwargs": model_kwargs or {},
            "dataset": suite.dataset, "label_set": chosen, "data_dir": str(Path(folder).resolve()),
            "listing_sha256": listing, "limit": limit, "precision": "fp32",
            "preprocessing": {"input": "RGB, full size, float in [0, 1]; resizing and normalisation inside the model"},
        }
        meta = {"metric_version": suite.metric_version, "weights_source": source, "image_ids": image_ids,
                "n_images": len(files), "batch_size": batch_size, "device": dev, "environment": environment(dev)}
        items = [(str(i), (position, i, f)) for position, (i, f) in enumerate(zip(image_ids, files))]

        def predict(writer: RunWriter, todo: list, shard: Shard) -> dict:
            return _predict(writer, model, todo, dev, batch_size, chunk_images, categories, quiet, shard)

        return Job(items=items, config=config, meta=meta, device=dev, predict=predict, done_keys=_covered_keys,
                   verify=_verify, table=DETECTIONS,
                   describe=f"{model_name} on {len(files):,} images of {chosen} ({folder}) on {dev}")

    return execute(store, suite, model_name, prepare, name=name, checkpoint=checkpoint, fresh=fresh,
                   resume=resume, skip_complete=skip_complete, shard=shard, record_failures=record_failures,
                   on_claim=on_claim, quiet=quiet, log=log)


def _predict(writer: RunWriter, model, todo: list, device: str, batch_size: int, chunk_images: int,
             categories: set[int], quiet: bool, shard: Shard) -> dict:
    """Detect on ``todo`` in batches; every ``chunk_images`` images are published as one chunk."""
    import torch
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor
    from tqdm import tqdm

    forward = BackoffForward(model, device, "fp32", batch_size,
                             lambda msg: print(f"rank {shard.rank}: {msg}" if shard.sharded else msg, file=sys.stderr))
    tables: list[pa.Table] = []
    covers: list[str] = []
    dropped = 0
    storage_s = 0.0

    def flush() -> float:
        nonlocal dropped
        t = time.perf_counter()
        if covers:
            table = pa.concat_tables(tables) if tables else formats.DETECTIONS_SCHEMA.empty_table()
            writer.write_chunk(table, DETECTIONS, notes={"covers": list(covers), "dropped_unknown_category": dropped})
            tables.clear()
            covers.clear()
            dropped = 0
        return time.perf_counter() - t

    started = time.perf_counter()
    bar = tqdm(total=len(todo), unit="img", disable=quiet, file=sys.stderr,
               desc=f"rank 0 of {shard.world_size}" if shard.sharded else None)
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        images = []
        for _, (_, _, f) in batch:
            try:
                with Image.open(f) as im:
                    images.append(pil_to_tensor(im.convert("RGB")).float().div_(255).to(device))
            except OSError as exc:
                raise HarnessError(f"image {f} could not be read: {exc}") from None
        with torch.inference_mode():
            outputs = forward(images)
        table, n_dropped = detection_rows(outputs, [i for _, (_, i, _) in batch], [p for _, (p, _, _) in batch], categories)
        dropped += n_dropped
        if table is not None:
            tables.append(table)
        covers.extend(key for key, _ in batch)
        bar.update(len(batch))
        if len(covers) >= chunk_images:
            storage_s += flush()
    storage_s += flush()
    bar.close()
    return {"loop_s": time.perf_counter() - started, "storage_s": storage_s,
            "batch_size_effective": forward.slice, "oom_retries": forward.oom_retries}


def _covered_keys(writer: RunWriter) -> set[str]:
    return {key for notes in writer.chunk_notes(DETECTIONS) for key in notes.get("covers", [])}


def _verify(writer: RunWriter, keys: list[str], shard: Shard) -> dict:
    """Every image covered by exactly one chunk, every detection on an image of its chunk; the run's counts."""
    notes = writer.chunk_notes(DETECTIONS)
    check_coverage(writer, keys, [key for n in notes for key in n.get("covers", [])], shard)
    table = writer.read_table(DETECTIONS, ["det_index", "image_id", "segm_counts", "keypoints"])
    n = table.num_rows
    if n and len(set(table.column("det_index").to_pylist())) != n:
        raise HarnessError(f"run {writer.run_id}: some detections are stored twice (repeated det_index)")
    iou_types = ["bbox"]
    if n and table.column("segm_counts").null_count < n:
        iou_types.append("segm")
    if n and table.column("keypoints").null_count < n:
        iou_types.append("keypoints")
    return {"n_rows": n, "n_errors": 0, "n_detections": n, "iou_types": iou_types,
            "n_dropped_unknown_category": sum(int(n.get("dropped_unknown_category", 0)) for n in notes)}
