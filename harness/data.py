"""Datasets described by manifests: fetch, verify (sha256), cache, or resolve from mirror folders.

A manifest is ``data_manifests/<dataset>.json``::

    {"dataset": "imagenet-real", "description": "...", "license": "...", "source": "...",
     "files": [{"path": "imagenet/real.json", "url": "https://...", "sha256": "...", "size": 123}]}

``path`` is the file's place in a mirror folder laid out like ``../shared/data``.
A file resolves, in order, from each folder in ``REALBENCH_MIRROR`` (``os.pathsep``
separated), then from the download cache (``REALBENCH_CACHE``, else the user cache
directory); ``fetch`` downloads missing files into the cache. Every resolved file is
checked against its size and sha256 (the check is remembered per path, size and mtime,
so large folders are hashed once).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .errors import HarnessError

MIRROR_ENV = "REALBENCH_MIRROR"
CACHE_ENV = "REALBENCH_CACHE"
MANIFEST_DIR = Path(__file__).resolve().parent.parent / "data_manifests"


@dataclass(frozen=True)
class FileEntry:
    path: str
    url: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Archive:
    """A published archive of a dataset that realbench does not fetch (its images are run with --data-dir)."""
    url: str
    sha256: str | None  # as published (None where no checksum is published)
    size: int | None
    folder: str  # the folder the archive extracts to: the --data-dir to pass
    images: int
    checksum_source: str = ""


@dataclass(frozen=True)
class Manifest:
    dataset: str
    description: str
    license: str
    source: str
    files: tuple[FileEntry, ...]
    manifest_path: Path
    archives: tuple[Archive, ...] = ()

    @property
    def sha256(self) -> str:
        """Hash of the manifest file itself, recorded with every run that uses the dataset."""
        return sha256_file(self.manifest_path)

    def entry(self, path: str) -> FileEntry:
        for e in self.files:
            if e.path == path:
                return e
        raise HarnessError(f"file {path!r} is not listed in manifest {self.manifest_path}")

    def under(self, prefix: str) -> list[FileEntry]:
        prefix = prefix.rstrip("/") + "/"
        return [e for e in self.files if e.path.startswith(prefix)]


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("realbench")) / "data"


def mirror_dirs() -> list[Path]:
    env = os.environ.get(MIRROR_ENV, "")
    return [Path(p).expanduser() for p in env.split(os.pathsep) if p]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def manifest_names() -> list[str]:
    return sorted(p.stem for p in MANIFEST_DIR.glob("*.json"))


def load_manifest(dataset: str) -> Manifest:
    path = MANIFEST_DIR / f"{dataset}.json"
    if not path.exists():
        raise HarnessError(
            f"no data manifest {dataset!r} in {MANIFEST_DIR}; known: {', '.join(manifest_names())}")
    try:
        raw = json.loads(path.read_text())
        files = tuple(FileEntry(f["path"], f["url"], f["sha256"], int(f["size"])) for f in raw["files"])
        archives = tuple(Archive(a["url"], a.get("sha256"), a.get("size"), a["folder"], int(a["images"]),
                                 a.get("checksum_source", "")) for a in raw.get("archives", ()))
        if not files and not archives:
            raise ValueError("it lists neither files nor archives")
        return Manifest(raw["dataset"], raw.get("description", ""), raw["license"],
                        raw.get("source", ""), files, path, archives)
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise HarnessError(f"manifest {path} is malformed: {exc!r}") from None


class _VerifiedMemo:
    """Remembers (size, mtime_ns) of files whose sha256 matched, so they are hashed once."""

    def __init__(self) -> None:
        self.path = cache_dir() / ".verified.json"
        try:
            self.data: dict = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            self.data = {}
        self.dirty = False

    def ok(self, file: Path, entry: FileEntry, st: os.stat_result | None = None) -> bool:
        st = st or os.stat(file)
        return self.data.get(os.path.abspath(file)) == [st.st_size, st.st_mtime_ns, entry.sha256]

    def remember(self, file: Path, entry: FileEntry) -> None:
        st = os.stat(file)
        self.data[os.path.abspath(file)] = [st.st_size, st.st_mtime_ns, entry.sha256]
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".verified.")
            with os.fdopen(fd, "w") as f:
                json.dump(self.data, f)
            os.replace(tmp, self.path)
        except OSError:
            pass  # the memo is only a speed-up


def verify_file(file: Path, entry: FileEntry, memo: _VerifiedMemo | None = None) -> None:
    if memo is not None and memo.ok(file, entry):
        return
    size = file.stat().st_size
    if size != entry.size:
        raise HarnessError(
            f"{file} has {size} bytes but the manifest expects {entry.size} ({entry.path}); "
            f"the file is truncated or not the published one: delete it and run "
            f"`python -m harness data fetch`, or fix the mirror")
    digest = sha256_file(file)
    if digest != entry.sha256:
        raise HarnessError(
            f"{file} has sha256 {digest} but the manifest expects {entry.sha256} ({entry.path}); "
            f"the file is corrupt or not the published one: delete it and run "
            f"`python -m harness data fetch`, or fix the mirror")
    if memo is not None:
        memo.remember(file, entry)


def _search_roots() -> list[str]:
    """The folders a file may lie in, in order: each mirror, then the download cache."""
    return [os.path.abspath(root) for root in [*mirror_dirs(), cache_dir()]]


def _locate(entry: FileEntry, roots: list[str] | None = None) -> tuple[str, str, os.stat_result] | None:
    """(root, file, its stat) of the first folder that holds the entry as a regular file."""
    for root in roots if roots is not None else _search_roots():
        candidate = os.path.join(root, entry.path)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            return root, candidate, st
    return None


def resolve(dataset: str, paths: Iterable[str] | None = None, download: bool = True,
            progress: bool = False) -> Path:
    """Make the dataset's files (or the named ones) available and verified; return the root folder.

    The root folder holds each file at its manifest ``path``. When every file lies in one
    mirror, that mirror is the root; otherwise the files are gathered in the cache.
    """
    manifest = load_manifest(dataset)
    if not manifest.files:
        a = manifest.archives[0]
        raise HarnessError(
            f"dataset {dataset!r} is not fetched by realbench: download {a.url} (sha256 {a.sha256 or 'unpublished'}), "
            f"extract it and pass --data-dir <where>/{a.folder}")
    entries = list(manifest.files) if paths is None else [manifest.entry(p) for p in paths]
    memo = _VerifiedMemo()
    search = _search_roots()  # once, not per file: a dataset may list tens of thousands
    roots: set[str] = set()
    missing: list[FileEntry] = []
    try:
        for entry in entries:
            found = _locate(entry, search)
            if found is None:
                missing.append(entry)
                continue
            root, file, st = found
            if not memo.ok(file, entry, st):
                verify_file(Path(file), entry, memo)
            roots.add(root)
        if missing:
            if not download:
                raise HarnessError(_missing_message(dataset, missing))
            fetch_entries(missing, memo, progress=progress)
            roots.add(search[-1])
    finally:
        memo.save()
    if len(roots) == 1:
        return Path(roots.pop())
    # Files are split between a mirror and the cache: link the mirror's into the cache.
    for entry in entries:
        target = cache_dir() / entry.path
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(Path(_locate(entry, search)[1]).resolve(), target)
    return cache_dir()


def resolve_file(dataset: str, path: str, download: bool = True) -> Path:
    """One verified file of a dataset, e.g. ``resolve_file("imagenet-real", "imagenet/real.json")``."""
    return resolve(dataset, [path], download=download) / path


def _missing_message(dataset: str, missing: list[FileEntry]) -> str:
    where = ", ".join(str(m) for m in mirror_dirs()) or f"no mirror ({MIRROR_ENV} is unset)"
    return (f"{len(missing)} file(s) of dataset {dataset!r} are not available, first: {missing[0].path} "
            f"(looked in {where} and the cache {cache_dir()}); run `python -m harness data fetch {dataset}` "
            f"with internet, or set {MIRROR_ENV} to a folder laid out like ../shared/data")


def fetch_entries(entries: list[FileEntry], memo: _VerifiedMemo | None = None,
                  progress: bool = False) -> None:
    from tqdm import tqdm

    root = cache_dir()
    bar = tqdm(entries, desc="fetch", unit="file", disable=not progress, file=sys.stderr)
    for entry in bar:
        target = root / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    with urllib.request.urlopen(entry.url, timeout=60) as response:
                        shutil.copyfileobj(response, out)
                except OSError as exc:
                    raise HarnessError(
                        f"could not download {entry.path} from {entry.url}: {exc}; "
                        f"offline, set {MIRROR_ENV} to a folder that holds it") from None
            verify_file(Path(tmp), entry)
            os.replace(tmp, target)
            if memo is not None:
                memo.remember(target, entry)
        finally:
            Path(tmp).unlink(missing_ok=True)


def verify(dataset: str) -> tuple[int, list[str]]:
    """Check every file that is present; returns (files ok, problems)."""
    manifest = load_manifest(dataset)
    ok, problems, search = 0, [], _search_roots()
    for entry in manifest.files:
        found = _locate(entry, search)
        if found is None:
            problems.append(f"missing: {entry.path}")
            continue
        try:
            verify_file(Path(found[1]), entry)
            ok += 1
        except HarnessError as exc:
            problems.append(str(exc))
    return ok, problems


def make_manifest(dataset: str, root: Path, rel_paths: Iterable[str], url_for, license: str,
                  source: str, description: str) -> dict:
    """Describe files under a mirror ``root`` (a development tool for writing manifests)."""
    files = []
    for rel in sorted(rel_paths):
        p = root / rel
        files.append({"path": rel, "url": url_for(rel), "sha256": sha256_file(p), "size": p.stat().st_size})
    return {"dataset": dataset, "description": description, "license": license, "source": source,
            "files": files}
