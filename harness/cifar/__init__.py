"""CIFAR suites: ``cifar10`` (+ ``cifar10h``), ``cifar10.1-v4``, ``cifar10.1-v6`` (``cifar10.1``), ``cifar100``.

Sample keys are the standard test-set index as text (``"0"`` ... ``"9999"``), the index that
CIFAR-10H, CIFAR-10S, the label-error study and the published prediction files all use, so
every label set of a dataset scores every run of it. Images named by that index work flat
(``123.png``); the shipped JPEG copy of the CIFAR-10 test set is laid out one folder per class
with files named by their rank within the class (``cat/0007.jpg`` = the 8th cat in test-set
order), and the key is recovered from the original labels.

Label sets of ``cifar10-test``:

- ``cifar10-original``: the original labels;
- ``cifar10h``: CIFAR-10H soft labels (Peterson et al. 2019), every class some annotator chose,
  weighted by its share of the ~51 annotators; scored as *human agreement*, the human probability
  of the predicted class (the expected agreement with a random annotator);
- ``cifar10-corrected``: the original labels with the crowd-verified label errors of Northcutt
  et al. 2021 applied: 18 images where at least 3 of 5 workers chose the suggested label get it;
  the other 36 verified errors (fewer than 3 workers kept the original label, no majority for a
  replacement) are left out;
- ReaL-style sets from CIFAR-10H at a threshold are built by ``relabel`` (``python -m relabel
  cifar10h --register NAME``) and score the same runs.

Prediction files import from CSV/Parquet/JSON with keys (as for any suite) and also as arrays in
test-set order: ``.npy`` or a JSON list holding one class per image (the published CIFAR-10.1 and
label-error files) or an images × classes matrix of probabilities (``cifar10_test_pyx.npy``).
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import ClassVar
from pathlib import Path

import numpy as np
import pandas as pd

from ..classification import FLOAT32_MAX, PREDICTION_FORMATS, ClassificationSuite, read_prediction_file
from ..data import resolve_file, sha256_file
from ..errors import HarnessError
from ..jsonfile import read_json
from ..metrics import HUMAN_AGREEMENT_VERSION, get_metric
from ..score import per_sample
from ..store import Store
from ..suites import declared

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish",
    "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm")

CIFAR10_TEST = "cifar10-test"  # manifest and dataset of the CIFAR-10 test labels, pyx and label errors
HUMAN = "cifar10-human"  # manifest of CIFAR-10H (and CIFAR-10S)
CIFAR10_1 = "cifar10.1"  # manifest of the CIFAR-10.1 labels and the 30 models' predictions
CIFAR100_TEST = "cifar100-test"
JPEG = "cifar10-test-jpeg"
PREDICTIONS = "cifar/cifar10_1_model_predictions"
SOFT_METRIC_VERSION = HUMAN_AGREEMENT_VERSION


def _npy(dataset: str, path: str) -> np.ndarray:
    return np.load(resolve_file(dataset, path))


@functools.lru_cache(maxsize=1)
def cifar10_labels() -> np.ndarray:
    labels = _npy(CIFAR10_TEST, "cifar/cifar10_test_labels.npy").astype(np.int64)
    if labels.shape != (10_000,) or np.bincount(labels, minlength=10).tolist() != [1000] * 10:
        raise HarnessError("cifar10_test_labels.npy is not the 10,000 CIFAR-10 test labels (1,000 per class)")
    return labels


@functools.lru_cache(maxsize=1)
def _class_members() -> dict[str, np.ndarray]:
    """Test indices of each class in test-set order: the n-th cat is ``_class_members()['cat'][n]``."""
    labels = cifar10_labels()
    return {name: np.flatnonzero(labels == c) for c, name in enumerate(CIFAR10_CLASSES)}


def _index_stem(name: str) -> int | None:
    stem = Path(str(name)).name.rsplit(".", 1)[0]
    # ASCII digits only ('²'.isdigit() is true, int('²') fails), and no index longer than any test set's
    return int(stem) if stem.isascii() and stem.isdigit() and len(stem) <= 9 else None


def index_key(size: int):
    """Key function for images or rows named by their test-set index (``42``, ``00042.png``)."""
    def key_of(name: str) -> str | None:
        index = _index_stem(name)
        return str(index) if index is not None and index < size else None

    return key_of


def cifar10_key_of(name: str) -> str | None:
    """``<class>/<rank>.jpg`` (rank within the class in test-set order) or an index-named file."""
    parts = Path(str(name)).parts
    if len(parts) < 2:
        return index_key(10_000)(name)
    if parts[-2] not in CIFAR10_CLASSES:
        return None
    rank = _index_stem(parts[-1])
    members = _class_members()[parts[-2]]
    return str(int(members[rank])) if rank is not None and rank < len(members) else None


def _index_table(labels) -> pd.DataFrame:
    return pd.DataFrame({"key": [str(i) for i in range(len(labels))], "labels": [[int(c)] for c in labels]})


def original_labels() -> tuple[dict, pd.DataFrame]:
    meta = {"description": "original CIFAR-10 test labels", "source": "cifar/cifar10_test_labels.npy",
            "num_classes": 10}
    return meta, _index_table(cifar10_labels())


def cifar10h_counts() -> np.ndarray:
    counts = _npy(HUMAN, "cifar/cifar10h-counts.npy")
    if counts.shape != (10_000, 10) or (counts < 0).any() or (counts.sum(1) == 0).any():
        raise HarnessError(f"cifar10h-counts.npy must be 10,000 x 10 non-negative counts with at least one "
                           f"label per image, got shape {counts.shape}")
    return counts


def cifar10h_labels() -> tuple[dict, pd.DataFrame]:
    """Soft labels: every class some annotator chose, weighted by its share of the annotators."""
    counts = cifar10h_counts()
    shares = counts / counts.sum(1, keepdims=True)
    labels = [np.flatnonzero(row).tolist() for row in counts]
    weights = [shares[i, lab].tolist() for i, lab in enumerate(labels)]
    table = pd.DataFrame({"key": [str(i) for i in range(len(counts))], "labels": labels, "weights": weights})
    meta = {"description": "CIFAR-10H human label distributions (Peterson et al. 2019), ~51 annotators per "
                           "image; weights are the annotators' shares",
            "source": "cifar/cifar10h-counts.npy", "num_classes": 10, "soft": True,
            "annotators_per_image": float(counts.sum(1).mean())}
    return meta, table


def label_errors() -> pd.DataFrame:
    """The crowd check of suspected label errors (5 workers each): one row per checked image."""
    path = resolve_file(CIFAR10_TEST, "cifar/cifar10_label_errors_mturk.json")
    rows = json.loads(path.read_text())
    table = pd.DataFrame([{"index": r["id"], "given": r["given_original_label"], "guessed": r["our_guessed_label"],
                           **{f"votes_{k}": v for k, v in r["mturk"].items()}} for r in rows])
    if not table["given"].equals(pd.Series(cifar10_labels()[table["index"]], name="given")):
        raise HarnessError(f"{path}: given labels differ from the original CIFAR-10 test labels")
    return table


def corrected_labels() -> tuple[dict, pd.DataFrame]:
    """Original labels with the verified label errors corrected (majority for the suggestion) or left out."""
    labels = [[int(c)] for c in cifar10_labels()]
    errors = label_errors()
    verified = errors[errors["votes_given"] < 3]  # a majority of the 5 workers rejected the original label
    corrected = verified[verified["votes_guessed"] >= 3]
    for row in verified.itertuples():
        labels[row.index] = [int(row.guessed)] if row.votes_guessed >= 3 else []
    table = pd.DataFrame({"key": [str(i) for i in range(len(labels))], "labels": labels})
    meta = {"description": "original labels with the crowd-verified label errors of Northcutt et al. 2021: "
                           f"{len(corrected)} corrected, {len(verified) - len(corrected)} without an agreed "
                           "label left out",
            "source": "cifar/cifar10_label_errors_mturk.json", "num_classes": 10,
            "checked": len(errors), "verified_errors": len(verified), "corrected": len(corrected)}
    return meta, table


def _array_labels(dataset: str, path: str, size: int, num_classes: int, description: str):
    def build() -> tuple[dict, pd.DataFrame]:
        labels = _npy(dataset, path).astype(np.int64)
        if labels.shape != (size,) or labels.min() < 0 or labels.max() >= num_classes:
            raise HarnessError(f"{path} must hold {size:,} labels in 0...{num_classes - 1}, got shape {labels.shape}")
        return {"description": description, "source": path, "num_classes": num_classes}, _index_table(labels)

    return build


@dataclass(repr=False)
class CifarSuite(ClassificationSuite):
    size: int = 10_000
    import_formats: ClassVar[tuple[str, ...]] = (*PREDICTION_FORMATS, ".npy")

    def read_table(self, path: Path) -> pd.DataFrame:
        """Arrays in test-set order (``.npy``, a JSON list) become a keyed table; other files as usual."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".npy":
            if not path.is_file():
                raise HarnessError(f"prediction file {path} does not exist")
            try:
                array = np.load(path, allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise HarnessError(f"prediction file {path} could not be read as .npy: {exc}") from None
            return self._array_table(array, path)
        if suffix == ".json" and path.is_file():
            raw = read_json(path, "prediction file")  # deep nesting, huge integers, repeated keys: one error
            if isinstance(raw, list) and raw and not isinstance(raw[0], dict):
                try:
                    array = np.asarray(raw)
                except ValueError:
                    raise HarnessError(f"{path}: the JSON list's rows differ in length") from None
                return self._array_table(array, path)
        return read_prediction_file(path)

    def _array_table(self, array: np.ndarray, path: Path) -> pd.DataFrame:
        where = f"{path}: dataset {self.dataset} has {self.size:,} test images"
        if array.ndim not in (1, 2) or array.shape[0] != self.size:
            raise HarnessError(f"{where}, so the array must be {self.size:,} classes or {self.size:,} x "
                               f"{self.num_classes} probabilities in test-set order; got shape {array.shape}")
        keys = [str(i) for i in range(self.size)]
        if array.ndim == 1:
            if not (np.issubdtype(array.dtype, np.integer) or
                    (np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0))):
                raise HarnessError(f"{path}: a 1-d array must hold class ids, got {array.dtype} values")
            # Checked here, not row by row later: an array has indices (= keys), not a file's line numbers.
            outside = (array < 0) | (array >= self.num_classes)
            if outside.any():
                first = int(np.flatnonzero(outside)[0])
                raise HarnessError(f"{path}: {int(outside.sum()):,} of {self.size:,} entries outside "
                                   f"0..{self.num_classes - 1}; first at index {first} (key '{first}'): "
                                   f"class {int(array[first])}")
            return pd.DataFrame({"key": keys, "top_classes": [[int(c)] for c in array]})
        if array.shape[1] != self.num_classes:
            raise HarnessError(f"{where} of {self.num_classes} classes; the array has {array.shape[1]} columns "
                               f"(shape {array.shape})")
        if (not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all()
                or np.abs(array).max() > FLOAT32_MAX):  # stored as float32
            raise HarnessError(f"{path}: the probabilities must be finite numbers within float32 range")
        k = min(5, self.num_classes)
        top = np.argsort(-array, axis=1, kind="stable")[:, :k]
        scores = np.take_along_axis(array, top, axis=1)
        return pd.DataFrame({"key": keys, "top_classes": top.tolist(), "top_scores": scores.tolist()})

    def _score(self, store: Store, run_id: str, label_set: str | None = None) -> dict:
        result = super()._score(store, run_id, label_set)
        soft = bool(store.label_set_meta(result["label_set"]).get("soft"))
        if get_metric("human_agreement").available(classes=1, soft_labels=soft):
            result.update(human_agreement_summary(store, run_id, result["label_set"]))
        return result


