"""Locks and renames of the store: who holds a folder, and swapping two folders in one step.

A writer holds an exclusive ``flock`` on its folder's ``.lock`` while it writes; the kernel drops it when
the writer dies, so a lock that can be taken means nobody writes there now. A reader only asks (it needs
no write permission for that), and tidies a hidden work folder only once its writer is gone.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

ORPHAN_AGE_S = 60  # a hidden temporary this old whose writer holds no lock is an orphan


class FolderLock:
    """An exclusive lock on a folder (``flock`` on its ``.lock``), released on close or on the holder's death."""

    def __init__(self, directory: Path, name: str = ".lock"):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self.file = open(directory / name, "a+")
        except PermissionError:  # a reader without write access only asks whether a writer holds it
            self.file = open(directory / ".lock" if (directory / ".lock").exists() else directory)

    @classmethod
    def held_new(cls, directory: Path) -> "FolderLock":
        """The lock of a folder nobody else knows yet, held before its ``.lock`` becomes visible: whoever
        finds that file and can take its lock knows the writer is gone."""
        fd, tmp = tempfile.mkstemp(prefix=".lock.", dir=directory)
        os.close(fd)
        lock = cls(directory, name=Path(tmp).name)
        lock.try_acquire()
        os.replace(tmp, directory / ".lock")
        return lock

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def release(self) -> None:
        self.file.close()  # closing drops the flock

    def __enter__(self) -> "FolderLock":
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system or
    file system cannot, and the caller renames twice."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    return False


def abandoned(folder: Path, now: float) -> bool:
    """A hidden work folder whose writer is gone: its ``.lock`` (made held, FolderLock.held_new) is free, or
    it has none and is older than a minute (its writer was killed before making it)."""
    try:
        if not (folder / ".lock").exists() and now - folder.stat().st_mtime <= ORPHAN_AGE_S:
            return False  # created this instant: its writer is about to lock it
    except FileNotFoundError:
        return False
    lock = FolderLock(folder)
    try:
        return lock.try_acquire()
    finally:
        lock.release()
