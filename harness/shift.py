"""Test sets beyond the validation set: ImageNetV2, ImageNet-Sketch, -A, -R, and any image folder.

All of them are folders of class sub-folders, and the folder is the label:

- ``imagenetv2-matched-frequency``, ``imagenetv2-threshold0.7``, ``imagenetv2-top-images``
  (Recht et al. 2019): 10,000 images each, folders ``0`` .. ``999`` holding the class index;
- ``imagenet-sketch`` (Wang et al. 2019): 50,889 images, folders named by synset;
- ``imagenet-a`` (Hendrycks et al. 2021, 7,500 images) and ``imagenet-r`` (Hendrycks et al. 2021,
  30,000 images): 200 synset folders each. As in their papers and in timm's ``validate.py``, a
  1,000-class model's logits are restricted to those 200 classes before top-k: the run records
  ``output_classes`` (the class list, its size and sha256), the stored top classes are ImageNet
  indices among the 200, the top scores a softmax over the 200, and stored logits are ``-inf``
  outside them;
- ``image-folder``: a user's own test set, any folder of class sub-folders plus a class list
  (:func:`image_folder_suite`).

A sample key is the image's path relative to the folder (``0/7e2a...jpeg``,
``n01440764/sketch_0.JPEG``), so keys are stable across copies of a dataset. None of these
images ship with realbench; their manifests name the public archives with the sha256 that
TensorFlow Datasets publishes for them.

Label sets are facts about a dataset, never made or grown by a run. A published test set's label
set is made from its manifest: the class of each folder (table ``class_folders``), the published
number of images and the archive's sha256; a key takes its folder's class, and a run is scored
against the published size, so a run on part of the images is PARTIAL. An ``image-folder`` label
set is made from the folder itself, one row per image, and named by a digest of the folder's
content (class list, paths and image bytes): two folders of the same name are two datasets unless
they hold the same images.
"""
from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from .classification import ClassificationSuite
from .errors import HarnessError
from .imagenet import synset_index
from .score import score_run
from .store import Store
from .suites import Suite, declared


@dataclass(frozen=True)
class OutputClasses:
    """The classes a model's logits are restricted to before top-k, and where the list comes from."""
    name: str
    indices: tuple[int, ...]
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(",".join(map(str, self.indices)).encode()).hexdigest()

    def describe(self) -> dict:
        return {"name": self.name, "n": len(self.indices), "source": self.source, "sha256": self.sha256}

    def wrap(self, model, num_classes: int):
        """``model`` with every logit outside these classes set to ``-inf``: top-k and softmax then range
        over these classes only, and the predicted indices stay the model's own."""
        import torch

        class RestrictedLogits(torch.nn.Module):
            def __init__(self, inner, mask):
                super().__init__()
                self.inner = inner
                self.register_buffer("mask", mask, persistent=False)

            def forward(self, x):
                logits = self.inner(x)
                return logits + self.mask.to(logits.dtype)

        mask = torch.full((num_classes,), float("-inf"))
        mask[list(self.indices)] = 0.0
        return RestrictedLogits(model, mask)


def timm_info_file(name: str) -> Path:
    """A class list that timm ships in ``timm/data/_info/``."""
    import importlib.util

    spec = importlib.util.find_spec("timm")
    if spec is None or spec.origin is None:
        raise HarnessError(f"timm is not installed; it ships the class list {name}")
    path = Path(spec.origin).parent / "data" / "_info" / name
    if not path.is_file():
        raise HarnessError(f"timm's class list {path} is missing; expected it in timm >= 0.9")
    return path


@functools.lru_cache(maxsize=None)
def subset_synsets(which: str) -> tuple[str, ...]:
    """The 200 synsets of ImageNet-A (``which="a"``) or ImageNet-R (``"r"``), in timm's order."""
    path = timm_info_file(f"imagenet_{which}_synsets.txt")
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    indices = [int(line) for line in timm_info_file(f"imagenet_{which}_indices.txt").read_text().split()]
    index = synset_index()
    if len(names) != 200 or [index.get(s) for s in names] != indices:
        raise HarnessError(f"timm's ImageNet-{which.upper()} class lists disagree with the 1,000 ImageNet synsets "
                           f"({path}); expected 200 synsets whose ImageNet indices are imagenet_{which}_indices.txt")
    return names


