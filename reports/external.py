"""External result tables: published aggregate numbers (one row per model, no per-sample rows).

An imported table is stored as a run of kind ``external`` whose only table is
``aggregates`` (model, top1, top5 as fractions, plus the evaluation settings the
publisher lists), so the store stays the single source of truth and the rows are
queryable like everything else (``SELECT * FROM aggregates``). The run's metadata
names the label set and suite the numbers were measured on, the number of images
behind each accuracy, and the source file with its sha256.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from harness.data import load_manifest, resolve_file, sha256_file
from harness.errors import HarnessError
from harness.identity import stored_import
from harness.store import Store, register_run_table

AGGREGATES_SCHEMA = pa.schema([
    ("model", pa.string()),
    ("top1", pa.float64()),
    ("top5", pa.float64()),
    ("img_size", pa.int32()),
    ("param_count_m", pa.float64()),
    ("crop_pct", pa.float64()),
    ("interpolation", pa.string()),
])
# Registered here rather than in harness.store because only reports reads external tables;
# the view is then defined (empty) even before the first import.
register_run_table("aggregates", AGGREGATES_SCHEMA)

EXTERNAL_KIND = "external"


@dataclass(frozen=True)
class TimmTable:
    name: str  # run name in the store
    path: str  # manifest path
    suite: str
    label_set: str


TIMM_TABLES = (
    TimmTable("timm-imagenet", "timm-results/results-imagenet.csv", "imagenet", "imagenet-original"),
    TimmTable("timm-imagenet-real", "timm-results/results-imagenet-real.csv", "real", "real"),
    TimmTable("timm-imagenetv2-matched-frequency", "timm-results/results-imagenetv2-matched-frequency.csv",
              "imagenetv2-matched-frequency", "imagenetv2-matched-frequency"),
    TimmTable("timm-sketch", "timm-results/results-sketch.csv", "imagenet-sketch", "imagenet-sketch"),
)
# timm's results/ file names -> (suite, label set) they measure; upstream also has -A and -R tables.
TIMM_FILE_SUITES = {
    "results-imagenet.csv": ("imagenet", "imagenet-original"),
    "results-imagenet-real.csv": ("real", "real"),
    "results-imagenetv2-matched-frequency.csv": ("imagenetv2-matched-frequency", "imagenetv2-matched-frequency"),
    "results-sketch.csv": ("imagenet-sketch", "imagenet-sketch"),
    "results-imagenet-a.csv": ("imagenet-a", "imagenet-a"),
    "results-imagenet-r.csv": ("imagenet-r", "imagenet-r"),
}
TIMM_DATASET = "timm-results"
_TIMM_REQUIRED = ("model", "img_size", "top1", "top5", "param_count", "crop_pct", "interpolation")


def _number(raw: pd.Series, column: str, path: Path) -> np.ndarray:
    """Numbers as timm writes them: text, thousands separated by commas ("1,014.45")."""
    cleaned = raw.str.replace(",", "", regex=False).str.strip()
    values = pd.to_numeric(cleaned, errors="coerce")
    bad = values.isna() & cleaned.ne("")
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise HarnessError(f"{path}: column {column!r} row {first + 2} holds {raw.iloc[first]!r}, expected a number")
    return values.to_numpy(dtype=float)


def parse_timm_results(path: Path) -> pd.DataFrame:
    """A timm ``results-*.csv`` as aggregate rows (accuracies as fractions); one clear error if malformed."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{path} could not be read as a timm results CSV: {exc}") from None
    missing = [c for c in _TIMM_REQUIRED if c not in raw.columns]
    if missing:
        raise HarnessError(f"{path} lacks the column(s) {', '.join(missing)} of a timm results CSV "
                           f"(found {', '.join(raw.columns)})")
    if raw.empty:
        raise HarnessError(f"{path} has a header but no model rows")
    models = raw["model"].str.strip()
    img_size = _number(raw["img_size"], "img_size", path)
    # timm evaluates some models at several input sizes: a row is a (model, img_size) pair
    dup = pd.Series(list(zip(models, img_size))).duplicated().to_numpy() | models.eq("").to_numpy()
    if dup.any():
        first = int(np.flatnonzero(dup)[0])
        raise HarnessError(f"{path}: row {first + 2} repeats model {raw['model'].iloc[first]!r} at the same "
                           "img_size, or lacks a model name; expected one row per model and input size")
    top1, top5 = _number(raw["top1"], "top1", path), _number(raw["top5"], "top5", path)
    for column, values in (("top1", top1), ("top5", top5)):
        outside = ~((values >= 0) & (values <= 100))
        if outside.any():
            first = int(np.flatnonzero(outside)[0])
            raise HarnessError(f"{path}: column {column!r} row {first + 2} is {raw[column].iloc[first]!r}, "
                               "expected a percentage between 0 and 100")
    return pd.DataFrame({
        "model": models,
        "top1": top1 / 100,
        "top5": top5 / 100,
        "img_size": img_size.astype(np.int32),
        "param_count_m": _number(raw["param_count"], "param_count", path),
        "crop_pct": _number(raw["crop_pct"], "crop_pct", path),
        "interpolation": raw["interpolation"].str.strip(),
    })


