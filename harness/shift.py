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
TensorFlow Datasets publishes for them. The label set of a folder dataset is the folder of each
key, registered in the store from a run's keys when the run is scored (it grows to the union of
the keys scored so far, so a run on part of a dataset is scored on its part and says so when the
label set holds more).
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
from .imagenet import synset_index, synsets
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

    # ----- label sets: the folder of each key -----------------------------------
    def ensure_label_sets(self, store: Store, names: list[str] | None = None, keys: list[str] | None = None) -> None:
        """Register (or extend) the label set with the folder labels of ``keys``; nothing without keys."""
        if not keys:
            return
        name = self.default_label_set
        known: set[str] = set()
        if store.has_label_set(name):
            known = set(store.sql("SELECT key FROM labels WHERE label_set = ?", [name])["key"])
            if known.issuperset(keys):
                return
        union = sorted(known.union(keys))
        table = pd.DataFrame({"key": union, "labels": [[self.label_of(k)] for k in union]})
        meta = {"dataset": self.dataset, "description": f"{self.description}: the class folder of each image",
                "source": "class folders", "num_classes": self.num_classes}
        store.put_label_set(name, meta, {"labels": table})

    def _score(self, store: Store, run_id: str, label_set: str | None = None) -> dict:
        label_set = label_set or self.default_label_set
        if label_set == self.default_label_set:
            keys = store.sql("SELECT key FROM predictions_all WHERE run_id = ?", [run_id])["key"].tolist()
            self.ensure_label_sets(store, keys=keys)
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


def image_folder_suite(classes: str | Path, data_dir: str | Path | None = None,
                       dataset: str | None = None) -> FolderSuite:
    """The ``image-folder`` suite for one class list (and, to name its dataset, one folder).

    The dataset is ``image-folder-<name>``: ``dataset`` if given, else the data folder's name,
    so runs of different models on the same folder score against one label set.
    """
    index, num_classes, restrict = read_class_list(classes)
    base = dataset or (Path(data_dir).resolve().name if data_dir else Path(classes).stem)
    name = "image-folder-" + (_SAFE.sub("-", base).strip("-.") or "data")
    return FolderSuite(
        name="image-folder", dataset=name,
        description=f"image folder {base} ({len(index)} classes from {Path(classes).name})",
        default_label_set=name, num_classes=num_classes, label_sets={name: None}, key_of=None,
        class_index=lambda: index, output_classes=(lambda: restrict) if restrict else None,
        layout_hint=f"one folder per class of {Path(classes).name} (e.g. {next(iter(index))!r})",
        extra={"classes_file": str(Path(classes).resolve()), "classes_sha256": _sha256(Path(classes))})


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
        return image_folder_suite(classes, dataset=run["dataset"][len("image-folder-"):]).score(
            store, run_id, label_set)


IMAGE_FOLDER = ImageFolderEntry()