@dataclass(repr=False)
class FolderSuite(ClassificationSuite):
    """A classification suite whose images sit in class folders and whose labels are those folders.

    ``class_index`` maps a folder name to the class it holds; the key of an image is its path
    relative to the dataset's folder.
    """
    size: int | None = None  # images in the published dataset
    manifest: str | None = None  # data manifest naming the public archive
    output_classes: Callable[[], OutputClasses] | None = None
    layout_hint: str = ""  # how the folders are named, for error messages

    def __post_init__(self) -> None:
        if self.key_of is None:
            self.key_of = self.folder_key

    def folder_key(self, name: str) -> str | None:
        """``<class folder>/<file name>`` for an image in a class folder of this dataset, else None."""
        parts = str(name).replace("\\", "/").split("/")
        if len(parts) != 2 or parts[0] not in self.class_index():
            return None
        return f"{parts[0]}/{parts[1]}"

    def label_of(self, key: str) -> int:
        return self.class_index()[key.split("/", 1)[0]]

    # ----- label sets: made from the manifest (or the folder), never from a run ---------
    def label_set_source(self) -> tuple[dict, dict]:
        """(meta, tables) of this suite's label set: the classes of the folders, the published size and the
        archive it was published as."""
        from .data import load_manifest

        archive, = load_manifest(self.manifest).archives
        folders = sorted(self.class_index().items())
        meta = {"dataset": self.dataset, "description": f"{self.description}: the class folder of each image",
                "source": f"class folders of {archive.url} (sha256 {archive.sha256})", "n_samples": self.size,
                "archive_sha256": archive.sha256, "num_classes": self.num_classes}
        table = pd.DataFrame({"folder": [f for f, _ in folders], "labels": [[c] for _, c in folders]})
        return meta, {"class_folders": table}

    def ensure_label_sets(self, store: Store, names: list[str] | None = None) -> None:
        """Register the label set from the manifest, once. One made by an earlier version from the keys runs
        had scored (no declared size) is replaced: it was never the dataset's."""
        name = self.default_label_set
        if store.has_label_set(name) and store.label_set_meta(name).get("n_samples") == self.size:
            return
        meta, tables = self.label_set_source()
        store.put_label_set(name, meta, tables)

    def _score(self, store: Store, run_id: str, label_set: str | None = None) -> dict:
        label_set = label_set or self.default_label_set
        if label_set == self.default_label_set:
            self.ensure_label_sets(store)
        result = score_run(store, run_id, label_set)
        if self.output_classes is not None:
            result["output_classes"] = self.output_classes().name
        return result

    def check_folders(self, root: Path, folders: list[str]) -> None:
        """One clear sentence for a folder that is not this dataset's layout."""
        index = self.class_index()
        unknown = [f for f in folders if f not in index]
        if unknown:
            raise HarnessError(
                f"{root} has {len(unknown)} class folders that are not classes of {self.name} (first: "
                f"{unknown[0]!r}); expected {self.layout_hint or 'one folder per class'}")


def _v2_index() -> dict[str, int]:
    return {str(i): i for i in range(1000)}


def _synset_folders() -> dict[str, int]:
    return synset_index()


def _subset_folders(which: str) -> Callable[[], dict[str, int]]:
    def index() -> dict[str, int]:
        full = synset_index()
        return {s: full[s] for s in subset_synsets(which)}

    return index


def _subset_classes(which: str) -> Callable[[], OutputClasses]:
    def classes() -> OutputClasses:
        full = synset_index()
        return OutputClasses(f"imagenet-{which}", tuple(full[s] for s in subset_synsets(which)),
                             f"timm/data/_info/imagenet_{which}_synsets.txt")

    return classes


def _folder_suite(name: str, size: int, class_index, layout_hint: str, output_classes=None) -> FolderSuite:
    """A published dataset of class folders; its name, dataset, description and label set are declared in
    harness.suites."""
    return FolderSuite(
        **declared(name), num_classes=1000, label_sets={name: None}, key_of=None, class_index=class_index,
        size=size, manifest=name, output_classes=output_classes, layout_hint=layout_hint)


