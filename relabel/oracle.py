"""The ambiguous-class oracle of "Are we done with ImageNet?" (§5).

The oracle answers each image with a label drawn uniformly from its ReaL labels; its
expected accuracy against the original label of image i is ``[orig_i in real_i] / |real_i|``.
Averaged per original class, it shows where the original labels pick one of several equally
right answers (sunglass/sunglasses, laptop/notebook...). A model that beats the oracle on
such a class has learnt the original annotators' bias rather than the image content.
Images with no ReaL label are left out.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.store import Store, atomic_write_bytes

from .real import N_VAL, val_indices

DEFAULT_THRESHOLD = 0.9


def _check(real: list, original: np.ndarray) -> None:
    if len(real) != len(original):
        raise HarnessError(f"{len(real)} ReaL label lists but {len(original)} original labels")


def oracle_per_image(real: list, original: np.ndarray) -> np.ndarray:
    """Expected oracle accuracy per image (NaN where the image has no ReaL label)."""
    _check(real, original)
    return np.array([(o in r) / len(r) if r else np.nan for r, o in zip(real, original)])


def oracle_classes(real: list, original: np.ndarray, class_names=None,
                   n_classes: int = 1000) -> pd.DataFrame:
    """Per original class: images with ReaL labels and the oracle's expected accuracy."""
    acc = oracle_per_image(real, original)
    kept = ~np.isnan(acc)
    n = np.bincount(original[kept], minlength=n_classes)
    total = np.bincount(original[kept], weights=acc[kept], minlength=n_classes)
    frame = pd.DataFrame({"class": np.arange(n_classes), "images": n,
                          "oracle_accuracy": np.divide(total, n, out=np.full(n_classes, np.nan),
                                                       where=n > 0)})
    if class_names is not None:
        frame.insert(1, "name", list(class_names)[:n_classes])
    return frame


