"""Rebuild the store behind the committed leaderboards from the shipped data alone.

Registers the ImageNet label sets, imports the five real prediction files of the
``imagenet-predictions`` manifest, timm's two result tables, the shipped CIFAR-10 / CIFAR-10.1
prediction files (``harness.cifar``) and registers the CIFAR-10H ReaL-style label set
``cifar10h-real``. Idempotent: a run already imported from a file with the same sha256 is kept,
not imported again, and a label set built the same way is not rewritten.
"""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from harness.data import load_manifest, resolve_file, sha256_file
from harness.store import Store
from harness.suites import get_suite

from .external import import_timm

PREDICTIONS_DATASET = "imagenet-predictions"
CIFAR10H_REAL = "cifar10h-real"
CIFAR10H_MIN_SHARE = 0.2  # a class is a valid label when at least this share of CIFAR-10H's ~51 annotators chose it


def import_shipped_predictions(store: Store, quiet: bool = True) -> list[str]:
    suite = get_suite("imagenet")
    suite.ensure_label_sets(store)
    existing = {(m.get("name"), m.get("source_sha256")): m["run_id"] for m in store.list_runs("complete")}
    run_ids = []
    for entry in tqdm(load_manifest(PREDICTIONS_DATASET).files, desc="ImageNet predictions", unit="file",
                      disable=quiet):
        path = resolve_file(PREDICTIONS_DATASET, entry.path)
        name = Path(entry.path).stem
        known = existing.get((name, sha256_file(path)))
        run_ids.append(known or suite.import_predictions(store, path, name))
    return run_ids


def register_cifar10h_real(store: Store, min_share: float = CIFAR10H_MIN_SHARE, name: str = CIFAR10H_REAL) -> dict:
    """The ReaL-style CIFAR-10H label set: every class chosen by at least ``min_share`` of an image's
    annotators is correct, weighted by its share (``relabel.cifar.label_sets``). The one definition
    behind ``cifar10h-real`` for build-store and the CIFAR study; kept as it is when the store already
    holds it built the same way, else (re)registered."""
    from harness.cifar import CIFAR10_TEST
    from relabel.cifar import cifar10h_counts, label_sets, label_sets_description
    from relabel.labelsets import label_set_frame, register_label_set

    description = label_sets_description(min_share)
    provenance = {"min_share": min_share, "source": "cifar/cifar10h-counts.npy"}
    if store.has_label_set(name):
        old = store.label_set_meta(name)
        if old.get("description") == description and all(old.get(k) == v for k, v in provenance.items()):
            return old
    labels, weights = label_sets(cifar10h_counts(), min_share)
    return register_label_set(store, name, label_set_frame([str(i) for i in range(len(labels))], labels, weights),
                              dataset=CIFAR10_TEST, description=description, provenance=provenance, replace=True)


def import_shipped_cifar(store: Store, quiet: bool = True) -> list[str]:
    from harness.cifar import import_shipped

    run_ids = import_shipped(store, quiet=quiet)
    for suite in ("cifar10", "cifar10.1-v4", "cifar10.1-v6"):
        get_suite(suite).ensure_label_sets(store)
    register_cifar10h_real(store)
    return sorted(run_ids.values())


def build_store(store: Store, cifar: bool = True, quiet: bool = True) -> dict[str, list[str]]:
    done = {"predictions": import_shipped_predictions(store, quiet)}
    if not quiet:
        print("timm result tables ...", flush=True)
    done["external"] = import_timm(store)
    if cifar:
        done["cifar"] = import_shipped_cifar(store, quiet)
    return done
