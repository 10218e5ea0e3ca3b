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

import importlib
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import HarnessError
from ..store import Store
from . import formats
from .suite import DETECTIONS, available_iou_types

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_MASK_THRESHOLD = 0.5  # torchvision's reference evaluation binarises mask probabilities at 0.5


def load_detector(name: str, checkpoint: str | Path | None = None, model_kwargs: dict | None = None):
    """(model in eval mode, weights source, weights sha256) for a torchvision name or ``module:factory``."""
    import torchvision

    from ..models import _read_checkpoint, sha256_file, state_dict_sha256

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
        state = _read_checkpoint(path)
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
    from .suite import _read_tables

    names = [f.name for f in files]
    candidates = [label_set] if label_set else list(suite.label_sets)
    if not label_set:
        suite.ensure_label_sets(store)
    best = None
    for candidate in candidates:
        label_set = suite._label_set(store, candidate)
        images = _read_tables(store, label_set, ["coco_images"])["coco_images"]
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


def _rows(outputs: list[dict], image_ids: list[int], start_index: int, categories: set[int]
          ) -> tuple[pa.Table | None, int, dict | None]:
    """Model outputs as COCO result records (boxes as x, y, w, h); detections of unknown categories dropped."""
    from pycocotools import mask as mask_utils

    records, dropped = [], 0
    for out, image_id in zip(outputs, image_ids):
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
        for j in range(len(boxes)):
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
    if not records:
        return None, dropped, None
    table = formats.results_table(records).set_column(
        0, "det_index", pa.array(np.arange(start_index, start_index + len(records), dtype=np.int64)))
    return table, dropped, records[0]


def run_detector(store: Store, suite, model_name: str, data_dir: str | Path | None = None,
                 checkpoint: str | Path | None = None, batch_size: int = 2, device: str | None = None,
                 label_set: str | None = None, model_kwargs: dict | None = None, name: str | None = None,
                 limit: int | None = None, quiet: bool = False) -> str:
    """Run ``model_name`` on every image of ``data_dir`` (or the first ``limit`` by file name) and store its
    detections; returns the run id. The run is scored on the images it ran on (``image_ids``)."""
    import torch
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor
    from tqdm import tqdm

    from ..data import load_manifest, resolve
    from ..inference import pick_device
    from ..runner import environment

    if data_dir is None:
        if suite.default_images is None:
            raise HarnessError(f"suite {suite.name} ships no images; pass an image folder (--data-dir)")
        manifest, folder = suite.default_images
        data_dir = resolve(manifest, [e.path for e in load_manifest(manifest).under(folder)]) / folder
    files = list_images(Path(data_dir))
    if limit is not None:
        if limit < 1:
            raise HarnessError(f"limit {limit} must be at least 1 image")
        files = files[:limit]
    label_set, image_ids = _image_ids(store, suite, files, label_set)
    from .suite import _column

    categories = set(_column(store, label_set, "coco_categories", "category_id"))
    device = pick_device(device)
    if batch_size < 1:
        raise HarnessError(f"batch size {batch_size} must be at least 1")
    model, source, digest = load_detector(model_name, checkpoint, model_kwargs)
    model.to(device)
    meta = {
        "name": name or model_name, "model": model_name, "suite": suite.name, "dataset": suite.dataset,
        "kind": "run", "metric_version": suite.metric_version, "label_set": label_set,
        "weights_source": source, "weights_sha256": digest, "model_kwargs": model_kwargs or {},
        "preprocessing": {"input": "RGB, full size, float in [0, 1]; resizing and normalisation inside the model"},
        "data_dir": str(Path(data_dir).resolve()), "image_ids": image_ids, "batch_size": batch_size,
        "precision": "float32", "device": device, "environment": environment(device),
    }
    writer = store.begin_run(meta)
    n_written = dropped = 0
    first_record = None
    started = time.perf_counter()
    try:
        bar = tqdm(total=len(files), unit="img", disable=quiet, file=sys.stderr, desc=model_name)
        for start in range(0, len(files), batch_size):
            batch_files = files[start:start + batch_size]
            images = []
            for f in batch_files:
                try:
                    with Image.open(f) as im:
                        images.append(pil_to_tensor(im.convert("RGB")).float().div_(255).to(device))
                except OSError as exc:
                    raise HarnessError(f"image {f} could not be read: {exc}") from None
            with torch.inference_mode():
                outputs = model(images)
            table, n_dropped, first = _rows(outputs, image_ids[start:start + batch_size], n_written, categories)
            dropped += n_dropped
            first_record = first_record or first
            if table is not None:
                writer.write_chunk(table, DETECTIONS)
                n_written += table.num_rows
            bar.update(len(batch_files))
        bar.close()
        if n_written == 0:
            writer.write_chunk(formats.DETECTIONS_SCHEMA.empty_table(), DETECTIONS)
        return writer.finish(
            iou_types=available_iou_types(first_record) if first_record else ["bbox"],
            n_detections=n_written, n_dropped_unknown_category=dropped,
            seconds=round(time.perf_counter() - started, 3))
    except BaseException as exc:
        writer.fail(f"{type(exc).__name__}: {exc}")
        raise
