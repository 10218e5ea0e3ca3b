"""Run a classification model over an image folder and store every prediction.

The folder is either flat (``ILSVRC2012_val_00000001.JPEG`` ...) or one folder per class
(``n01440764/ILSVRC2012_val_00000293.JPEG``); keys are file stems either way. Rows are written
in chunks, each an atomic Parquet file, so a killed run loses at most the chunk in flight;
running the same command again resumes it, predicting only the images not stored yet.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import HarnessError
from .store import RunWriter, Store

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm"}


@dataclass(frozen=True)
class ImageList:
    root: Path
    items: list[tuple[str, Path]]  # (key, file), sorted by key
    layout: str  # "flat" or "class-folders"
    listing_sha256: str


def list_images(root: Path, key_of: Callable[[str], str | None], class_names: set[str] | None = None,
                dataset: str = "") -> ImageList:
    """The images of a folder with their keys; a clear error for a folder of the wrong layout."""
    root = Path(root)
    if not root.is_dir():
        raise HarnessError(f"image folder {root} does not exist")
    entries = sorted(root.iterdir())
    dirs = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
    if dirs:
        if class_names is not None:
            wrong = [d.name for d in dirs if d.name not in class_names]
            if wrong:
                raise HarnessError(
                    f"{root} has {len(wrong)} sub-folders that are not class names of {dataset} "
                    f"(first: {wrong[0]!r}); expected a flat folder of images or one folder per class "
                    f"named like {sorted(class_names)[0]!r}")
        files = [f for d in dirs for f in sorted(d.iterdir()) if f.is_file()]
        layout = "class-folders"
    else:
        files = [p for p in entries if p.is_file()]
        layout = "flat"
    files = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    items, foreign = [], []
    for f in files:
        key = key_of(str(f.relative_to(root)))  # relative path: some datasets key on folder + name
        (items if key is not None else foreign).append((key, f))
    if foreign:
        raise HarnessError(
            f"{root}: {len(foreign)} image files are not samples of dataset {dataset} "
            f"(first: {foreign[0][1].relative_to(root)})")
    if not items:
        raise HarnessError(f"{root} holds no images of dataset {dataset} ({layout} layout)")
    keys = [k for k, _ in items]
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        dup = next(k for k in keys if k in seen or seen.add(k))
        raise HarnessError(f"{root}: image {dup!r} appears more than once")
    items.sort()
    digest = hashlib.sha256()
    for key, f in items:
        digest.update(f"{f.relative_to(root)}\t{f.stat().st_size}\n".encode())
    return ImageList(root, items, layout, digest.hexdigest())


class ImageDataset:
    """Decodes and preprocesses images; an unreadable image yields its error instead of a tensor."""

    def __init__(self, items: list[tuple[str, Path]], transform):
        self.items = items
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        from PIL import Image

        key, path = self.items[i]
        try:
            with Image.open(path) as img:
                x = self.transform(img.convert("RGB"))
            return key, x, None
        except Exception as exc:  # noqa: BLE001 - any decode failure becomes an error row
            return key, None, f"{type(exc).__name__}: {exc}"


def collate(batch):
    import torch

    keys = [k for k, _, _ in batch]
    good = [i for i, (_, x, _) in enumerate(batch) if x is not None]
    x = torch.stack([batch[i][1] for i in good]) if good else None
    errors = [(k, e) for k, _, e in batch if e is not None]
    return keys, good, x, errors


def environment(device: str) -> dict:
    import importlib.metadata as md

    versions = {}
    for pkg in ("realbench", "torch", "torchvision", "timm", "numpy", "pillow", "duckdb", "pyarrow"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    info = {"python": platform.python_version(), "platform": platform.platform(), "libraries": versions,
            "git": git_state(), "device": device}
    if device.startswith("cuda"):
        import torch

        info["device_name"] = torch.cuda.get_device_name()
    else:
        info["device_name"] = platform.processor() or platform.machine()
        info["cpu_threads"] = __import__("torch").get_num_threads()
    return info


def git_state() -> dict | None:
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return None


def pick_device(requested: str | None) -> str:
    import torch

    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise HarnessError(f"device {requested!r} was asked for but no CUDA GPU is available")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


class RunLock:
    """An exclusive lock on a run folder, held while a process writes it (released on death)."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.file = open(directory / ".lock", "a+")

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def release(self) -> None:
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def find_resumable(store: Store, fingerprint: str) -> str | None:
    """The newest unfinished run of the same configuration that no live process holds."""
    for meta in reversed(store.list_runs()):
        if meta.get("status") != "complete" and meta.get("fingerprint") == fingerprint:
            lock = RunLock(store.run_dir(meta["run_id"]))
            free = lock.try_acquire()
            lock.release()
            if free:
                return meta["run_id"]
    return None


