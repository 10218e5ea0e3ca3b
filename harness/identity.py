"""Run identity: when two runs are the same run, and which run a name stands for.

A run is a model (or an imported file) on a *dataset* — a sample space such as ``imagenet-val``.
Label sets are how a run is scored, not what it is: the suites ``imagenet`` and ``real`` share the
dataset ``imagenet-val``, so one model run on its images is scored on the original labels, on ReaL
or on any relabel, and running the same model through the other suite finds that run complete.

- A model run is identified by its :func:`fingerprint`: the dataset, the model and its weights, the
  images (folder listing), the preprocessing and precision and what is stored per sample — never
  the suite's name or the run's name.
- An import is identified by its file: the same bytes (sha256) on the same dataset are stored once,
  whatever the suite, the run name or the entry point (:func:`stored_import`).
- A name is a label people give runs, not an identity: a name that matches runs on several
  datasets is refused with the candidates listed (:func:`resolve_run`); where a name resolves to
  "the latest complete run so named on its dataset", the caller says so.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Callable


def fingerprint(config: dict) -> str:
    """A short stable digest of a run's configuration (a JSON-serialisable dict)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def stored_import(store, dataset: str, path: str | Path,
                  say: Callable[[str], None] | None = None) -> str | None:
    """The complete run that already holds this very file on ``dataset`` (same sha256), if any.

    Every importer asks this first, so importing a file again (through another suite of the same
    dataset, under another name, from the CLI or from Python) stores nothing and names the run that
    has it. ``say`` hears that sentence (default: standard error).
    """
    from .data import sha256_file

    path = Path(path)
    if not path.is_file():
        return None  # the importer refuses it with its own error
    digest = sha256_file(path)
    for meta in reversed(store.list_runs("complete")):
        if meta.get("dataset") == dataset and meta.get("source_sha256") == digest:
            (say or (lambda msg: print(msg, file=sys.stderr)))(
                f"{path} is already stored as run {meta['run_id']} (named {meta.get('name')!r}, same sha256 on "
                f"dataset {dataset}); nothing imported")
            return meta["run_id"]
    return None
