"""Rebuild the store behind the committed leaderboards from the shipped data alone.

Registers the ImageNet label sets, imports the five real prediction files of the
``imagenet-predictions`` manifest, the shipped CIFAR-10 / CIFAR-10.1 prediction files
(``harness.cifar``) and timm's two result tables. Idempotent: a run already imported
from a file with the same sha256 is kept, not imported again.
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


def import_shipped_cifar(store: Store) -> list[str]:
    from harness.cifar import import_shipped

    run_ids = import_shipped(store)
    for suite in ("cifar10", "cifar10.1-v4", "cifar10.1-v6"):
        get_suite(suite).ensure_label_sets(store)
    return sorted(run_ids.values())


def build_store(store: Store, cifar: bool = True) -> dict[str, list[str]]:
    done = {"predictions": import_shipped_predictions(store), "external": import_timm(store)}
    if cifar:
        done["cifar"] = import_shipped_cifar(store)
    return done
