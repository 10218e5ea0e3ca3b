"""The run engine, and the classification task that runs on it.

:func:`execute` is the one life cycle of every task that runs a model (classification here, detection
in ``harness.detection.runner``): claim a run by its configuration fingerprint, resume an unfinished
one (or start afresh), shard the samples over torchrun's ranks, back off on out-of-memory, record
interruptions and failures, and finish only once every sample has its rows. A task hands it a
:class:`Job`: its samples, its configuration, how it predicts and how its rows are checked.
``harness.bulk`` runs lists of models through it, each in a process of its own.

A classification run predicts an image folder. The folder is either flat (``ILSVRC2012_val_00000001.JPEG`` ...) or one folder per class
(``n01440764/ILSVRC2012_val_00000293.JPEG``); keys are file stems either way. Rows are written
in chunks, each an atomic Parquet file, so a killed run loses at most the chunk in flight;
running the same command again resumes it, predicting only the images not stored yet.

Under torchrun every rank predicts its shard of the images into the same run (see
``harness.distributed``); a batch that runs out of memory is split until it fits; the run is
complete only when every image has exactly one stored row.
"""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import faults
from .errors import HarnessError
from .identity import fingerprint as config_fingerprint
from .imagelist import ImageList
from .inference import (InferenceOptions, autocast, default_workers, is_out_of_memory, pick_device,
                        prepare_model)
from .distributed import Shard, ShardFailed, describe_error
from .store import FolderLock, RunWriter, Store, check_identifier
from .runoptions import check_run_options

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm"}


def list_images(root: Path, key_of: Callable[[str], str | None], class_names: set[str] | None = None,
                dataset: str = "", class_folders: str | None = None) -> ImageList:
    """The images of a folder with their keys; a clear error for a folder of the wrong layout.

    ``class_folders`` (how the folders are named) says that the dataset is only class folders:
    its images are labelled by their folder, so a flat folder is refused.
    """
    root = Path(root)
    if not root.is_dir():
        raise HarnessError(f"image folder {root} does not exist")
    # os.scandir and plain strings: a folder may hold 50,000 images, and pathlib costs per file.
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: e.name)
    dirs = [e for e in entries if e.is_dir() and not e.name.startswith(".")]
    if dirs:
        loose = [e.name for e in entries if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES]
        if loose:
            raise HarnessError(
                f"{root} mixes two layouts: class folders (e.g. {dirs[0].name}/) and images at the top (e.g. "
                f"{loose[0]}); expected either a flat folder of images or one folder of images per class")
        if class_names is not None:
            wrong = [d.name for d in dirs if d.name not in class_names]
            if wrong and class_folders:
                raise HarnessError(f"{root} has {len(wrong)} class folders that are not classes of {dataset} "
                                   f"(first: {wrong[0]!r}); expected {class_folders}")
            if wrong:
                raise HarnessError(
                    f"{root} has {len(wrong)} sub-folders that are not class names of {dataset} "
                    f"(first: {wrong[0]!r}); expected a flat folder of images or one folder per class "
                    f"named like {sorted(class_names)[0]!r}")
        files, deeper = [], []
        for d in dirs:
            with os.scandir(d.path) as it:
                inner = sorted(it, key=lambda e: e.name)
            files.extend((f"{d.name}/{e.name}", e) for e in inner if e.is_file())
            deeper.extend(f"{d.name}/{e.name}/" for e in inner if e.is_dir() and not e.name.startswith("."))
        if deeper:
            example = next((rel for rel, e in files if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES),
                           f"{dirs[0].name}/IMAGE")
            raise HarnessError(
                f"{root} has folders inside its class folders (e.g. {deeper[0]}) besides images in class "
                f"folders (e.g. {example}); expected one level: a folder of images per class")
        layout = "class-folders"
    else:
        files = [(e.name, e) for e in entries if e.is_file()]
        layout = "flat"
        if class_folders and any(os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES for n, _ in files):
            raise HarnessError(f"{root} holds images but no class folders; {dataset} is labelled by folder, "
                               f"expected {class_folders}")
    files = [(rel, e) for rel, e in files if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES]
    items, foreign, sizes = [], [], {}
    for rel, e in files:
        key = key_of(rel)  # relative path: some datasets key on folder + name
        if key is None:
            foreign.append(rel)
            continue
        items.append((key, rel))
        sizes[rel] = e.stat().st_size
    if foreign:
        raise HarnessError(
            f"{root}: {len(foreign)} image files are not samples of dataset {dataset} (first: {foreign[0]})")
    if not items:
        raise HarnessError(f"{root} holds no images of dataset {dataset} ({layout} layout)")
    keys = [k for k, _ in items]
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        dup = next(k for k in keys if k in seen or seen.add(k))
        raise HarnessError(f"{root}: image {dup!r} appears more than once")
    items.sort()
    digest = hashlib.sha256()
    for _, rel in items:
        digest.update(f"{rel}\t{sizes[rel]}\n".encode())
    items = [(key, root / rel) for key, rel in items]
    return ImageList(root, items, layout, digest.hexdigest())


