"""``harness runs``, ``harness rm`` and how a command resolves a run name with what it already knows.

A run name (``--run efficientnet-lite0``) is resolved on the dataset the command implies: the dataset
of the label sets it scores against (``--labels real`` -> ``imagenet-val``), of ``--suite``, or
``--dataset``. Only a name whose complete runs lie on several datasets, with nothing to choose
between them, is refused, in one line naming the choices.
"""
from __future__ import annotations

import argparse
import fnmatch
from typing import TYPE_CHECKING

from .errors import HarnessError, did_you_mean

if TYPE_CHECKING:  # the command lines import this module; the store (duckdb) only when a command runs
    from .store import Store

RUNS_COLUMNS = ["run_id", "name", "suite", "kind", "status", "n", "coverage_%", "label_set", "metric", "score_%",
                "created_at"]


def implied_dataset(store: Store, label_sets=(), suite: str | None = None, dataset: str | None = None) -> str | None:
    """The one dataset that ``--labels``, ``--suite`` and ``--dataset`` imply, or None when they imply none;
    an error when they disagree."""
    from .suites import SUITES, list_suites

    found: dict[str, str] = {}
    if dataset:
        found[dataset] = f"--dataset {dataset}"
    if suite:
        found.setdefault(SUITES.get(suite).dataset, f"--suite {suite}")
    declared = {d.default_label_set: d.dataset for d in list_suites() if "<" not in d.dataset}
    for name in label_sets or ():
        if store.has_label_set(name):
            found.setdefault(store.label_set_meta(name).get("dataset"), f"--labels {name}")
        elif name in declared:
            found.setdefault(declared[name], f"--labels {name}")
    if len(found) > 1:
        raise HarnessError("the options name several datasets (" + "; ".join(
            f"{how}: {d}" for d, how in found.items()) + "); a run and its label sets are on one dataset")
    return next(iter(found), None)


def resolve(store: Store, ref: str, label_sets=(), suite: str | None = None, dataset: str | None = None) -> dict:
    """The run ``ref`` names (an id, or the latest complete run so named) on the dataset the options imply."""
    return store.resolve_run(ref, implied_dataset(store, label_sets, suite, dataset))


def cmd_runs(args) -> int:
    """Stored runs with what they cover and their score on the suite's default label set, in percent."""
    import pandas as pd

    from . import scoring
    from .cliargs import open_store
    from .suites import SUITES, get_suite
    from .tables import format_frame

    if args.suite:
        SUITES.get(args.suite)  # a misspelt suite is an error naming the nearest, not an empty table
    store = open_store(args)
    rows, listed = [], store.list_runs()
    for meta in listed:
        if args.suite and meta.get("suite") != args.suite:
            continue
        if args.name and not fnmatch.fnmatchcase(meta.get("name") or "", args.name):
            continue
        row = dict.fromkeys(RUNS_COLUMNS)
        row.update({k: meta.get(k) for k in ("run_id", "name", "suite", "kind", "status", "created_at")})
        if meta.get("status") == "complete":
            try:
                result = scoring.stored_or_quick(store, get_suite(meta.get("suite")), meta["run_id"])
            except HarnessError:
                result = None
            if result is not None:
                head = scoring.headline(result)
                row.update(n=head.get("n"), label_set=head.get("label_set"), metric=head.get("metric"))
                for column, key in (("coverage_%", "coverage"), ("score_%", "score")):
                    if head.get(key) is not None:
                        row[column] = round(100 * head[key], 2)
        rows.append(row)
    if args.name and not rows:
        names = sorted({m.get("name") or "" for m in listed if not args.suite or m.get("suite") == args.suite})
        raise HarnessError(f"no run named {args.name!r}" + (f" on suite {args.suite}" if args.suite else "")
                           + f" in store {store.root}{did_you_mean(args.name.strip('*?'), names)}")
    frame = pd.DataFrame(rows, columns=RUNS_COLUMNS, dtype=object)  # counts stay integers, blank where unscored
    print(format_frame(frame, args.format))
    return 0


def cmd_rm(args) -> int:
    from . import removal
    from .cliargs import open_store

    store = open_store(args)
    if args.undo:
        for path in args.targets:
            print(f"restored {removal.restore(store, path)}")
        return 0
    for ref in args.targets:
        if args.label_set:
            where = removal.remove_label_set(store, ref)
            what = f"label set {ref}"
        else:
            run_id = resolve(store, ref, dataset=args.dataset)["run_id"]
            where = removal.remove_run(store, run_id)
            what = f"run {run_id}"
        print(f"removed {what}: moved to {where} (undo: python -m harness rm --undo {where})")
    return 0


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("runs", parents=[common], help="list stored runs: n, coverage and the score (both in percent) "
                       "on the suite's default label set (COCO/LVIS/ActivityNet: once scored)")
    p.add_argument("--suite", default=None, help="only runs of this suite")
    p.add_argument("--name", default=None, help="only runs so named (wildcards: 'efficientnet*')")
    p.add_argument("--format", choices=["table", "csv", "json", "markdown"], default="table")
    p = sub.add_parser("rm", parents=[common], help="remove runs (or label sets) by moving them under removed/ "
                       "in the store; undo with --undo PATH")
    p.add_argument("targets", nargs="+", metavar="RUN", help="run ids or names (the latest complete run so named); "
                   "with --label-set, label set names; with --undo, the paths rm printed")
    p.add_argument("--label-set", action="store_true", help="the targets are label sets")
    p.add_argument("--dataset", default=None, help="a run name resolves on this dataset")
    p.add_argument("--undo", action="store_true", help="put back what rm moved to these paths")