_HUMAN_AGREEMENT = """
WITH p AS (SELECT key, top_classes FROM predictions WHERE run_id = $run),
     l AS (SELECT key, labels, weights FROM labels WHERE label_set = $labels AND len(labels) > 0)
SELECT l.key, coalesce(l.weights[list_position(l.labels, p.top_classes[1])], 0.0)::DOUBLE AS human_agreement
FROM l JOIN p USING (key)
ORDER BY l.key
"""


def human_agreement(store: Store, run_id: str, label_set: str) -> pd.DataFrame:
    """Per sample, the weight the soft label set gives the run's top-1 class (0 when it has none):
    for CIFAR-10H the share of annotators who chose it. An unreadable image scores 0."""
    return per_sample(store, run_id, label_set, _HUMAN_AGREEMENT)


def human_agreement_summary(store: Store, run_id: str, label_set: str) -> dict:
    rows = human_agreement(store, run_id, label_set)
    return {"human_agreement": float(rows["human_agreement"].mean()) if len(rows) else float("nan"),
            "human_agreement_metric_version": SOFT_METRIC_VERSION}


# ----- the published prediction files ------------------------------------------------------
PUBLISHED_SETS = {"cifar10": "original_predictions", "cifar10.1-v4": "v4_predictions",
                  "cifar10.1-v6": "v6_predictions"}