_V2_HINT = "folders 0 .. 999 named by ImageNet class index, as in ImageNetV2's archives"
IMAGENETV2_MATCHED_FREQUENCY = _folder_suite("imagenetv2-matched-frequency", 10_000, _v2_index, _V2_HINT)
IMAGENETV2_THRESHOLD = _folder_suite("imagenetv2-threshold0.7", 10_000, _v2_index, _V2_HINT)
IMAGENETV2_TOP_IMAGES = _folder_suite("imagenetv2-top-images", 10_000, _v2_index, _V2_HINT)
IMAGENET_SKETCH = _folder_suite("imagenet-sketch", 50_889, _synset_folders,
                                "folders named by ImageNet synset (n01440764 ...)")
IMAGENET_A = _folder_suite("imagenet-a", 7_500, _subset_folders("a"),
                           "folders named by the 200 ImageNet-A synsets (timm imagenet_a_synsets.txt)",
                           _subset_classes("a"))
IMAGENET_R = _folder_suite("imagenet-r", 30_000, _subset_folders("r"),
                           "folders named by the 200 ImageNet-R synsets (timm imagenet_r_synsets.txt)",
                           _subset_classes("r"))

_SAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def read_class_list(path: str | Path) -> tuple[dict[str, int], int, OutputClasses | None]:
    """A class list for ``image-folder``: (folder -> class, the model's number of classes, restriction).

    Two forms:

    - names, one per line: line *i* names the folder of class *i* (a model of as many classes);
    - a mapping, ``folder<TAB or comma>class`` per line, the class an ImageNet index (0-999) or
      synset: folders map onto a 1,000-class model's classes, and its logits are restricted to the
      mapped classes before top-k (as for ImageNet-A/-R).
    """
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"class list {path} does not exist; expected a text file of class names, one per line, "
                           "or of 'folder,class' pairs")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        raise HarnessError(f"class list {path} names no classes; expected one class name per line or "
                           "'folder,class' pairs")
    pairs = [re.split(r"\s*[\t,]\s*", line) for line in lines]
    if all(len(p) == 1 for p in pairs):
        index: dict[str, int] = {}
        for i, (name,) in enumerate(pairs):
            if name in index:
                raise HarnessError(f"class list {path} names {name!r} twice (lines {index[name] + 1} and {i + 1})")
            index[name] = i
        return index, len(index), None
    mapping: dict[str, int] = {}
    synset = synset_index()
    for line_no, p in enumerate(pairs, 1):
        if len(p) != 2 or not p[0]:
            raise HarnessError(f"class list {path} line {line_no} is {lines[line_no - 1]!r}; expected 'folder,class' "
                               "with class an ImageNet index or synset")
        folder, target = p
        if target.isascii() and target.isdigit() and int(target) < 1000:
            c = int(target)
        elif target in synset:
            c = synset[target]
        else:
            raise HarnessError(f"class list {path} line {line_no} maps {folder!r} to {target!r}; expected an "
                               "ImageNet class index 0-999 or synset (n01440764 ...)")
        if folder in mapping:
            raise HarnessError(f"class list {path} maps folder {folder!r} twice")
        mapping[folder] = c
    classes = tuple(sorted(set(mapping.values())))
    return mapping, 1000, OutputClasses(f"image-folder:{path.name}", classes, str(path.resolve()))


@dataclass(repr=False)
class ImageFolderSuite(FolderSuite):
    """``image-folder`` for one class list and one folder: its label set is the folder's images, one row
    each, and its dataset is named by their content digest."""
    labels_table: pd.DataFrame | None = None  # (key, labels) of every image of the folder

    def ensure_label_sets(self, store: Store, names: list[str] | None = None) -> None:
        if store.has_label_set(self.default_label_set) or self.labels_table is None:
            return  # the name is the content's digest: a stored one holds the same rows
        meta = {"dataset": self.dataset, "description": self.description, "source": "image folder",
                "folder": self.extra.get("folder"), "content_sha256": self.extra.get("content_sha256"),
                "classes_file": self.extra.get("classes_file"), "num_classes": self.num_classes}
        store.put_label_set(self.default_label_set, meta, {"labels": self.labels_table})

    def _score(self, store: Store, run_id: str, label_set: str | None = None) -> dict:
        result = score_run(store, run_id, label_set or self.default_label_set)
        if self.output_classes is not None:
            result["output_classes"] = self.output_classes().name
        return result


