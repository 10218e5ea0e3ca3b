"""The suite registry: a suite is a name, resolved lazily to an object in its own module.

Listing suites imports nothing heavy. A suite object provides:

- ``name``, ``dataset`` (the sample space its keys live in, e.g. ``imagenet-val``),
  ``task`` (``classification``, ``detection``, ``dense-captioning``, ``temporal-detection``),
  ``description``, ``default_label_set``;
- ``ensure_label_sets(store)``: register the suite's shipped label sets in the store
  (idempotent, from data resolved through ``harness.data``);
- ``import_predictions(store, path, name, **options) -> run_id``;
- ``score(store, run_id, label_set=None) -> dict``: metrics as functions of stored rows;
  every result carries ``n``, ``label_set`` and ``suite``.
"""
from __future__ import annotations

import importlib

from .errors import HarnessError, did_you_mean

SUITES: dict[str, str] = {
    "imagenet": "harness.imagenet:IMAGENET",
    "real": "harness.imagenet:REAL",
    "imagenet-sample": "harness.imagenet:IMAGENET_SAMPLE",
    "coco": "harness.detection.suite:COCO",
    "lvis": "harness.detection.suite:LVIS",
    **{n: f"harness.cifar:{v}" for n, v in (("cifar10", "CIFAR10"), ("cifar10h", "CIFAR10H"), ("cifar10.1", "CIFAR10_1_V6"), ("cifar10.1-v4", "CIFAR10_1_V4"), ("cifar10.1-v6", "CIFAR10_1_V6"), ("cifar100", "CIFAR100"))},
    "anet-captions": "harness.activitynet.suites:ANET_CAPTIONS",
    "anet-detection": "harness.activitynet.suites:ANET_DETECTION",
    **{n: f"harness.shift:{v}" for n, v in (
        ("imagenetv2-matched-frequency", "IMAGENETV2_MATCHED_FREQUENCY"), ("imagenetv2-threshold0.7", "IMAGENETV2_THRESHOLD"),
        ("imagenetv2-top-images", "IMAGENETV2_TOP_IMAGES"), ("imagenet-sketch", "IMAGENET_SKETCH"),
        ("imagenet-a", "IMAGENET_A"), ("imagenet-r", "IMAGENET_R"), ("image-folder", "IMAGE_FOLDER"))},
}


def suite_names() -> list[str]:
    return sorted(SUITES)


def get_suite(name: str):
    try:
        target = SUITES[name]
    except KeyError:
        raise HarnessError(
            f"unknown suite {name!r}{did_you_mean(name, suite_names())} (known suites: "
            f"{', '.join(suite_names())})") from None
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)