def published_models() -> list[str]:
    """The 30 models of the CIFAR-10.1 study (Recht et al. 2018) with predictions on all three test sets."""
    from ..data import load_manifest

    prefix = f"{PREDICTIONS}/original_predictions/"
    return sorted(e.path[len(prefix):].removesuffix("_predictions.json")
                  for e in load_manifest(CIFAR10_1).files if e.path.startswith(prefix))


def shipped_prediction_files() -> list[tuple[str, str, str, str]]:
    """(suite, run name, manifest, path) of every shipped prediction file."""
    files = [(suite, model, CIFAR10_1, f"{PREDICTIONS}/{folder}/{model}_predictions.json")
             for model in published_models() for suite, folder in PUBLISHED_SETS.items()]
    files.append(("cifar10", "label_errors_cv", CIFAR10_TEST, "cifar/cifar10_test_pyx.npy"))
    files.append(("cifar100", "label_errors_cv", CIFAR100_TEST, "cifar/cifar100_test_cv_top1.npy"))
    files.append(("cifar10", "original_labels", CIFAR10_TEST, "cifar/cifar10_test_labels.npy"))
    return files


def import_shipped(store: Store, quiet: bool = True, suites: tuple[str, ...] | None = None
                   ) -> dict[tuple[str, str], str]:
    """Import every shipped prediction file (of ``suites``, default all) as a run (idempotent: a file
    already imported under the same name and suite is kept). ``original_labels`` imports the labels
    themselves as a run, so that the original labels are scored under CIFAR-10H like any model.
    Returns {(suite, name): run id}."""
    from tqdm import tqdm

    from ..suites import get_suite

    existing = {(m.get("suite"), m.get("name"), m.get("source_sha256")): m["run_id"]
                for m in store.list_runs("complete")}
    out = {}
    files = [f for f in shipped_prediction_files() if suites is None or f[0] in suites]
    for suite_name, name, manifest, path in tqdm(files, desc="import", unit="file", disable=quiet):
        suite = get_suite(suite_name)
        file = resolve_file(manifest, path)
        known = existing.get((suite.name, name, sha256_file(file)))
        out[suite.name, name] = known or suite.import_predictions(store, file, name)
    return out