def ambiguous_classes(classes: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """Classes whose oracle accuracy is below ``threshold``, worst first."""
    if not 0 < threshold <= 1:
        raise HarnessError(f"threshold must be in (0, 1], got {threshold}")
    low = classes[classes["oracle_accuracy"] < threshold]
    return low.sort_values(["oracle_accuracy", "class"]).reset_index(drop=True)


def confused_pairs(real: list, original: np.ndarray, classes, class_names=None,
                   top: int | None = 3) -> pd.DataFrame:
    """For each class in ``classes``: the other labels that take the oracle's probability
    (the ``top`` largest, all when None).

    ``oracle_loss`` is the share of the class's expected oracle answers that go to ``other``
    (the oracle's accuracy plus all losses is 1); ``images`` counts the class's images whose
    ReaL labels contain ``other``.
    """
    _check(real, original)
    wanted = set(int(c) for c in classes)
    loss = defaultdict(float)
    images = defaultdict(int)
    n = defaultdict(int)
    for r, o in zip(real, original):
        o = int(o)
        if not r or o not in wanted:
            continue
        n[o] += 1
        for label in r:
            if label != o:
                loss[o, label] += 1 / len(r)
                images[o, label] += 1
    rows = [{"class": c, "other": d, "oracle_loss": v / n[c], "images": images[c, d]}
            for (c, d), v in loss.items()]
    frame = pd.DataFrame(rows, columns=["class", "other", "oracle_loss", "images"])
    frame = frame.sort_values(["class", "oracle_loss", "other"], ascending=[True, False, True])
    if top is not None:
        frame = frame.groupby("class").head(top)
    frame = frame.reset_index(drop=True)
    if class_names is not None:
        names = list(class_names)
        frame.insert(1, "name", [names[c] for c in frame["class"]])
        frame.insert(3, "other_name", [names[d] for d in frame["other"]])
    return frame


def duplicate_pairs(real: list, original: np.ndarray, class_names=None, min_share: float = 0.1,
                    n_classes: int = 1000) -> pd.DataFrame:
    """Pairs of classes that take a large share of each other's oracle answers in both directions.

    A class's rivals (:func:`confused_pairs`) mix synonyms with objects that merely appear beside
    it (racer → car wheel); a duplicate pair goes both ways: ``a_to_b``, the share of class a's
    expected oracle answers that go to b, and ``b_to_a`` are both at least ``min_share``. One row
    per pair (class a < class b), most mutual first (``mutual_share`` = the smaller share);
    ``a_images``/``b_images`` count the images of each class whose labels hold the other.
    """
    if not 0 < min_share <= 1:
        raise HarnessError(f"min_share must be in (0, 1], got {min_share}")
    rivals = confused_pairs(real, original, range(n_classes), top=None)
    back = rivals.rename(columns={"class": "other", "other": "class", "oracle_loss": "b_to_a",
                                  "images": "b_images"})
    both = rivals.rename(columns={"oracle_loss": "a_to_b", "images": "a_images"}).merge(back, on=["class", "other"])
    both = both[(both["class"] < both["other"]) & (both["a_to_b"] >= min_share) & (both["b_to_a"] >= min_share)]
    frame = both.rename(columns={"class": "a", "other": "b"}).assign(
        mutual_share=np.minimum(both["a_to_b"], both["b_to_a"]))
    frame = frame.sort_values(["mutual_share", "a"], ascending=[False, True]).reset_index(drop=True)
    frame = frame[["a", "b", "mutual_share", "a_to_b", "b_to_a", "a_images", "b_images"]]
    if class_names is not None:
        names = list(class_names)
        frame.insert(1, "a_name", [names[c] for c in frame["a"]])
        frame.insert(3, "b_name", [names[c] for c in frame["b"]])
    return frame


def label_lists_from_store(store: Store, name: str, n_images: int = N_VAL) -> list[list[int]]:
    """A stored ImageNet validation label set as real.json's lists (empty where it has no row)."""
    dataset = store.label_set_meta(name).get("dataset")
    if dataset != "imagenet-val":
        raise HarnessError(f"label set {name!r} is of dataset {dataset!r}; the oracle needs an imagenet-val "
                           "label set (label lists per validation image)")
    rows = store.sql("SELECT key, labels FROM labels WHERE label_set = ?", [name])
    lists: list[list[int]] = [[] for _ in range(n_images)]
    for i, labels in zip(val_indices(rows["key"]), rows["labels"]):
        lists[i] = [int(x) for x in labels]
    return lists


def top1_from_store(store: Store, run_ref: str, n_images: int) -> np.ndarray:
    """A stored run's top-1 class per validation image (−1 where it has no prediction); a run name resolves
    on the validation set, whatever other datasets the name has runs on."""
    meta = store.resolve_run(run_ref, "imagenet-val")
    rows = store.sql("SELECT key, top_classes[1] AS top1 FROM predictions WHERE run_id = ? "
                     "AND top_classes IS NOT NULL AND len(top_classes) > 0", [meta["run_id"]])
    if rows.empty:
        raise HarnessError(f"run {meta['run_id']} has no predictions with top classes")
    out = np.full(n_images, -1, np.int64)
    out[val_indices(rows["key"])] = rows["top1"].to_numpy(np.int64)
    return out


def models_vs_oracle(models: Mapping[str, np.ndarray], real: list, original: np.ndarray,
                     classes: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD):
    """Per model and class: accuracy on the original labels beside the oracle's.

    Only images with ReaL labels and a prediction count. Returns (per-class table,
    per-model summary with the number of ambiguous classes where the model beats the oracle).
    """
    per_image = oracle_per_image(real, original)
    ambiguous = set(ambiguous_classes(classes, threshold)["class"])
    rows, summary = [], []
    for name, top1 in models.items():
        top1 = np.asarray(top1)
        if top1.shape != original.shape:
            raise HarnessError(f"model {name!r}: {top1.shape[0]} predictions for {original.shape[0]} images")
        use = ~np.isnan(per_image) & (top1 >= 0)
        n = np.bincount(original[use], minlength=len(classes))
        correct = np.bincount(original[use], weights=(top1[use] == original[use]), minlength=len(classes))
        oracle = np.bincount(original[use], weights=per_image[use], minlength=len(classes))
        with np.errstate(invalid="ignore", divide="ignore"):
            model_acc, oracle_acc = correct / n, oracle / n
        table = pd.DataFrame({"model": name, "class": np.arange(len(classes)), "images": n,
                              "model_accuracy": model_acc, "oracle_accuracy": oracle_acc})
        table["ambiguous"] = table["class"].isin(ambiguous)
        table["beats_oracle"] = table["model_accuracy"] > table["oracle_accuracy"]
        rows.append(table)
        amb = table[table["ambiguous"] & (table["images"] > 0)]
        summary.append({"model": name, "images": int(use.sum()),
                        "accuracy": float(correct.sum() / max(n.sum(), 1)),
                        "oracle_accuracy": float(oracle.sum() / max(n.sum(), 1)),
                        "ambiguous_classes": len(amb),
                        "ambiguous_beaten": int(amb["beats_oracle"].sum()),
                        "ambiguous_model_accuracy": float(amb["model_accuracy"].mean()) if len(amb) else np.nan,
                        "ambiguous_oracle_accuracy": float(amb["oracle_accuracy"].mean()) if len(amb) else np.nan})
    per_class = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return per_class, pd.DataFrame(summary)


def plot_oracle(classes: pd.DataFrame, per_class: pd.DataFrame | None, path: Path,
                threshold: float = DEFAULT_THRESHOLD) -> None:
    """Oracle accuracy per class (sorted), with each model's accuracy on the same classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = classes.dropna(subset=["oracle_accuracy"]).sort_values("oracle_accuracy")
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = np.arange(len(order))
    if per_class is not None and len(per_class):
        for name, table in per_class.groupby("model", sort=True):
            acc = table.set_index("class").loc[order["class"], "model_accuracy"].to_numpy()
            ax.plot(x, acc, ".", ms=2, alpha=0.5, label=f"{name} (original labels)")
    ax.plot(x, order["oracle_accuracy"].to_numpy(), "k-", lw=1.5, label="ReaL oracle")
    ax.axhline(threshold, color="grey", ls=":", lw=1)
    ax.set_xlabel("ImageNet class, sorted by oracle accuracy")
    ax.set_ylabel("accuracy against the original labels")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=8, markerscale=4)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def write_table(frame: pd.DataFrame, path: Path) -> None:
    atomic_write_bytes(Path(path), frame.to_csv(index=False, float_format="%.6g").encode())
