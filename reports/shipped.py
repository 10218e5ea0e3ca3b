"""Rebuild the store behind the committed leaderboards from the shipped data alone.

Registers the ImageNet label sets, imports the five real prediction files of the
``imagenet-predictions`` manifest and timm's two result tables. Idempotent: a run
already imported from a file with the same sha256 is kept, not imported again.
"""
from __future__ import annotations

from pathlib import Path

from harness.data import load_manifest, resolve_file, sha256_file
from harness.store import Store
from harness.suites import get_suite

from .external import import_timm

PREDICTIONS_DATASET = "imagenet-predictions"


def import_shipped_predictions(store: Store) -> list[str]:
    suite = get_suite("imagenet")
    suite.ensure_label_sets(store)
    existing = {(m.get("name"), m.get("source_sha256")): m["run_id"] for m in store.list_runs("complete")}
    run_ids = []
    for entry in load_manifest(PREDICTIONS_DATASET).files:
        path = resolve_file(PREDICTIONS_DATASET, entry.path)
        name = Path(entry.path).stem
        known = existing.get((name, sha256_file(path)))
        run_ids.append(known or suite.import_predictions(store, path, name))
    return run_ids


def build_store(store: Store) -> dict[str, list[str]]:
    return {"predictions": import_shipped_predictions(store), "external": import_timm(store)}