def _published_example(suite: str) -> tuple[str, str]:
    return CIFAR10_1, f"{PREDICTIONS}/{PUBLISHED_SETS[suite]}/resnet_basic_56_predictions.json"


CIFAR10_CLASS_INDEX = {c: i for i, c in enumerate(CIFAR10_CLASSES)}
_CIFAR10_LABEL_SETS = {"cifar10-original": original_labels, "cifar10h": cifar10h_labels,
                       "cifar10-corrected": corrected_labels}


def _cifar10_suite(name: str) -> CifarSuite:
    return CifarSuite(**declared(name), num_classes=10, label_sets=_CIFAR10_LABEL_SETS, key_of=cifar10_key_of,
                      class_index=lambda: CIFAR10_CLASS_INDEX, default_images=(JPEG, "cifar/cifar10-test-jpeg"),
                      size=10_000, example=_published_example("cifar10"))


CIFAR10 = _cifar10_suite("cifar10")
CIFAR10H = _cifar10_suite("cifar10h")


def _cifar10_1(version: str, size: int) -> CifarSuite:
    facts = declared(f"cifar10.1-{version}")
    label_set = facts["default_label_set"]
    return CifarSuite(
        **facts, num_classes=10,
        label_sets={label_set: _array_labels(CIFAR10_1, f"cifar/cifar10.1_{version}_labels.npy", size, 10,
                                             f"CIFAR-10.1 {version} labels")},
        key_of=index_key(size), class_index=lambda: CIFAR10_CLASS_INDEX, size=size,
        example=_published_example(f"cifar10.1-{version}"))


CIFAR10_1_V4 = _cifar10_1("v4", 2_021)
CIFAR10_1_V6 = _cifar10_1("v6", 2_000)
CIFAR100 = CifarSuite(
    **declared("cifar100"), num_classes=100,
    label_sets={"cifar100-original": _array_labels(CIFAR100_TEST, "cifar/cifar100_test_labels.npy", 10_000, 100,
                                                   "original CIFAR-100 test labels (fine)")},
    key_of=index_key(10_000), class_index=lambda: {c: i for i, c in enumerate(CIFAR100_CLASSES)}, size=10_000,
    example=(CIFAR100_TEST, "cifar/cifar100_test_cv_top1.npy"))
