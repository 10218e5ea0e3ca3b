"""Class names of every dataset, stored in the store's ``classes`` table (``Store.put_classes``).

Where each dataset's names come from:

- ImageNet and its test sets (ImageNetV2, -Sketch, -A, -R, the 200-image sample): the 1,000 WordNet
  lemmas of ``imagenet/imagenet_class_names.tsv`` (manifest ``imagenet-val-labels``, read through
  ``harness.data``: the mirror or the cache), ``ident`` the synset;
- CIFAR-10 (test, 10.1 v4/v6) and CIFAR-100: the published class lists;
- COCO and LVIS: the ``coco_categories`` of the dataset's label sets, ``class_index`` = category id;
- ActivityNet v1.3 (temporal detection): the action labels of its label sets, sorted, ``class_index``
  = position in that order (its rows name labels as text).

:func:`ensure_classes` writes what is missing for the datasets the store's label sets label, so after
``python -m reports serve`` (or ``python -m reports classes``) plain SQL joins class ids to names::

    SELECT c.name, count(*) FROM predictions p JOIN runs r USING (run_id)
    JOIN classes c ON c.dataset = r.dataset AND c.class_index = p.top_classes[1] GROUP BY 1
"""
from __future__ import annotations

from typing import Callable

import pandas as pd

from harness.store import Store

IMAGENET_DATASETS = ("imagenet-val", "imagenet-sample", "imagenetv2-matched-frequency", "imagenetv2-threshold0.7",
                     "imagenetv2-top-images", "imagenet-sketch", "imagenet-a", "imagenet-r")
CIFAR10_DATASETS = ("cifar10-test", "cifar10.1-v4", "cifar10.1-v6")
DETECTION_DATASETS = ("coco", "lvis")
TEMPORAL_DATASETS = ("activitynet-v1.3",)


def _imagenet(store: Store, dataset: str) -> pd.DataFrame:
    from harness import imagenet

    names, synsets = imagenet.class_names(), imagenet.synsets()
    return pd.DataFrame({"class_index": range(len(names)), "name": list(names), "ident": list(synsets)})


def _listed(names) -> Callable[[Store, str], pd.DataFrame]:
    def build(store: Store, dataset: str) -> pd.DataFrame:
        return pd.DataFrame({"class_index": range(len(names)), "name": list(names),
                             "ident": [str(i) for i in range(len(names))]})
    return build


def _label_sets_of(store: Store, dataset: str) -> list[str]:
    return sorted(m["name"] for m in store.list_label_sets() if m.get("dataset") == dataset)


def _detection(store: Store, dataset: str) -> pd.DataFrame:
    frames = [store.read_label_table(n, "coco_categories", exclude=("keypoint_names", "skeleton")).to_pandas()
              for n in _label_sets_of(store, dataset) if "coco_categories" in store.label_set_meta(n)["n_rows"]]
    if not frames:
        return pd.DataFrame(columns=["class_index", "name", "ident"])
    cats = pd.concat(frames).drop_duplicates("category_id").sort_values("category_id")
    return pd.DataFrame({"class_index": cats["category_id"].astype(int), "name": cats["name"],
                         "ident": cats["category_id"].astype(str)})


def _temporal(store: Store, dataset: str) -> pd.DataFrame:
    labels: set[str] = set()
    for name in _label_sets_of(store, dataset):
        if "temporal_segments" in store.label_set_meta(name)["n_rows"]:
            labels |= set(store.read_label_table(name, "temporal_segments").column("label").to_pylist())
    names = sorted(x for x in labels if x is not None)
    return pd.DataFrame({"class_index": range(len(names)), "name": names, "ident": names})


def _sources() -> dict[str, Callable[[Store, str], pd.DataFrame]]:
    from harness.cifar import CIFAR10_CLASSES, CIFAR100_CLASSES

    return {**{d: _imagenet for d in IMAGENET_DATASETS}, **{d: _listed(CIFAR10_CLASSES) for d in CIFAR10_DATASETS},
            "cifar100-test": _listed(CIFAR100_CLASSES), **{d: _detection for d in DETECTION_DATASETS},
            **{d: _temporal for d in TEMPORAL_DATASETS}}


def known_datasets() -> list[str]:
    return sorted(_sources())


def ensure_classes(store: Store, refresh: bool = False) -> list[str]:
    """Store the class names of every dataset a label set of the store labels (those realbench knows the
    names of) where they are missing (all of them with ``refresh``); returns the datasets written."""
    sources = _sources()
    datasets = sorted({m.get("dataset") for m in store.list_label_sets()} & set(sources))
    written = []
    for dataset in datasets:
        if refresh or store.read_classes(dataset) is None:
            table = sources[dataset](store, dataset)
            if len(table):
                store.put_classes(dataset, table)
                written.append(dataset)
    return written


def class_names(store: Store, dataset: str) -> dict[int, str]:
    """``{class index: name}`` of a dataset (empty when none are stored)."""
    table = store.read_classes(dataset)
    if table is None:
        return {}
    return dict(zip(table.column("class_index").to_pylist(), table.column("name").to_pylist()))
