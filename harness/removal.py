"""Removing a run or a label set from a store, undoably (``harness rm``).

Nothing is deleted: the folder is moved under ``removed/`` with the same relative path and a time
stamp (as ``check --repair`` moves damage under ``damaged/``), the catalog is rebuilt, and
``harness rm --undo PATH`` puts it back where it was. A run being written (its folder lock held by
a live writer) and a label set being replaced (the label-set lock held) are refused.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import HarnessError
from .store import FolderLock, Store

REMOVED = "removed"
_STAMP = re.compile(r"^(.+)\.\d{8}T\d{6}(?:-[0-9a-f]{6})?$")


def remove_run(store: Store, run_id: str) -> Path:
    """Move run ``run_id`` (an id, not a name) aside; returns where it went."""
    store.run_meta(run_id)  # raises, naming the latest runs, when there is no such run
    return _move_aside(store, store.lock_run(run_id), store.run_dir(run_id),
                       f"run {run_id} is being written by a live process; stop it (or let it finish) before "
                       "removing the run")


def remove_label_set(store: Store, name: str) -> Path:
    """Move label set ``name`` aside; returns where it went. Its runs stay; scoring against it is refused until
    it is back (shipped label sets are made again from their source when next needed)."""
    store.label_set_meta(name)  # raises for a missing one, with the known names
    return _move_aside(store, FolderLock(store.root / "labelsets"), store.label_set_dir(name),
                       f"label set {name!r} is being replaced by a live process; try again when it is done")


def _move_aside(store: Store, lock: FolderLock, folder: Path, busy: str) -> Path:
    """Move ``folder`` under removed/ while holding ``lock`` (refused with ``busy`` when a live process holds
    it), then rebuild the catalog; where it went."""
    if not lock.try_acquire():
        lock.release()
        raise HarnessError(busy)
    try:
        target = store.set_aside(folder, under=REMOVED)
    finally:
        lock.release()
    store.refresh_catalog()
    return target


def restore(store: Store, path: str | os.PathLike) -> Path:
    """Put back a run or label set that :func:`remove_run` or :func:`remove_label_set` moved to ``path``."""
    path = Path(path)
    removed = (store.root / REMOVED).resolve()
    try:
        relative = path.resolve().relative_to(removed)
    except ValueError:
        raise HarnessError(f"{path} is not under {removed}; expected a path that harness rm printed") from None
    match = _STAMP.match(relative.name)
    if not path.is_dir() or not match or relative.parent.name not in ("runs", "labelsets"):
        raise HarnessError(f"{path} is not a run or label set that harness rm moved aside; expected "
                           f"{removed}/runs/run_id=<id>.<time> or {removed}/labelsets/label_set=<name>.<time>")
    target = store.root / relative.parent / match.group(1)
    if target.exists():
        raise HarnessError(f"{target} exists again (imported or made anew since); remove that one first, "
                           f"or keep both by leaving {path} where it is")
    os.replace(path, target)
    store.refresh_catalog()
    return target