class EvalTransform:
    """A timm eval transform split in two: PIL steps in the decoding workers, the rest batched.

    Workers decode, resize and crop, and hand over ``uint8`` CHW tensors (a quarter of the bytes
    of ``float32``); :meth:`finish` then converts and normalises the whole batch with the very
    element-wise operations of ``ToTensor`` and ``Normalize`` (divide by 255, subtract the mean,
    divide by the std, all in ``float32``), so the model sees bit-identical inputs. A resize or
    crop that would not change the image (a 32x32 CIFAR image into a 32x32 model) is skipped.
    A transform of another shape runs whole in the workers.
    """

    def __init__(self, transform):
        from torchvision import transforms as T

        steps = list(getattr(transform, "transforms", [transform]))
        cut = next((i for i, t in enumerate(steps) if type(t).__name__ in ("ToTensor", "MaybeToTensor")), None)
        tail = steps[cut + 1:] if cut is not None else []
        if cut is None or len(tail) > 1 or (tail and not isinstance(tail[0], T.Normalize)) or \
                not all(isinstance(t, (T.Resize, T.CenterCrop)) for t in steps[:cut]):
            self.pil, self.mean, self.std, self.whole = None, None, None, transform
            return
        self.whole = None
        self.pil = steps[:cut]
        self.mean = tail[0].mean if tail else None
        self.std = tail[0].std if tail else None

    def _same_size(self, step, img) -> bool:
        from torchvision import transforms as T

        w, h = (img.shape[-1], img.shape[-2]) if hasattr(img, "shape") else img.size
        if isinstance(step, T.CenterCrop):
            return tuple(step.size) == (h, w)
        size = step.size
        if isinstance(size, int) or len(size) == 1:
            short = size if isinstance(size, int) else size[0]
            return min(w, h) == short and step.max_size is None
        return tuple(size) == (h, w)

    def __call__(self, img):
        """PIL image -> uint8 CHW tensor (or the whole transform's output)."""
        import numpy as np
        import torch

        if self.whole is not None:
            return self.whole(img)
        for step in self.pil:
            if not self._same_size(step, img):
                img = step(img)
        arr = np.array(img, dtype=np.uint8)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()

    def resize_crop(self, img):
        """A decoded CHW ``uint8`` tensor (on any device) resized and cropped by the same steps as the PIL half.

        Tensor resizing (antialiased) is close to PIL's, not identical: see ``harness.inference``.
        """
        if self.whole is not None:
            raise HarnessError("decoding on the device needs a resize / crop / normalize transform; this model's "
                               "transform runs whole on PIL images: use --decode pil")
        for step in self.pil:
            if not self._same_size(step, img):
                img = step(img)
        return img

    def finish(self, x):
        """A collated batch -> the model's float32 input."""
        import torch

        if self.whole is not None:
            return x
        x = x.to(torch.float32).div_(255)
        if self.mean is not None:
            mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            x.sub_(mean).div_(std)
        return x


JPEG_SUFFIXES = {".jpg", ".jpeg"}


@dataclass(frozen=True)
class EncodedJpeg:
    """A JPEG file's bytes (a ``uint8`` tensor), to be decoded on the run's device."""
    path: Path
    data: object


