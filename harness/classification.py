"""Classification suites: label sets, importing predictions made elsewhere, scoring, running.

A ``ClassificationSuite`` knows its dataset (the sample keys), how to build its shipped label
sets, how to turn a file name into a key, and which label set it scores against by default.
Other label sets of the same dataset (ReaL, a relabel) score the same stored rows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import pandas as pd

from .errors import HarnessError
from .identity import stored_import
from .jsonfile import read_json
from .storecheck import printable_text
from .score import METRIC_VERSION, describe, score_run
from .store import Store
from .suites import Suite

FILE_COLUMNS = ("file_name", "filename", "file", "image", "image_id", "key", "path")
CLASS_COLUMNS = ("predicted_class", "prediction", "pred", "class", "label", "top1")
_INTEGER = re.compile(r"-?[0-9]+")  # ASCII digits only: str.isdigit() accepts '²', which int() refuses
FLOAT32_MAX = float(np.finfo(np.float32).max)  # prediction scores are stored as float32
SCORE_COLUMNS = ("predicted_probability", "probability", "prob", "score", "confidence")
PREDICTION_FORMATS = (".csv", ".tsv", ".parquet", ".json", ".jsonl")
# How a classification run preprocesses and computes (harness.inference.InferenceOptions' fields, timm's flags).
INFERENCE_OPTIONS = ("img_size", "crop_pct", "interpolation", "precision", "channels_last", "decode")


@dataclass(repr=False)
class ClassificationSuite(Suite):
    name: str
    dataset: str
    description: str
    default_label_set: str
    num_classes: int
    label_sets: dict[str, Callable[[], tuple[dict, pd.DataFrame]]]  # name -> () -> (meta, labels table)
    key_of: Callable[[str], str | None]  # file name or path -> sample key, None if not of this dataset
    class_index: Callable[[], dict[str, int]] | None = None  # class names (e.g. synsets) -> index
    default_images: tuple[str, str] | None = None  # (manifest, folder) of shipped images to run on
    image_key: Callable[[Path], str | None] | None = None  # image file -> key when running
    extra: dict = field(default_factory=dict)
    example: tuple[str, str] | None = None  # (manifest, path) of a shipped prediction file

    task: ClassVar[str] = "classification"
    runner: ClassVar[str | None] = "classification"
    import_formats: ClassVar[tuple[str, ...]] = PREDICTION_FORMATS
    options: ClassVar[dict[str, tuple[str, ...]]] = {
        "import": ("model",), "score": (),
        "run": ("checkpoint", "batch_size", "workers", "device", "topk", "save_logits", "limit", "chunk_images",
                "fresh", "name", "resume", "quiet", *INFERENCE_OPTIONS),
    }

    # ----- label sets --------------------------------------------------------
    def ensure_label_sets(self, store: Store, names: list[str] | None = None) -> None:
        for name in names or list(self.label_sets):
            if not store.has_label_set(name):
                meta, table = self.label_sets[name]()
                store.put_label_set(name, {"dataset": self.dataset, **meta}, {"labels": table})

    def sample_keys(self, store: Store, label_set: str | None = None) -> list[str]:
        label_set = label_set or self.default_label_set
        if label_set in self.label_sets:
            self.ensure_label_sets(store, [label_set])
        return store.sql("SELECT key FROM labels WHERE label_set = ? AND len(labels) > 0 ORDER BY key",
                         [label_set])["key"].tolist()

    # ----- import ------------------------------------------------------------
    def _import_predictions(self, store: Store, path: Path, name: str, model: str | None = None) -> str:
        """Import a prediction file as a run; returns its run id (the stored one for a file already stored)."""
        existing = stored_import(store, self.dataset, path)
        if existing:
            return existing
        table = self.read_table(path)
        rows = self.predictions_from_table(table, path)
        from .data import sha256_file

        meta = {
            "name": name, "model": model or name, "suite": self.name, "dataset": self.dataset,
            "kind": "import", "metric_version": METRIC_VERSION,
            "source_file": str(path.resolve()), "source_sha256": sha256_file(path),
            "num_classes": self.num_classes,
        }
        return store.write_run(meta, {"predictions": rows})

    def read_table(self, path: Path) -> pd.DataFrame:
        """The file as a table; suites whose files need no key column (arrays in a known order) override it."""
        return read_prediction_file(path)

    def predictions_from_table(self, table: pd.DataFrame, path: Path) -> pd.DataFrame:
        """Validate an imported table and shape it into prediction rows; one clear error otherwise."""
        file_col = _pick(table, FILE_COLUMNS, path, "the file name")
        if len(table) == 0:
            raise HarnessError(f"{path} holds no prediction rows")
        names = table[file_col].astype(str)
        unprintable = ~names.map(printable_text)
        if unprintable.any():
            first = int(np.flatnonzero(unprintable.to_numpy())[0])
            raise HarnessError(f"{path}: row {first + 2} names the file {names.iloc[first][:80]!r}, which holds a "
                               "NUL or another control character; expected a file name")
        keys = names.map(self.key_of)
        bad = keys.isna()
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise HarnessError(
                f"{path}: {int(bad.sum())} rows name files that are not in dataset {self.dataset}, "
                f"first at row {first + 2}: {table[file_col].iloc[first]!r}")
        dup = keys.duplicated()
        if dup.any():
            first = int(np.flatnonzero(dup.to_numpy())[0])
            raise HarnessError(
                f"{path}: {int(dup.sum())} rows repeat a file already predicted, first at row {first + 2}: "
                f"{table[file_col].iloc[first]!r}")
        if "top_classes" in table.columns:
            classes = [self._classes(v, path, i) for i, v in enumerate(table["top_classes"])]
        else:
            class_col = _pick(table, CLASS_COLUMNS, path, "the predicted class")
            classes = [self._classes(v, path, i) for i, v in enumerate(table[class_col])]
        scores = None
        if "top_scores" in table.columns:
            scores = [_float_list(v, path, i) for i, v in enumerate(table["top_scores"])]
        else:
            score_cols = [c for c in SCORE_COLUMNS if c in table.columns]
            if score_cols:
                scores = [_float_list([v], path, i) for i, v in enumerate(table[score_cols[0]])]
        if scores is not None:
            for i, (c, s) in enumerate(zip(classes, scores)):
                if len(c) != len(s):
                    raise HarnessError(f"{path}: row {i + 2} has {len(c)} classes but {len(s)} scores {s!r}")
                if not all(np.isfinite(s)) or max(map(abs, s), default=0.0) > FLOAT32_MAX:  # stored as float32
                    raise HarnessError(f"{path}: row {i + 2} has scores {s!r}, expected finite numbers within "
                                       "float32 range")
        return pd.DataFrame({"key": keys.to_numpy(), "top_classes": classes, "top_scores": scores})

    def _classes(self, value, path: Path, row: int) -> list[int]:
        values = value if isinstance(value, (list, tuple, np.ndarray)) else str(value).replace(",", " ").split()
        out = []
        index = self.class_index() if self.class_index else {}
        for v in values:
            s = str(v).strip()
            if _INTEGER.fullmatch(s) and len(s) <= 18:
                c = int(s)
            elif _INTEGER.fullmatch(s):
                raise HarnessError(f"{path}: row {row + 2} has class id {s[:12]}... ({len(s.lstrip('+-'))} digits), "
                                   f"outside 0...{self.num_classes - 1} of suite {self.name}")
            elif s in index:
                c = index[s]
            else:
                raise HarnessError(f"{path}: row {row + 2} has class {s!r}, expected an index 0..."
                                   f"{self.num_classes - 1}" + (" or a class name" if index else ""))
            if not 0 <= c < self.num_classes:
                raise HarnessError(f"{path}: row {row + 2} has class id {c}, outside 0...{self.num_classes - 1} "
                                   f"of suite {self.name}")
            out.append(c)
        if not out:
            raise HarnessError(f"{path}: row {row + 2} has no predicted class")
        return out

    # ----- score ---------------------------------------------------------------
    def _score(self, store: Store, run_id: str, label_set: str | None = None) -> dict:
        label_set = label_set or self.default_label_set
        if label_set in self.label_sets:
            self.ensure_label_sets(store, [label_set])
        return score_run(store, run_id, label_set)

    def describe(self, result) -> str:
        return describe(result)

    def import_report(self, store: Store, run_id: str) -> str:
        return describe(self.score(store, run_id))

    # ----- run ---------------------------------------------------------------
    def _run(self, store: Store, model: str, data_dir=None, **options) -> str:
        from .inference import InferenceOptions
        from .runner import run_classification

        inference = {k: options.pop(k) for k in INFERENCE_OPTIONS if k in options}
        return run_classification(store, self, model, data_dir, inference=InferenceOptions(**inference), **options)


def _pick(table: pd.DataFrame, candidates, path: Path, what: str) -> str:
    for c in candidates:
        if c in table.columns:
            return c
    raise HarnessError(f"{path}: no column for {what}; expected one of {', '.join(candidates)} "
                       f"(found {', '.join(map(str, table.columns))})")


def _float_list(v, path: Path, row: int) -> list[float]:
    values = v if isinstance(v, (list, tuple, np.ndarray)) else str(v).replace(",", " ").split()
    try:
        return [float(x) for x in values]
    except (TypeError, ValueError):
        raise HarnessError(f"{path}: row {row + 2} has scores {v!r}, expected numbers") from None


def read_prediction_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise HarnessError(f"prediction file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            sep = "," if suffix == ".csv" else "\t"
            table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
            _refuse_repeated_columns(path, sep)
            return table
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".json", ".jsonl"):
            if suffix == ".jsonl":
                return pd.read_json(path, lines=True, dtype=False)
            raw = read_json(path, "prediction file")
            if isinstance(raw, dict):  # {"file name": class or [classes]}
                return pd.DataFrame({"file_name": list(raw), "top_classes": [
                    v if isinstance(v, list) else [v] for v in raw.values()]})
            if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
                raise HarnessError(f"prediction file {path}: expected a JSON list of objects (one per image) "
                                   "or an object mapping file names to classes")
            return pd.DataFrame(raw)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"prediction file {path} could not be parsed as {suffix[1:]}: {exc}") from None
    raise HarnessError(f"prediction file {path}: unknown format {suffix!r}, expected .csv, .tsv, .parquet, "
                       ".json or .jsonl")


def _refuse_repeated_columns(path: Path, sep: str) -> None:
    """pandas renames a repeated column (``predicted_class.1``) and reads on: which one was meant is unknown."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f, delimiter=sep), [])
    except csv.Error as exc:  # e.g. a first field over csv's 128 KiB limit
        raise HarnessError(f"prediction file {path} could not be parsed as {sep!r}-separated values: {exc}") from None
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise HarnessError(f"prediction file {path}: the header names column(s) {', '.join(map(repr, repeated))} "
                           "more than once; expected each column once")


def stem_key(pattern: str) -> Callable[[str], str | None]:
    """A key function: the file's stem when it matches ``pattern`` (a regex for the whole stem)."""
    regex = re.compile(pattern)

    def key_of(name: str) -> str | None:
        stem = Path(str(name)).name
        stem = stem.rsplit(".", 1)[0] if "." in stem else stem
        return stem if regex.fullmatch(stem) else None

    return key_of