def run_classification(store: Store, suite, model_name: str, data_dir: str | Path | None = None,
                       checkpoint: str | Path | None = None, batch_size: int = 64, workers: int | None = None,
                       device: str | None = None, topk: int = 5, save_logits: bool = False,
                       limit: int | None = None, chunk_images: int = 4096, fresh: bool = False,
                       name: str | None = None, quiet: bool = False, log: Callable[[str], None] | None = None
                       ) -> str:
    """Run ``model_name`` on ``suite``'s images and store every prediction; returns the run id."""
    import torch
    from timm.data import create_transform
    from tqdm import tqdm

    from .data import load_manifest, resolve
    from .models import load_model

    say = log or (lambda msg: None if quiet else print(msg, file=sys.stderr))
    t_start = time.perf_counter()
    manifest_info = None
    if data_dir is None:
        if suite.default_images is None:
            raise HarnessError(f"suite {suite.name} ships no images; pass --data-dir")
        dataset_name, folder = suite.default_images
        data_dir = resolve(dataset_name, progress=not quiet) / folder
        manifest = load_manifest(dataset_name)
        manifest_info = {"dataset": dataset_name, "manifest_sha256": manifest.sha256}
    class_names = set(suite.class_index()) if suite.class_index else None
    images = list_images(Path(data_dir), suite.key_of, class_names, suite.dataset)
    items = images.items[:limit] if limit else images.items

    device = pick_device(device)
    loaded = load_model(model_name, checkpoint)
    if loaded.num_classes != suite.num_classes:
        raise HarnessError(f"model {model_name} predicts {loaded.num_classes} classes but suite "
                           f"{suite.name} has {suite.num_classes}")
    cfg = loaded.preprocessing
    transform = create_transform(input_size=tuple(cfg["input_size"]), interpolation=cfg["interpolation"],
                                 mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), crop_pct=cfg["crop_pct"],
                                 crop_mode=cfg["crop_mode"], is_training=False)
    use_amp = device.startswith("cuda")
    precision = "amp-float16" if use_amp else "float32"
    config = {
        "model": model_name, "timm_name": loaded.spec.timm_name, "weights_sha256": loaded.weights_sha256,
        "suite": suite.name, "data_dir": str(Path(data_dir).resolve()), "listing_sha256": images.listing_sha256,
        "limit": limit, "topk": topk, "save_logits": save_logits, "preprocessing": cfg, "precision": precision,
    }
    fingerprint = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    meta = {
        "name": name or model_name, "kind": "run", "dataset": suite.dataset,
        "weights_source": loaded.weights_source, "num_classes": loaded.num_classes,
        "data_layout": images.layout, "data_manifest": manifest_info, "n_images": len(items),
        "batch_size": batch_size, "fingerprint": fingerprint, "environment": environment(device),
        "metric_version": __import__("harness.score", fromlist=["METRIC_VERSION"]).METRIC_VERSION,
        **config,
    }
    if loaded.extra:
        meta["model_extra"] = loaded.extra
    suite.ensure_label_sets(store)

    resume_id = None if fresh else find_resumable(store, fingerprint)
    writer = store.begin_run(meta, run_id=resume_id)
    lock = RunLock(writer.dir)
    if not lock.try_acquire():
        raise HarnessError(f"run {writer.run_id} is being written by another process")
    try:
        done = writer.stored_keys() if resume_id else set()
        todo = [it for it in items if it[0] not in done]
        if resume_id:
            say(f"resuming run {writer.run_id}: {len(done):,} of {len(items):,} images already stored")
        else:
            say(f"run {writer.run_id}: {loaded.spec.timm_name} on {len(items):,} images "
                f"({images.layout} layout, {images.root}) on {device}, {precision}")
        stats = _predict(writer, loaded.model, transform, todo, device, use_amp, batch_size, workers, topk,
                         save_logits, chunk_images, quiet, tqdm, torch)
        total = time.perf_counter() - t_start
        timings = {"total_s": round(total, 3), "inference_loop_s": round(stats["loop_s"], 3),
                   "storage_s": round(stats["storage_s"], 4), "images_per_s": round(stats["images_per_s"], 2),
                   "images_this_session": len(todo)}
        writer.finish(timings=timings, n_rows={"predictions": len(done) + len(todo)},
                      n_errors=stats["errors"])
    except KeyboardInterrupt:
        writer.update(status="interrupted")
        raise
    except BaseException as exc:
        writer.fail(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        lock.release()
    return writer.run_id


def _predict(writer: RunWriter, model, transform, todo, device, use_amp, batch_size, workers, topk,
             save_logits, chunk_images, quiet, tqdm, torch) -> dict:
    import pyarrow as pa

    model = model.to(device)
    if device.startswith("cuda"):
        model = model.to(memory_format=torch.channels_last)
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    loader = torch.utils.data.DataLoader(
        ImageDataset(todo, transform), batch_size=batch_size, num_workers=workers, collate_fn=collate,
        pin_memory=device.startswith("cuda"), persistent_workers=False,
        prefetch_factor=4 if workers else None)
    buffer: dict[str, list] = {"key": [], "top_classes": [], "top_scores": [], "logits": [], "error": []}
    storage_s, errors, n = 0.0, 0, 0

    def flush() -> float:
        t = time.perf_counter()
        if buffer["key"]:
            table = pa.table({
                "key": pa.array(buffer["key"], pa.string()),
                "top_classes": pa.array(buffer["top_classes"], pa.list_(pa.int32())),
                "top_scores": pa.array(buffer["top_scores"], pa.list_(pa.float32())),
                "logits": pa.array(buffer["logits"], pa.list_(pa.float32())),
                "error": pa.array(buffer["error"], pa.string()),
            })
            writer.write_chunk(table)
            for v in buffer.values():
                v.clear()
        return time.perf_counter() - t

    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), unit="img", disable=quiet, file=sys.stderr, smoothing=0.1)
    with torch.inference_mode():
        for keys, good, x, batch_errors in loader:
            if x is not None:
                x = x.to(device, non_blocking=True)
                if device.startswith("cuda"):
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
                    logits = model(x)
                logits = logits.float()
                probs = logits.softmax(dim=-1)
                scores, classes = probs.topk(min(topk, probs.shape[-1]), dim=-1)
                classes, scores = classes.cpu().numpy(), scores.cpu().numpy()
                logits_np = logits.cpu().numpy() if save_logits else None
                for j, i in enumerate(good):
                    buffer["key"].append(keys[i])
                    buffer["top_classes"].append(classes[j])
                    buffer["top_scores"].append(scores[j])
                    buffer["logits"].append(logits_np[j] if save_logits else None)
                    buffer["error"].append(None)
            for key, err in batch_errors:
                buffer["key"].append(key)
                buffer["top_classes"].append(None)
                buffer["top_scores"].append(None)
                buffer["logits"].append(None)
                buffer["error"].append(err)
                errors += 1
            n += len(keys)
            bar.update(len(keys))
            if len(buffer["key"]) >= chunk_images:
                storage_s += flush()
    storage_s += flush()
    bar.close()
    loop_s = time.perf_counter() - t0
    return {"loop_s": loop_s, "storage_s": storage_s, "errors": errors,
            "images_per_s": n / loop_s if loop_s > 0 else 0.0}