class ImageDataset:
    """Decodes and preprocesses images; an unreadable image yields its error instead of a tensor.

    With ``encoded_jpeg``, JPEG files are only read (:class:`EncodedJpeg`), for :func:`decode_on_device`.
    """

    def __init__(self, items: list[tuple[str, Path]], transform, encoded_jpeg: bool = False):
        self.items = items
        self.transform = transform
        self.encoded_jpeg = encoded_jpeg

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        from PIL import Image

        key, path = self.items[i]
        if self.encoded_jpeg and path.suffix.lower() in JPEG_SUFFIXES:
            import torch

            try:
                return key, EncodedJpeg(path, torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)), None
            except OSError as exc:
                return key, None, f"{type(exc).__name__}: {exc}"
        try:
            # an image of a Hugging Face dataset (harness.hfsource) opens from its stored bytes
            with Image.open(path.open_image() if hasattr(path, "open_image") else path) as img:
                x = self.transform(img.convert("RGB"))
            return key, x, None
        except Exception as exc:  # noqa: BLE001 - any decode failure becomes an error row
            return key, None, f"{type(exc).__name__}: {exc}"


def collate(batch):
    import torch

    keys = [k for k, _, _ in batch]
    good = [i for i, (_, x, _) in enumerate(batch) if x is not None]
    xs = [batch[i][1] for i in good]
    x = (xs if any(isinstance(v, EncodedJpeg) for v in xs) else torch.stack(xs)) if good else None
    errors = [(k, e) for k, _, e in batch if e is not None]
    return keys, good, x, errors