def image_folder_suite(classes: str | Path, data_dir: str | Path | None = None,
                       dataset: str | None = None) -> ImageFolderSuite:
    """The ``image-folder`` suite for one class list and one folder (or Hugging Face dataset).

    The dataset is ``image-folder-<folder name>-<digest>``, the digest (12 hex digits) of the class list,
    every image's key and its bytes: runs of different models on the same images score against one label
    set, and another folder of the same name is another dataset unless it holds the same images. With
    ``dataset`` (a stored run's), the suite of that dataset, to score it; its label set is in the store.
    """
    index, num_classes, restrict = read_class_list(classes)
    classes_sha256 = _sha256(Path(classes))
    common = dict(name="image-folder", num_classes=num_classes, key_of=None, class_index=lambda: index,
                  output_classes=(lambda: restrict) if restrict else None,
                  layout_hint=f"one folder per class of {Path(classes).name} (e.g. {next(iter(index))!r})")
    extra = {"classes_file": str(Path(classes).resolve()), "classes_sha256": classes_sha256}
    if dataset:
        return ImageFolderSuite(dataset=dataset, description=f"image folder dataset {dataset}",
                                default_label_set=dataset, label_sets={dataset: None}, extra=extra, **common)
    from .runner import list_suite_images

    base = Path(data_dir).resolve().name if not str(data_dir).startswith("hf:") else str(data_dir)
    base = _SAFE.sub("-", base).strip("-.")[:60] or "data"
    probe = ImageFolderSuite(dataset=f"image-folder-{base}", description="", default_label_set="",
                             label_sets={}, extra={}, **common)
    images, _ = list_suite_images(probe, data_dir)
    digest = hashlib.sha256(f"classes {classes_sha256}\n".encode())
    for key, image in images.items:
        digest.update(f"{key}\t{_image_sha256(image)}\n".encode())
    name = f"image-folder-{base}-{digest.hexdigest()[:12]}"
    keys = [k for k, _ in images.items]
    table = pd.DataFrame({"key": keys, "labels": [[index[k.split("/", 1)[0]]] for k in keys]})
    return ImageFolderSuite(
        dataset=name, description=f"image folder {base} ({len(keys):,} images, {len(index)} classes from "
                                  f"{Path(classes).name})",
        default_label_set=name, label_sets={name: None}, labels_table=table,
        extra={**extra, "folder": str(data_dir), "content_sha256": digest.hexdigest()}, **common)


def _image_sha256(image) -> str:
    """sha256 of an image's bytes: a file, or a Hugging Face dataset's row (harness.hfsource.DatasetImage)."""
    if isinstance(image, Path):
        return _sha256(image)
    opened = image.open_image()
    if isinstance(opened, str):
        return _sha256(Path(opened))
    return hashlib.sha256(opened.getvalue()).hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ImageFolderEntry(Suite):
    """The registry entry of ``image-folder``: a suite once given a class list (``configure(data_dir,
    classes=FILE)``, ``--classes``); a stored run of it is scored with the class list it recorded."""
    task = "classification"
    runner = "classification"
    import_formats = ()
    options = {"configure": ("classes", "dataset"), "score": (), "run": ClassificationSuite.options["run"]}
    needs_configuration = True
    label_sets: dict = {}

    def __init__(self):
        for key, value in declared("image-folder").items():
            setattr(self, key, value)

    def _configure(self, data_dir, classes: str | Path | None = None, dataset: str | None = None) -> FolderSuite:
        if not classes:
            raise HarnessError(f"suite {self.name} needs --classes FILE: the class names, one per line (line i = "
                               "class i), or 'folder,class' lines mapping folders onto ImageNet classes")
        if not data_dir and not dataset:
            raise HarnessError(f"suite {self.name} needs --data-dir: a folder of class sub-folders")
        return image_folder_suite(classes, data_dir, dataset)

    def _score(self, store: Store, run_id: str, label_set: str | None = None) -> dict:
        run = store.run_meta(run_id)
        classes = (run.get("suite_extra") or {}).get("classes_file")
        if not classes:
            raise HarnessError(f"run {run_id} records no class list; score it with the label set "
                               f"{run.get('dataset')!r}")
        return image_folder_suite(classes, dataset=run["dataset"]).score(store, run_id, label_set)


IMAGE_FOLDER = ImageFolderEntry()