def external_runs(store: Store) -> list[dict]:
    return [m for m in store.list_runs("complete") if m.get("kind") == EXTERNAL_KIND]


def import_table(store: Store, path: Path, name: str, suite: str, label_set: str, rows: pd.DataFrame,
                 **meta) -> str:
    """Store aggregate rows as an external run; a file already stored on the dataset is reused, not repeated."""
    suite_obj = _suite(suite)
    existing = stored_import(store, suite_obj.dataset, path, say=lambda msg: None)  # build-store reruns quietly
    if existing:
        return existing
    digest = sha256_file(path)
    n = suite_obj.size  # a test set whose images realbench does not ship: its published size
    if n is None:
        suite_obj.ensure_label_sets(store, [label_set])
        n = int(store.sql("SELECT count(*) AS n FROM labels WHERE label_set = ? AND len(labels) > 0",
                          [label_set])["n"][0])
    run_meta = {
        "name": name, "model": f"{len(rows)} models", "suite": suite, "dataset": suite_obj.dataset,
        "kind": EXTERNAL_KIND, "label_set": label_set, "n_samples_per_model": n,
        "source_file": path.name, "source_sha256": digest, **meta,
    }
    return store.write_run(run_meta, {"aggregates": rows})


def import_timm_file(store: Store, path: Path, suite: str | None = None, name: str | None = None,
                     **meta) -> str:
    """Import any table in timm's results format as an external run on the suite it measures.

    ``suite`` defaults from timm's file name (``results-imagenet-a.csv`` -> ``imagenet-a``, see
    ``TIMM_FILE_SUITES``); the label set is the suite's default.
    """
    path = Path(path)
    if suite is None:
        if path.name not in TIMM_FILE_SUITES:
            raise HarnessError(f"{path}: cannot tell which test set a file named {path.name!r} measures; pass the "
                               f"suite (timm's names: {', '.join(TIMM_FILE_SUITES)})")
        suite, label_set = TIMM_FILE_SUITES[path.name]
    else:
        label_set = _suite(suite).default_label_set
    name = name or "timm-" + path.stem.removeprefix("results-")
    return import_table(store, path, name, suite, label_set, parse_timm_results(path), **meta)


def import_timm(store: Store) -> list[str]:
    """Import timm's result tables (original, ReaL, ImageNetV2, Sketch) from the ``timm-results`` manifest."""
    manifest = load_manifest(TIMM_DATASET)
    run_ids = []
    for table in TIMM_TABLES:
        path = resolve_file(TIMM_DATASET, table.path)
        entry = manifest.entry(table.path)
        run_ids.append(import_table(
            store, path, table.name, table.suite, table.label_set, parse_timm_results(path),
            source_url=entry.url, publisher="huggingface/pytorch-image-models validate.py"))
    return run_ids


def _suite(name: str):
    from harness.suites import get_suite

    return get_suite(name)


def load_aggregates(store: Store, run_id: str) -> pd.DataFrame:
    return store.sql("SELECT model, top1, top5, img_size, param_count_m, crop_pct, interpolation "
                     "FROM aggregates WHERE run_id = ? ORDER BY model, img_size", [run_id])
