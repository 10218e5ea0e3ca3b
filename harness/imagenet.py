"""ImageNet suites: ``imagenet`` (original labels), ``real`` (ReaL labels), ``imagenet-sample``.

Keys are file stems: ``ILSVRC2012_val_00000001`` ... ``ILSVRC2012_val_00050000`` for the
validation set, ``<synset>_<name>`` for the 200-image sample. ``imagenet`` and ``real`` share
the dataset ``imagenet-val``, so any run on one is re-scored on the other's labels.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import pandas as pd

from .classification import ClassificationSuite, stem_key
from .data import resolve_file
from .suites import declared

VAL_SIZE = 50_000
VAL_KEY = r"ILSVRC2012_val_000(?!00000)\d{5}"


def val_key(index: int) -> str:
    """Key of the validation image at 0-based position ``index`` in file order."""
    return f"ILSVRC2012_val_{index + 1:08d}"


def _val_key_of(name: str) -> str | None:
    key = stem_key(VAL_KEY)(name)
    return key if key is not None and int(key[-8:]) <= VAL_SIZE else None


@functools.lru_cache(maxsize=1)
def synsets() -> tuple[str, ...]:
    path = resolve_file("imagenet-val-labels", "imagenet/imagenet_synsets.txt")
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    assert len(names) == 1000, f"{path} lists {len(names)} synsets, expected 1000"
    return names


@functools.lru_cache(maxsize=1)
def synset_index() -> dict[str, int]:
    return {s: i for i, s in enumerate(synsets())}


@functools.lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    path = resolve_file("imagenet-val-labels", "imagenet/imagenet_class_names.tsv")
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    return tuple(r[2] for r in sorted(rows, key=lambda r: int(r[0])))


def original_labels() -> tuple[dict, pd.DataFrame]:
    """The original ILSVRC-2012 validation labels (LOC_val_solution.csv, first synset per image)."""
    path = resolve_file("imagenet-val-labels", "imagenet/LOC_val_solution.csv")
    raw = pd.read_csv(path)
    index = synset_index()
    classes = raw["PredictionString"].str.split(" ", n=1).str[0].map(index)
    if classes.isna().any() or len(raw) != VAL_SIZE:
        raise ValueError(f"{path} is not the 50,000-image ILSVRC-2012 validation solution")
    table = pd.DataFrame({"key": raw["ImageId"], "labels": [[int(c)] for c in classes]})
    meta = {"description": "original ILSVRC-2012 validation labels", "source": "imagenet/LOC_val_solution.csv",
            "num_classes": 1000}
    return meta, table.sort_values("key", ignore_index=True)


def real_labels() -> tuple[dict, pd.DataFrame]:
    """ReaL labels (Beyer et al. 2020): a list per image in file order; empty = image excluded."""
    path = resolve_file("imagenet-real", "imagenet/real.json")
    lists = json.loads(path.read_text())
    if len(lists) != VAL_SIZE:
        raise ValueError(f"{path} has {len(lists)} entries, expected {VAL_SIZE}")
    table = pd.DataFrame({"key": [val_key(i) for i in range(VAL_SIZE)], "labels": lists})
    meta = {"description": "ReaL labels (Beyer et al. 2020, 'Are we done with ImageNet?')",
            "source": "imagenet/real.json", "num_classes": 1000}
    return meta, table


def _sample_key_of(name: str) -> str | None:
    stem = Path(str(name)).name.rsplit(".", 1)[0]
    return stem if stem[:9] in synset_index() and stem[9:10] == "_" else None


def sample_labels() -> tuple[dict, pd.DataFrame]:
    """Labels of the 200-image sample: the synset in each file name."""
    from .data import load_manifest

    manifest = load_manifest("imagenet-sample")
    keys = sorted(Path(e.path).name.rsplit(".", 1)[0] for e in manifest.files)
    index = synset_index()
    table = pd.DataFrame({"key": keys, "labels": [[index[k[:9]]] for k in keys]})
    meta = {"description": "synset in the file name", "source": "imagenet-sample", "num_classes": 1000}
    return meta, table


_VAL_LABEL_SETS = {"imagenet-original": original_labels, "real": real_labels}

_VAL_IMAGES = dict(num_classes=1000, label_sets=_VAL_LABEL_SETS, key_of=_val_key_of, class_index=synset_index,
                   default_images=("imagenet-val-subset", "imagenet-val-subset"),
                   example=("imagenet-predictions", "imagenet/model_predictions/ViT.csv"))
IMAGENET = ClassificationSuite(**declared("imagenet"), **_VAL_IMAGES)
REAL = ClassificationSuite(**declared("real"), **_VAL_IMAGES)
IMAGENET_SAMPLE = ClassificationSuite(
    **declared("imagenet-sample"), num_classes=1000, label_sets={"imagenet-sample-original": sample_labels},
    key_of=_sample_key_of, class_index=synset_index, default_images=("imagenet-sample", "imagenet-sample"),
)