def decode_on_device(keys: list[str], good: list[int], images: list, split: EvalTransform, device: str):
    """A batch of :class:`EncodedJpeg` (and already decoded tensors) -> (good, uint8 batch on ``device``, errors).

    The JPEGs are decoded in one ``torchvision.io.decode_jpeg`` call on ``device`` (nvjpeg on CUDA),
    then resized and cropped there; a file the device's decoder refuses is decoded by PIL on the CPU
    (the fallback), and one PIL refuses too becomes an error row.
    """
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 points to TorchCodec; same decoder
        from torchvision.io import ImageReadMode, decode_jpeg

    jpegs = [j for j, v in enumerate(images) if isinstance(v, EncodedJpeg)]
    try:
        decoded = decode_jpeg([images[j].data for j in jpegs], mode=ImageReadMode.RGB, device=device)
    except RuntimeError:  # one bad file fails the batched call: decode them one by one
        decoded = []
        for j in jpegs:
            try:
                decoded.append(decode_jpeg(images[j].data, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                decoded.append(None)
    out = {j: v.to(device) for j, v in enumerate(images) if not isinstance(v, EncodedJpeg)}
    errors = []
    for j, img in zip(jpegs, decoded):
        if img is not None:
            out[j] = split.resize_crop(img)
            continue
        _, x, error = ImageDataset([(keys[good[j]], images[j].path)], split)[0]
        if error is None:
            out[j] = x.to(device)
        else:
            errors.append((keys[good[j]], error))
    kept = sorted(out)
    return [good[j] for j in kept], (torch.stack([out[j] for j in kept]) if kept else None), errors


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


def claim_resumable(store: Store, fingerprint: str) -> tuple[str, FolderLock] | None:
    """The newest unfinished run of the same configuration that no live process holds, locked.

    The lock is kept from the moment the run is found, so two processes started at once with the
    same command never both pick it up: the second one finds it held and starts its own run.
    """
    for meta in reversed(store.list_runs()):
        if meta.get("status") != "complete" and meta.get("fingerprint") == fingerprint:
            lock = store.lock_run(meta["run_id"])
            if not lock.try_acquire():
                lock.release()
                continue
            if store.run_meta(meta["run_id"]).get("status") != "complete":  # not finished meanwhile
                return meta["run_id"], lock
            lock.release()
    return None


def find_complete(store: Store, fingerprint: str) -> str | None:
    """The newest complete run of the same configuration, if any."""
    for meta in reversed(store.list_runs("complete")):
        if meta.get("fingerprint") == fingerprint:
            return meta["run_id"]
    return None


def claim_run(store: Store, meta: dict, config: dict, fresh: bool, resume: str | None
              ) -> tuple[RunWriter, FolderLock, bool]:
    """Lock and begin the run to write: the one named by ``resume``, else an unfinished run of the
    same configuration (unless ``fresh``), else a new one. Returns (writer, lock, resumed)."""
    fingerprint = meta["fingerprint"]
    claimed = None
    if resume is not None:
        old = store.run_meta(resume)
        if old.get("status") == "complete":
            raise HarnessError(f"run {resume} is already complete; nothing to resume")
        if old.get("fingerprint") != fingerprint:
            changed = sorted(k for k in config if old.get(k) != config[k]) or ["the run's configuration"]
            raise HarnessError(f"run {resume} was made with a different {', '.join(changed)}; run the command "
                               "that started it to resume it")
        lock = store.lock_run(resume)
        if not lock.try_acquire():
            lock.release()
            raise HarnessError(f"run {resume} is being written by another process")
        claimed = resume, lock
    elif not fresh:
        claimed = claim_resumable(store, fingerprint)
    if claimed is None:
        run_id = check_identifier(store.new_run_id(meta["name"]), "run id")
        lock = store.lock_run(run_id)
        lock.try_acquire()  # a folder nobody else knows yet
        claimed = run_id, lock
    run_id, lock = claimed
    resumed = store.run_exists(run_id)
    if resumed:  # begin_run keeps the old fields; a failure that is being resumed is no longer the run's state
        meta = {**meta, "error": None, "error_traceback": None}
    try:
        writer = store.begin_run(meta, run_id=run_id)
        # Temporary files of a process killed mid-write; nobody else writes here until this claim
        # is announced to the other ranks.
        writer.remove_stale_temp()
    except BaseException:
        lock.release()
        raise
    return writer, lock, resumed


@dataclass(frozen=True)
class Outcome:
    run_id: str
    skipped: bool  # a complete run of the same configuration already existed
    n_images: int
    n_errors: int


def run_classification(store: Store, suite, model_name: str, data_dir: str | Path | None = None,
                       checkpoint: str | Path | None = None, batch_size: int = 64, workers: int | None = None,
                       device: str | None = None, topk: int = 5, save_logits: bool = False,
                       limit: int | None = None, chunk_images: int = 4096, fresh: bool = False,
                       name: str | None = None, quiet: bool = False, log: Callable[[str], None] | None = None,
                       skip_complete: bool = False, resume: str | None = None, shard: Shard | None = None,
                       inference: InferenceOptions | None = None) -> str:
    """Run ``model_name`` on ``suite``'s images and store every prediction; returns the run id.

    ``skip_complete`` returns an existing complete run of the same configuration instead of
    running again; ``resume`` continues that unfinished run; ``shard`` is this process's part of
    a torchrun launch (every rank calls this with the same arguments).
    """
    return evaluate_classification(
        store, suite, model_name, data_dir=data_dir, checkpoint=checkpoint, batch_size=batch_size,
        workers=workers, device=device, topk=topk, save_logits=save_logits, limit=limit,
        chunk_images=chunk_images, fresh=fresh, name=name, quiet=quiet, log=log, skip_complete=skip_complete,
        resume=resume, shard=shard, inference=inference).run_id


def list_suite_images(suite, data_dir: str | Path | None, quiet: bool = True) -> tuple[ImageList, dict | None]:
    """The images a suite runs on (its shipped images unless ``data_dir``) and their manifest."""
    from .data import load_manifest, resolve

    from .hfsource import is_dataset_source, list_dataset_images

    manifest_info = None
    if data_dir is not None and is_dataset_source(data_dir):  # a Hugging Face dataset, local or on the Hub
        return ImageList(*list_dataset_images(data_dir, suite)), None
    if data_dir is None:
        if suite.default_images is None:
            download = f" (a downloaded copy of data manifest {suite.manifest})" if suite.manifest else ""
            raise HarnessError(f"suite {suite.name} ships no images; pass --data-dir{download}")
        dataset_name, folder = suite.default_images
        data_dir = resolve(dataset_name, progress=not quiet) / folder
        manifest_info = {"dataset": dataset_name, "manifest_sha256": load_manifest(dataset_name).sha256}
    class_names = set(suite.class_index()) if suite.class_index else None
    return list_images(Path(data_dir), suite.key_of, class_names, suite.dataset,
                       suite.layout_hint), manifest_info


def evaluate_classification(store: Store, suite, model_name: str, data_dir: str | Path | None = None,
                            checkpoint: str | Path | None = None, batch_size: int = 64,
                            workers: int | None = None, device: str | None = None, topk: int = 5,
                            save_logits: bool = False, limit: int | None = None, chunk_images: int = 4096,
                            fresh: bool = False, name: str | None = None, quiet: bool = False,
                            log: Callable[[str], None] | None = None, skip_complete: bool = False,
                            resume: str | None = None, shard: Shard | None = None,
                            record_failures: bool = False, on_claim: Callable[[str], None] | None = None,
                            inference: InferenceOptions | None = None) -> Outcome:
    """:func:`run_classification`, telling also whether the run was skipped and how many images failed.

    With ``record_failures``, a model that fails before its run is claimed (weights that do not
    load, label sets that cannot be stored, say) is stored as a failed run too, so that a bulk run
    keeps a record of every model. ``on_claim`` hears the run id once the run is claimed (rank 0).
    ``inference`` says how the model runs (preprocessing overrides, precision, memory format, decoding;
    :mod:`harness.inference`); each is part of the run's configuration.
    """
    from timm.data import create_transform

    from .models import load_model

    check_run_options(batch_size=batch_size, workers=workers, topk=topk, limit=limit, chunk_images=chunk_images)
    shard = shard or Shard()
    options = inference or InferenceOptions()
    quiet = quiet or not shard.is_leader

    def prepare() -> Job:
        images, manifest_info = list_suite_images(suite, data_dir, quiet)
        items = images.items[:limit] if limit else images.items
        dev = shard_device(pick_device(device), shard)
        loaded = load_model(model_name, checkpoint)
        if loaded.num_classes != suite.num_classes:
            raise HarnessError(f"model {model_name} predicts {loaded.num_classes} classes but suite "
                               f"{suite.name} has {suite.num_classes}")
        output_classes = suite.output_classes() if suite.output_classes else None
        # ImageNet-A/-R: logits outside the suite's classes are -inf, so top-k ranges over its classes only
        net = output_classes.wrap(loaded.model, loaded.num_classes) if output_classes else loaded.model
        cfg = options.preprocessing(loaded.preprocessing)
        model, graph = prepare_model(net, dev, options, cfg["input_size"],
                                     eager_only="inference_form" in loaded.extra)
        transform = create_transform(input_size=tuple(cfg["input_size"]), interpolation=cfg["interpolation"],
                                     mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), crop_pct=cfg["crop_pct"],
                                     crop_mode=cfg["crop_mode"], is_training=False)
        run_form = options.config(dev, graph)
        precision = run_form["precision"]
        config = {
            "model": model_name, "timm_name": loaded.spec.timm_name, "weights_sha256": loaded.weights_sha256,
            "dataset": suite.dataset,
            "data_dir": str(images.root if images.layout == "hf-dataset" else images.root.resolve()),
            "listing_sha256": images.listing_sha256, "limit": limit, "topk": topk, "save_logits": save_logits,
            "preprocessing": cfg, **run_form,
        }
        if output_classes:  # top-k over these classes only (ImageNet-A/-R)
            config["output_classes"] = output_classes.describe()
        if suite.extra:
            config["suite_extra"] = suite.extra
        meta = {"weights_source": loaded.weights_source, "num_classes": loaded.num_classes,
                "data_layout": images.layout, "data_manifest": manifest_info, "n_images": len(items),
                "batch_size": batch_size, "param_count": sum(p.numel() for p in loaded.model.parameters()),
                "environment": environment(dev),
                "metric_version": __import__("harness.score", fromlist=["METRIC_VERSION"]).METRIC_VERSION}
        if loaded.extra:
            meta["model_extra"] = loaded.extra

        def predict(writer: RunWriter, todo: list, shard: Shard) -> dict:
            return _predict(writer, model, transform, todo, dev, precision, batch_size, workers, topk,
                            save_logits, chunk_images, quiet, shard, options)

        return Job(items=items, config=config, meta=meta, device=dev, predict=predict,
                   done_keys=lambda writer: writer.stored_keys(), verify=verify_rows,
                   describe=f"{loaded.spec.timm_name} on {len(items):,} images ({images.layout} layout, "
                            f"{images.root}) on {dev}, {precision}")

    return execute(store, suite, model_name, prepare, name=name, checkpoint=checkpoint, fresh=fresh,
                   resume=resume, skip_complete=skip_complete, shard=shard, record_failures=record_failures,
                   on_claim=on_claim, quiet=quiet, log=log)


@dataclass
class Job:
    """A task's part of a run, handed to :func:`execute`: what to predict and how to check the rows.

    ``items`` are (key, source) pairs in an order every rank sees alike; ``config`` identifies the
    run (fingerprinted, see ``harness.identity``), ``meta`` adds further fields to ``run.json``;
    ``predict(writer, todo, shard)`` predicts some items, writing atomic chunks, and returns its
    statistics (``loop_s``, ``storage_s``, ``batch_size_effective``, ``oom_retries``);
    ``done_keys(writer)`` are the keys stored so far; ``verify(writer, keys, shard)`` checks that
    every key has exactly its rows and returns ``n_rows``, ``n_errors`` and any further fields of the
    finished run (counts over every session of a resumed run), or raises.
    """

    items: list
    config: dict
    meta: dict
    device: str
    predict: Callable[[RunWriter, list, Shard], dict]
    done_keys: Callable[[RunWriter], set]
    verify: Callable[[RunWriter, list, Shard], dict]
    describe: str
    table: str = "predictions"


def execute(store: Store, suite, model_name: str, prepare: Callable[[], Job], name: str | None = None,
            checkpoint: str | Path | None = None, fresh: bool = False, resume: str | None = None,
            skip_complete: bool = False, shard: Shard | None = None, record_failures: bool = False,
            on_claim: Callable[[str], None] | None = None, quiet: bool = False,
            log: Callable[[str], None] | None = None) -> Outcome:
    """The run engine: one life cycle for every task that runs a model on a suite's samples.

    Every rank prepares the job (a failure anywhere stops all ranks); rank 0 claims the run — the
    complete run of the same configuration when ``skip_complete`` (returned as skipped), the run
    named by ``resume``, else an unfinished run of the same configuration unless ``fresh``, else a
    new one; each rank predicts its shard of the samples not stored yet; rank 0 verifies that every
    sample has its rows and marks the run complete. Ctrl-C marks the run ``interrupted``, any other
    failure ``failed`` with its error and traceback; both are resumed by the same command.
    """
    shard = shard or Shard()
    quiet = quiet or not shard.is_leader  # one voice and one progress bar per launch
    say = log or (lambda msg: None if quiet else print(msg, file=sys.stderr))
    t_start = time.perf_counter()
    try:
        job = shard.agree(prepare)
        config = job.config
        # The run's identity (harness.identity): not the suite, whose label sets only score it.
        fingerprint = config_fingerprint(config)
        if len(set(shard.gather(fingerprint))) > 1:
            raise ShardFailed(f"the ranks see different weights or images for {model_name} (configuration "
                              "fingerprints differ); every machine needs the same files at the same paths")
        meta = {"name": name or model_name, "kind": "run", "suite": suite.name, **job.meta,
                "fingerprint": fingerprint, "world_size": shard.world_size, **config}
    except Exception as exc:
        if record_failures and shard.is_leader:
            record_failed_run(store, suite, model_name, name, checkpoint, shard, describe_error(exc),
                              traceback.format_exc())
        raise
    items = job.items
    held: dict = {}

    def claim():
        if skip_complete and not fresh and resume is None:
            existing = find_complete(store, fingerprint)
            if existing:
                return existing, "complete"
        suite.ensure_label_sets(store)
        writer, lock, resumed = claim_run(store, meta, config, fresh, resume)
        held.update(writer=writer, lock=lock)
        if on_claim is not None:
            on_claim(writer.run_id)
        ranks = f", {shard.world_size} ranks" if shard.sharded else ""
        if resumed:
            say(f"resuming run {writer.run_id}: {len(job.done_keys(writer)):,} of {len(items):,} samples "
                f"already stored{ranks}")
        else:
            say(f"run {writer.run_id}: {job.describe}{ranks}")
        return writer.run_id, "resumed" if resumed else "new"

    try:
        run_id, state = shard.from_leader(claim)
    except Exception as exc:
        if shard.is_leader and "writer" in held:
            held["writer"].fail(describe_error(exc), error_traceback=traceback.format_exc())
            held["lock"].release()
        elif record_failures and shard.is_leader:
            record_failed_run(store, suite, model_name, name, checkpoint, shard, describe_error(exc),
                              traceback.format_exc())
        raise
    if state == "complete":
        say(f"skipping {meta['name']}: run {run_id} of the same configuration is complete")
        return Outcome(run_id, True, len(items), int(store.run_meta(run_id).get("n_errors", 0)))
    writer = held.get("writer") or RunWriter(store, run_id, meta)
    try:
        def predict():
            # Chunks of this session belong to other ranks' shards, so reading them here is harmless.
            done = job.done_keys(writer) if state == "resumed" else set()
            todo = [it for it in shard.take(items) if it[0] not in done]
            stats = job.predict(writer, todo, shard)
            return {**stats, "rank": shard.rank, "host": platform.node(), "device": job.device,
                    "images_this_session": len(todo)}

        per_rank = shard.gather(shard.agree(predict))

        def finish():
            checked = job.verify(writer, [key for key, _ in items], shard)
            n_rows, n_errors = checked.pop("n_rows"), checked.pop("n_errors")
            loop_s = max(s["loop_s"] for s in per_rank)
            images_now = sum(s["images_this_session"] for s in per_rank)
            timings = {"total_s": round(time.perf_counter() - t_start, 3), "inference_loop_s": round(loop_s, 3),
                       "storage_s": round(max(s["storage_s"] for s in per_rank), 4),
                       "images_per_s": round(images_now / loop_s if loop_s > 0 else 0.0, 2),
                       "images_this_session": images_now}
            shards = [{k: s[k] for k in ("rank", "host", "device", "images_this_session", "batch_size_effective",
                                         "oom_retries")} for s in per_rank]
            writer.finish(timings=timings, n_rows={job.table: n_rows}, n_errors=n_errors, shards=shards,
                          batch_size_effective=min(s["batch_size_effective"] for s in per_rank),
                          oom_retries=sum(s["oom_retries"] for s in per_rank), **checked)
            return n_errors

        n_errors = shard.from_leader(finish)
    except KeyboardInterrupt:
        if shard.is_leader:
            writer.update(status="interrupted")
        raise
    except BaseException as exc:
        if shard.is_leader:
            writer.fail(describe_error(exc), error_traceback=traceback.format_exc())
        raise
    finally:
        if "lock" in held:
            held["lock"].release()
    return Outcome(run_id, False, len(items), n_errors)


def record_failed_run(store: Store, suite, model_name: str, name: str | None, checkpoint, shard: Shard,
                      error: str, error_traceback: str | None = None) -> str:
    """Store a run that failed before it could start, with its error, as a record for bulk runs."""
    writer = store.begin_run({"name": name or model_name, "model": model_name, "kind": "run", "suite": suite.name,
                              "dataset": suite.dataset, "checkpoint": str(checkpoint) if checkpoint else None,
                              "world_size": shard.world_size})
    writer.fail(error, error_traceback=error_traceback)
    return writer.run_id


def shard_device(device: str, shard: Shard) -> str:
    """Each rank of a launch on a GPU machine takes the GPU of its local rank."""
    if shard.sharded and device == "cuda":
        import torch

        torch.cuda.set_device(shard.local_rank)
        return f"cuda:{shard.local_rank}"
    return device


def verify_rows(writer: RunWriter, keys: list[str], shard: Shard) -> dict:
    """Check that every image has exactly one stored row; returns the rows and error rows."""
    table = writer.read_table("predictions", ["key", "error"])
    stored: list[str] = table.column("key").to_pylist()
    n_errors = table.num_rows - table.column("error").null_count
    check_coverage(writer, keys, stored, shard)
    return {"n_rows": len(stored), "n_errors": n_errors}


def check_coverage(writer: RunWriter, keys: list[str], stored: list[str], shard: Shard) -> None:
    """Refuse to finish a run unless every sample was stored exactly once (``stored``: one entry each time)."""
    missing = set(keys).difference(stored)
    if missing:
        where = (" (in a run on several machines, --store must be a folder that every machine shares)"
                 if shard.sharded else "")
        raise HarnessError(f"run {writer.run_id}: {len(missing):,} of {len(keys):,} images have no stored row "
                           f"(first: {min(missing)!r}){where}")
    if len(stored) != len(set(stored)):
        raise HarnessError(f"run {writer.run_id}: {len(stored) - len(set(stored)):,} images have more than one "
                           "stored row")


class BackoffForward:
    """The model over a batch in slices that halve whenever memory runs out, down to one image.

    The smaller slice is kept for the rest of the run: what did not fit once will not fit later.
    A batch is a tensor (outputs: a float tensor, concatenated) or a list of images (outputs: a list
    per image, as torchvision's detectors take and return them).
    """

    def __init__(self, model, device: str, precision: str, batch_size: int, warn: Callable[[str], None]):
        self.model, self.device, self.precision, self.warn = model, device, precision, warn
        self.slice = batch_size
        self.oom_retries = 0

    def __call__(self, x):
        import torch

        outputs, start = [], 0
        while start < len(x):
            piece = x[start:start + self.slice]
            try:
                faults.reached("forward", size=len(piece), device=self.device)
                with autocast(self.device, self.precision):
                    out = self.model(piece)
                outputs.append(out.float() if isinstance(out, torch.Tensor) else out)
                start += len(piece)
                continue
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried
                if not is_out_of_memory(exc):
                    raise
                if self.slice == 1:
                    raise HarnessError(f"out of memory on {self.device} even at batch size 1: "
                                       f"{str(exc).splitlines()[0][:300]}") from None
            # Outside the except block, so the failed attempt's tensors are already released.
            self.warn(f"out of memory on {self.device} at batch size {self.slice}; retrying with {self.slice // 2}")
            self.slice //= 2
            self.oom_retries += 1
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()
        if not isinstance(outputs[0], torch.Tensor):
            return [o for part in outputs for o in part]
        return torch.cat(outputs) if len(outputs) > 1 else outputs[0]


def _predict(writer: RunWriter, model, transform, todo, device, precision, batch_size, workers, topk,
             save_logits, chunk_images, quiet, shard: Shard, options: InferenceOptions) -> dict:
    import pyarrow as pa
    import torch
    from tqdm import tqdm

    # Every rank speaks here: a rank that runs out of memory is worth hearing about.
    forward = BackoffForward(model, device, precision, batch_size,
                             lambda msg: print(f"rank {shard.rank}: {msg}" if shard.sharded else msg, file=sys.stderr))
    workers = default_workers(device) if workers is None else workers
    split = transform if isinstance(transform, EvalTransform) else EvalTransform(transform)
    loader = torch.utils.data.DataLoader(
        ImageDataset(todo, split, encoded_jpeg=options.decode == "device"), batch_size=batch_size, num_workers=workers, collate_fn=collate,
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
    bar = tqdm(total=len(todo), unit="img", disable=quiet, file=sys.stderr, smoothing=0.1,
               desc=f"rank 0 of {shard.world_size}" if shard.sharded else None)
    with torch.inference_mode():
        for keys, good, x, batch_errors in loader:
            if isinstance(x, list):
                good, x, decode_errors = decode_on_device(keys, good, x, split, device)
                batch_errors = batch_errors + decode_errors
            if x is not None:
                x = split.finish(x.to(device, non_blocking=True))
                if options.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                logits = forward(x)
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
            "images_per_s": n / loop_s if loop_s > 0 else 0.0,
            "batch_size_effective": forward.slice, "oom_retries": forward.oom_retries}
