"""The store: Parquet files on disk, DuckDB views over them. Only this module knows the layout.

Layout of a store directory (the single source of truth)::

    runs/run_id=<id>/run.json                 run metadata (status running|complete|failed|interrupted)
    runs/run_id=<id>/<table>-<part>.parquet   per-sample rows of that run, one file per chunk
    runs/run_id=<id>/scores/<digest>.json     a stored score of that run (put_score/get_score)
    labelsets/label_set=<name>/meta.json      label set metadata
    labelsets/label_set=<name>/<table>.parquet
    classes/dataset=<name>/classes.parquet   class index -> name of a dataset (put_classes; view ``classes``)
    damaged/                                  what ``python -m harness check --repair`` moved aside
    catalog.duckdb                            views over the files, for plain DuckDB users

Every file is written to a temporary name and renamed into place, so a reader
(or a process killed with -9) never sees half a file. Only files matching
``<table>-<part>.parquet`` are read; temporary files and folders start with a dot
and no listing here ever enters them.
An import (``write_run``) is built in a hidden folder and renamed into place complete.
A label set is replaced under ``labelsets/.lock`` by exchanging the new folder with the old one in
one step (or, where the file system cannot, by two renames: the old folder aside, the new one in;
a process killed between them leaves the old one hidden, and the next ``Store`` opened puts it back).

When a run completes, its ``run.json`` records every chunk it holds (name, rows, bytes) after
checking that its keys are unique. Readers read exactly those files: a chunk copied into the
folder later is not read, and a missing or truncated chunk makes the run *damaged*: left out of
every view with a warning naming the file, while every other run reads as before
(``python -m harness check`` lists all damage, ``--repair`` moves it aside).

A run's rows are visible in the plain table views (``predictions``,
``detections``...) only once it is complete; the ``*_all`` views show the rows of unfinished
runs too. :meth:`Store.connect` builds those views (``runs=[...]`` limits them to some runs, which
is what scoring one run uses); ``catalog.duckdb`` holds the same views over file patterns so
that registering a run never rewrites it.
"""
from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from . import faults, sqlguard
from .errors import HarnessError, did_you_mean
from .storelock import ORPHAN_AGE_S, FolderLock, abandoned, exchange_paths
from .storecheck import (catalog_mismatch, catalog_outdated, check_run_names, file_problem, file_record,
                         first_unreadable_chunk, text_problem, read_label_set_json, read_run_json, unreadable_owner)

STORE_ENV = "REALBENCH_HOME"

# Known per-sample tables.  A view is created for each, empty when no file
# exists yet, so queries never fail just because nothing was stored yet.
# Tasks add theirs with register_run_table / register_label_table.
RUN_TABLES: dict[str, pa.Schema] = {
    "predictions": pa.schema([
        ("key", pa.string()),
        ("top_classes", pa.list_(pa.int32())),
        ("top_scores", pa.list_(pa.float32())),
        ("logits", pa.list_(pa.float32())),
        ("error", pa.string()),
    ]),
    # One row per detection (harness.detection): COCO/LVIS result records, geometry as columns.
    "coco_detections": pa.schema([
        ("det_index", pa.int64()),
        ("image_id", pa.int64()),
        ("category_id", pa.int64()),
        ("score", pa.float64()),
        ("bbox_x", pa.float64()),
        ("bbox_y", pa.float64()),
        ("bbox_w", pa.float64()),
        ("bbox_h", pa.float64()),
        ("area", pa.float64()),
        ("segm_counts", pa.string()),
        ("segm_height", pa.int32()),
        ("segm_width", pa.int32()),
        ("segm_polygons", pa.list_(pa.list_(pa.float64()))),
        ("keypoints", pa.list_(pa.float64())),
    ]),
    # ActivityNet Captions dense captioning: one row per predicted segment, in submission order.
    "dense_captions": pa.schema([
        ("key", pa.string()),
        ("rank", pa.int32()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("sentence", pa.string()),
    ]),
    # ActivityNet temporal detections (label set) and proposals (label null).
    "temporal_detections": pa.schema([
        ("key", pa.string()),
        ("rank", pa.int32()),
        ("label", pa.string()),
        ("score", pa.float64()),
        ("start", pa.float64()),
        ("end", pa.float64()),
    ]),
}
LABEL_TABLES: dict[str, pa.Schema] = {
    "labels": pa.schema([
        ("key", pa.string()),
        ("labels", pa.list_(pa.int32())),
        ("weights", pa.list_(pa.float32())),
    ]),
    # A test set labelled by its class folders (harness.shift): the classes of each folder; a key
    # <folder>/<file> takes its folder's (harness.score).
    "class_folders": pa.schema([
        ("folder", pa.string()),
        ("labels", pa.list_(pa.int32())),
    ]),
    # COCO/LVIS ground truth (harness.detection): images, annotations, categories.
    "coco_images": pa.schema([
        ("image_id", pa.int64()),
        ("file_name", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("neg_category_ids", pa.list_(pa.int64())),
        ("not_exhaustive_category_ids", pa.list_(pa.int64())),
    ]),
    "coco_annotations": pa.schema([
        ("ann_id", pa.int64()),
        ("image_id", pa.int64()),
        ("category_id", pa.int64()),
        ("bbox_x", pa.float64()),
        ("bbox_y", pa.float64()),
        ("bbox_w", pa.float64()),
        ("bbox_h", pa.float64()),
        ("area", pa.float64()),
        ("iscrowd", pa.int32()),
        ("segm_counts", pa.string()),
        ("segm_height", pa.int32()),
        ("segm_width", pa.int32()),
        ("segm_polygons", pa.list_(pa.list_(pa.float64()))),
        ("keypoints", pa.list_(pa.float64())),
        ("num_keypoints", pa.int32()),
    ]),
    "coco_categories": pa.schema([
        ("category_id", pa.int64()),
        ("name", pa.string()),
        ("supercategory", pa.string()),
        ("frequency", pa.string()),
        ("image_count", pa.int64()),
        ("instance_count", pa.int64()),
        ("keypoint_names", pa.list_(pa.string())),
        ("skeleton", pa.list_(pa.list_(pa.int32()))),
    ]),
    "caption_segments": pa.schema([
        ("key", pa.string()),
        ("duration", pa.float64()),
        ("idx", pa.int32()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("sentence", pa.string()),
    ]),
    "temporal_segments": pa.schema([
        ("key", pa.string()),
        ("duration", pa.float64()),
        ("idx", pa.int32()),
        ("label", pa.string()),
        ("start", pa.float64()),
        ("end", pa.float64()),
    ]),
}

# Columns whose values identify a row within one run; checked unique when a run completes.
UNIQUE_COLUMNS: dict[str, tuple[str, ...]] = {
    "predictions": ("key",),
    "coco_detections": ("det_index",),
    "dense_captions": ("key", "rank"),
    "temporal_detections": ("key", "rank"),
}


# The class names of a dataset (view ``classes``, partitioned by ``dataset``): what SQL and the app join
# class ids to. ``ident`` is the dataset's own id for the class (a synset, a COCO category id).
CLASSES_SCHEMA = pa.schema([("class_index", pa.int32()), ("name", pa.string()), ("ident", pa.string())])


def register_run_table(name: str, schema: pa.Schema, unique: tuple[str, ...] = ()) -> None:
    """Declare a per-run table: its view exists (empty) before any run holds it, and ``unique``
    names the columns that identify a row within a run."""
    if RUN_TABLES.get(name, schema) != schema:
        raise HarnessError(f"run table {name!r} is already registered with another schema")
    RUN_TABLES[name] = schema
    if unique:
        UNIQUE_COLUMNS[name] = tuple(unique)


def register_label_table(name: str, schema: pa.Schema) -> None:
    """Declare a label-set table (its view exists, empty, before any label set holds it)."""
    if LABEL_TABLES.get(name, schema) != schema:
        raise HarnessError(f"label table {name!r} is already registered with another schema")
    LABEL_TABLES[name] = schema


class StoreWarning(UserWarning):
    """Something in the store is damaged and was left out; the rest reads on."""


CHUNK_NOTES = "realbench.chunk_notes"  # Parquet key-value metadata of a chunk (RunWriter.write_chunk)
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")
_CHUNK = re.compile(r"^([A-Za-z0-9_]+)-(\d+)\.parquet$")
_LABEL_FILE = re.compile(r"^([A-Za-z0-9_]+)\.parquet$")
_DUCKDB_PATH_CHARACTERS = "?\\"


def default_store_dir() -> Path:
    env = os.environ.get(STORE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("realbench")) / "store"


def check_identifier(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SAFE_ID.fullmatch(value):  # match() takes 'a\n' (the $ before a newline)
        raise HarnessError(
            f"{what} {value!r} is not a valid name: use letters, digits, '.', '_', '+', '-' "
            "(starting with a letter or digit, at most 200 characters)"
        )
    return value


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str | os.PathLike, directory: bool = False) -> None:
    """Give a file or folder made by mkstemp/mkdtemp (0600/0700) the permissions the umask asks for,
    so that a store on a shared file system is readable by the group as ``umask`` says."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _make_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


def _disk_error(exc: OSError, path: Path) -> Exception:
    """A full disk (or quota) as one sentence naming the path; other errors unchanged."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return HarnessError(f"no space left on the device holding {path} ({exc.strerror}); nothing half-written "
                            "was kept: free some space and run the same command again")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return HarnessError(f"cannot write {path} ({exc.strerror}): reading this store works without write "
                            "access, this command writes; run it as the store's owner")
    return exc


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _make_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        follow_umask(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _disk_error(exc, path) from None
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())


def _write_parquet_tmp(directory: Path, prefix: str, table: pa.Table) -> str:
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        follow_umask(tmp)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _disk_error(exc, directory) from None
        raise
    return tmp


def atomic_write_parquet(path: Path, table: pa.Table) -> None:
    _make_dir(path.parent)
    tmp = _write_parquet_tmp(path.parent, f".{path.name}.", table)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def publish_new_parquet(directory: Path, table: str, arrow: pa.Table, first_part: int) -> Path:
    """Write ``<table>-<part>.parquet`` under the first free part number from ``first_part`` on.

    The finished temporary file is hard-linked to its name, which fails when the name exists, so
    processes writing into one run folder at once (the ranks of a sharded run) never replace each
    other's chunks, and readers never see a partial file.
    """
    _make_dir(directory)
    tmp = _write_parquet_tmp(directory, f".{table}.", arrow)
    try:
        faults.reached("parquet-written")
        part = first_part
        while True:
            path = directory / f"{table}-{part:05d}.parquet"
            try:
                os.link(tmp, path)
                faults.reached("parquet-linked")
                return path
            except FileExistsError:
                part += 1
    finally:
        Path(tmp).unlink(missing_ok=True)


def to_arrow(data: Any, schema: pa.Schema | None = None) -> pa.Table:
    """A pandas DataFrame, a dict of columns or an Arrow table, as an Arrow table.

    With a known schema, missing nullable columns are added as nulls and types are cast.
    """
    try:
        if isinstance(data, pa.Table):
            table = data
        elif isinstance(data, Mapping):
            table = pa.table(dict(data))
        else:  # pandas
            table = pa.Table.from_pandas(data, preserve_index=False)
    except UnicodeEncodeError as exc:  # a lone surrogate: text no file can hold
        raise HarnessError(f"a text value {exc.object[max(0, exc.start - 30):exc.end + 30]!r} holds a lone "
                           f"surrogate ({exc.reason}); expected text UTF-8 can store. Nothing was stored.") from None
    problem = text_problem(table, "rows to store")
    if problem:
        raise HarnessError(problem + ". Nothing was stored.")
    if schema is None:
        return table
    columns = []
    for field_ in schema:
        if field_.name in table.column_names:
            columns.append(table.column(field_.name).cast(field_.type))
        else:
            columns.append(pa.nulls(table.num_rows, field_.type))
    extra = [n for n in table.column_names if n not in schema.names]
    if extra:
        raise HarnessError(f"unexpected columns {extra} for a table with columns {schema.names}")
    return pa.table(columns, schema=schema)


def sql_string(text: str | os.PathLike) -> str:
    """A SQL string literal: any path (quotes, brackets) pasted into SQL text goes through here."""
    return "'" + str(text).replace("'", "''") + "'"


def _visible_entries(folder: Path, prefix: str) -> list[os.DirEntry]:
    """Entries of ``folder`` whose name starts with ``prefix`` (never a hidden work folder), sorted."""
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if e.name.startswith(prefix)), key=lambda e: e.name)
    except FileNotFoundError:
        return []


def _chunk_files(directory: Path, table: str | None = None) -> dict[str, list[Path]]:
    """``<table>-<part>.parquet`` files of a run folder, per table in part order."""
    out: dict[str, list[tuple[int, Path]]] = {}
    try:
        with os.scandir(directory) as it:
            for e in it:
                m = _CHUNK.match(e.name)
                if m and (table is None or m.group(1) == table):
                    out.setdefault(m.group(1), []).append((int(m.group(2)), Path(e.path)))
    except FileNotFoundError:
        return {}
    return {t: [p for _, p in sorted(parts)] for t, parts in out.items()}


def _parquet_rows(path: Path) -> int:
    """Rows in a Parquet file by its footer; a truncated or foreign file raises HarnessError naming it."""
    try:
        return pq.read_metadata(path).num_rows
    except FileNotFoundError:
        raise HarnessError(f"{path} is missing") from None
    except (OSError, pa.ArrowException) as exc:
        raise HarnessError(f"{path} is not a whole Parquet file ({exc})") from None


def _read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise HarnessError(f"{path} is missing") from None
    except (OSError, pa.ArrowException) as exc:
        raise HarnessError(f"{path} cannot be read as Parquet ({exc})") from None


def _duplicates(table_name: str, tables: Iterable[pa.Table]) -> str | None:
    """A sentence about rows that share their identifying columns, or None."""
    unique = UNIQUE_COLUMNS.get(table_name)
    if not unique:
        return None
    tables = [t.select(list(unique)) for t in tables if all(c in t.column_names for c in unique)]
    if not tables:
        return None
    whole = pa.concat_tables(tables)
    counts = whole.group_by(list(unique)).aggregate([([], "count_all")])
    twice = counts.filter(pa.compute.greater(counts.column("count_all"), 1))
    if twice.num_rows == 0:
        return None
    first = {c: twice.column(c)[0].as_py() for c in unique}
    return (f"{twice.num_rows:,} {'/'.join(unique)} values of table {table_name} occur more than once "
            f"(first: {first})")


def _manifest(directory: Path, run_id: str) -> dict[str, dict]:
    """The chunks of a finished run folder (name -> rows, bytes), after checking footers and unique keys."""
    files: dict[str, dict] = {}
    for table, paths in _chunk_files(directory).items():
        for path in paths:
            files[path.name] = {"rows": _parquet_rows(path), "bytes": path.stat().st_size}
        unique = UNIQUE_COLUMNS.get(table)
        if unique:
            problem = _duplicates(table, (_read_parquet(p, list(unique)) for p in paths))
            if problem:
                raise HarnessError(f"run {run_id}: {problem}; a run holds each row once")
    return files


def _rows_per_table(files: Mapping[str, dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, info in files.items():
        table = _CHUNK.match(name).group(1)
        out[table] = out.get(table, 0) + int(info["rows"])
    return out


@dataclass
class RunEntry:
    """One run folder as read now: its metadata, the chunk files readers read, and what is wrong."""

    run_id: str
    meta: dict | None
    files: dict[str, list[Path]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return (self.meta or {}).get("status", "unknown")

    @property
    def damaged(self) -> bool:
        return bool(self.problems)


@dataclass
class LabelSetEntry:
    name: str
    meta: dict | None
    files: dict[str, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class RunWriter:
    """Writes one run chunk by chunk; the run becomes visible when finished."""

    store: "Store"
    run_id: str
    meta: dict

    @property
    def dir(self) -> Path:
        return self.store.run_dir(self.run_id)

    def chunk_files(self, table: str = "predictions") -> list[Path]:
        return _chunk_files(self.dir, table).get(table, [])

    def next_part(self, table: str) -> int:
        parts = [int(_CHUNK.match(p.name).group(2)) for p in self.chunk_files(table)]
        return max(parts, default=-1) + 1

    def write_chunk(self, data: Any, table: str = "predictions", notes: dict | None = None) -> Path:
        """Publish one chunk of rows. ``notes`` (a JSON object) travel in the same file, so a chunk can say
        which samples it covers even when some of them have no row (an image without detections)."""
        arrow = to_arrow(data, RUN_TABLES.get(table))
        if notes is not None:
            arrow = arrow.replace_schema_metadata({CHUNK_NOTES: json.dumps(notes)})
        path = publish_new_parquet(self.dir, table, arrow, self.next_part(table))
        faults.reached("chunk-stored")
        return path

    def read_table(self, table: str = "predictions", columns: list[str] | None = None) -> pa.Table:
        """The rows stored so far (chunks in part order). A chunk that no longer reads whole (a disk
        fault, a copy cut short) is moved aside with a warning, so that resuming predicts it again."""
        parts = []
        for path in self.chunk_files(table):
            try:
                parts.append(_read_parquet(path, columns))
            except HarnessError as exc:
                aside = self.store.set_aside(path)
                warnings.warn(f"run {self.run_id}: {exc}; moved it to {aside}, its rows are predicted again",
                              StoreWarning, stacklevel=2)
        if not parts:
            schema = RUN_TABLES.get(table)
            if schema is None:
                return pa.table({c: pa.array([], pa.string()) for c in columns or []})
            schema = pa.schema([schema.field(c) for c in columns]) if columns else schema
            return schema.empty_table()
        return pa.concat_tables(parts)

    def chunk_notes(self, table: str) -> list[dict]:
        """The ``notes`` of every chunk of ``table`` written so far, in part order (``{}`` for none)."""
        notes = []
        for path in self.chunk_files(table):
            raw = (pq.read_schema(path).metadata or {}).get(CHUNK_NOTES.encode())
            notes.append(json.loads(raw) if raw else {})
        return notes

    def stored_keys(self, table: str = "predictions") -> set[str]:
        """Keys already stored by earlier chunks (for resuming a killed run)."""
        return set(self.read_table(table, ["key"]).column("key").to_pylist())

    def remove_stale_temp(self) -> None:
        """Temporary files of a process killed mid-write (call with the run's lock held)."""
        for e in _visible_entries(self.dir, "."):
            if e.name.endswith(".tmp"):
                Path(e.path).unlink(missing_ok=True)

    def update(self, **fields: Any) -> None:
        self.meta.update(fields)
        atomic_write_json(self.dir / "run.json", self.meta)

    def finish(self, **fields: Any) -> str:
        files = _manifest(self.dir, self.run_id)
        fields = {**fields, "n_rows": _rows_per_table(files)}  # what the files hold, checked by every reader
        self.update(status="complete", finished_at=now_iso(), files=files, **fields)
        self.store.register_run(self.run_id)
        return self.run_id

    def fail(self, error: str, **fields: Any) -> None:
        """Record the run as failed. On a full disk (no room even for that) the run stays as it was,
        resumable, and the error says so, naming the folder."""
        try:
            self.update(status="failed", error=error, finished_at=now_iso(), **fields)
        except (HarnessError, OSError) as exc:
            raise HarnessError(f"run {self.run_id} could not be marked failed ({exc}); it stays resumable in "
                               f"{self.dir}: run the same command again once there is space") from None
        self.store.register_run(self.run_id)


class Store:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root else default_store_dir()
        unusable = sorted({c for c in str(self.root.absolute()) if c in _DUCKDB_PATH_CHARACTERS})
        if unusable:  # DuckDB reads '\\' as a folder separator and cuts a database path at '?'
            raise HarnessError(f"cannot use {self.root} as a store: its path holds {' and '.join(map(repr, unusable))}, "
                               "which DuckDB cannot open files under; choose a folder without them")
        try:
            for folder in (self.root, self.root / "runs", self.root / "labelsets"):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HarnessError(f"cannot use {self.root} as a store: {exc.strerror}") from None
        self._created: list[tuple[str, str]] | None = None  # see rollback_on_error
        self._importing = False  # see import_lock
        self._unreadable: dict[tuple[str, str], str] = {}  # ("run", id) -> a read that failed in this process
        self.recover()
        if os.access(self.root, os.W_OK) and catalog_outdated(self.root, self._catalog_state()):
            try:
                self.refresh_catalog()
            except (OSError, HarnessError):
                pass  # a full disk: the catalog stays as it was; python -m harness check says so

    def recover(self) -> None:
        """Tidy what writers killed midway left behind: a label set set aside and never replaced goes
        back into place, and hidden work folders and temporary files whose writer is gone are removed."""
        if not os.access(self.root / "runs", os.W_OK):
            return  # a reader without write access tidies nothing (python -m harness check still reports)
        now = time.time()
        for e in _visible_entries(self.root / "runs", ".run_id="):
            # An import's folder is locked by its writer; the age keeps off a folder created this instant,
            # before its writer could lock it.
            try:
                old = e.is_dir() and now - e.stat().st_mtime > ORPHAN_AGE_S
            except FileNotFoundError:
                continue
            if old:
                lock = FolderLock(Path(e.path))
                if lock.try_acquire():
                    shutil.rmtree(e.path, ignore_errors=True)
                lock.release()
        for e in _visible_entries(self.root, ".catalog."):  # a catalog rebuild killed midway
            try:
                if now - e.stat().st_mtime > ORPHAN_AGE_S:
                    Path(e.path).unlink(missing_ok=True)
            except FileNotFoundError:
                pass
        base = self.root / "labelsets"
        hidden = [Path(e.path) for e in _visible_entries(base, ".label_set=") if e.is_dir()]
        if not hidden:
            return
        lock = FolderLock(base)
        if not lock.try_acquire():
            lock.release()
            return  # a writer is at work and tidies up itself
        try:
            for folder in hidden:
                aside = re.fullmatch(r"\.(label_set=.+)\.old-[0-9a-f]{6}", folder.name)
                if aside and not (base / aside.group(1)).exists():
                    os.replace(folder, base / aside.group(1))  # the new version never landed
                elif aside or abandoned(folder, now):  # a new version being built is its writer's
                    shutil.rmtree(folder, ignore_errors=True)
        finally:
            lock.release()

    @contextmanager
    def rollback_on_error(self) -> Iterator[None]:
        """Runs and label sets stored inside the block are removed again if the block raises: a failed
        import leaves the store as it was, shipped label sets included."""
        if self._created is not None:
            yield
            return
        self._created = []
        try:
            yield
        except BaseException:
            for kind, name in reversed(self._created):
                if kind == "run":
                    shutil.rmtree(self.run_dir(name), ignore_errors=True)
                else:
                    with FolderLock(self.root / "labelsets"):
                        aside = self.root / "labelsets" / f".label_set={name}.old-{secrets.token_hex(3)}"
                        if self.label_set_dir(name).exists():
                            os.replace(self.label_set_dir(name), aside)
                            shutil.rmtree(aside, ignore_errors=True)
            raise
        finally:
            self._created = None

    def _note_created(self, kind: str, name: str) -> None:
        if self._created is not None:
            self._created.append((kind, name))

    @contextmanager
    def import_lock(self) -> Iterator[None]:
        """Held around an import's check-and-store, so that one file imported by several processes at once is
        stored once (one sha256, one run). Nested use in one Store holds it once."""
        if self._importing:
            yield
            return
        fd = os.open(self.root / "runs", os.O_RDONLY)  # the runs folder itself: no lock file is left behind
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._importing = True
            yield
        finally:
            self._importing = False
            os.close(fd)

    def set_aside(self, path: Path, under: str = "damaged") -> Path:
        """Move a damaged file or folder under ``damaged/`` (same relative path, time-stamped); never deletes.
        ``under="removed"`` is what ``harness rm`` moves (harness.removal)."""
        relative = Path(path).resolve().relative_to(self.root.resolve())
        target = self.root / under / relative.parent / f"{relative.name}.{time.strftime('%Y%m%dT%H%M%S')}"
        if target.exists():  # twice in one second
            target = target.with_name(f"{target.name}-{secrets.token_hex(3)}")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        return target

    # ----- runs -------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / f"run_id={run_id}"

    def run_exists(self, run_id: str) -> bool:
        return (self.run_dir(run_id) / "run.json").exists()

    def lock_run(self, run_id: str) -> FolderLock:
        """The (not yet acquired) lock of a run's folder: held by whoever writes into the run."""
        return FolderLock(self.run_dir(run_id))

    def new_run_id(self, name: str) -> str:
        base = re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-.") or "run"
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        return f"{base[:120]}-{stamp}-{secrets.token_hex(3)}"

    def begin_run(self, meta: dict, run_id: str | None = None) -> RunWriter:
        """Start (or, with the id of an unfinished run, resume) a run."""
        check_run_names(meta)
        run_id = check_identifier(run_id or self.new_run_id(meta.get("name", "run")), "run id")
        directory = self.run_dir(run_id)
        if (directory / "run.json").exists():
            old = read_run_json(directory / "run.json", run_id)
            if old.get("status") == "complete":
                raise HarnessError(f"run {run_id} is already complete in {self.root}")
            meta = {**old, **meta, "resumed_at": now_iso()}
        meta = {**meta, "run_id": run_id, "status": "running"}
        meta.setdefault("created_at", now_iso())
        writer = RunWriter(self, run_id, meta)
        writer.update()
        self._note_created("run", run_id)
        return writer

    def write_run(self, meta: dict, tables: Mapping[str, Any]) -> str:
        """Store a whole run at once (imports). Returns its run id.

        The run is built in a hidden folder and renamed into place complete: a process killed midway
        leaves no run, only a hidden folder that a later :meth:`recover` removes.
        """
        check_run_names(meta)
        arrow = {name: to_arrow(data, RUN_TABLES.get(name)) for name, data in tables.items()}
        run_id = check_identifier(self.new_run_id(meta.get("name", "run")), "run id")
        final = self.run_dir(run_id)
        try:
            work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        except OSError as exc:
            raise _disk_error(exc, final.parent) from None
        lock = FolderLock(work)
        lock.try_acquire()  # a folder nobody else knows yet
        try:
            follow_umask(work, directory=True)
            for name, table in arrow.items():
                publish_new_parquet(work, name, table, 0)
            files = _manifest(work, run_id)
            stamp = now_iso()
            atomic_write_json(work / "run.json", {
                "created_at": stamp, **meta, "run_id": run_id, "status": "complete", "finished_at": stamp,
                "files": files, "n_rows": {name: t.num_rows for name, t in arrow.items()}})
            os.rename(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        finally:
            lock.release()
        self._note_created("run", run_id)
        self.register_run(run_id)
        return run_id

    def run_entry(self, run_id: str, footers: bool = False) -> RunEntry:
        """A run folder as it reads now. A complete run reads the chunks its run.json lists (checked by
        size, and with ``footers`` by their Parquet footers' row counts); an unfinished run reads the
        chunks present, each footer checked."""
        directory = self.run_dir(run_id)
        try:
            meta = read_run_json(directory / "run.json", run_id)
        except HarnessError as exc:
            return RunEntry(run_id, None, problems=[str(exc)])
        entry = RunEntry(run_id, meta, problems=[self._unreadable[("run", run_id)]]
                         if ("run", run_id) in self._unreadable else [])
        recorded = meta.get("files") if meta.get("status") == "complete" else None
        if recorded is not None:
            for name in sorted(recorded):
                path, info = directory / name, recorded[name]
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    entry.problems.append(f"{path} is missing")
                    continue
                if size != info["bytes"]:
                    entry.problems.append(f"{path} holds {size:,} bytes; {info['bytes']:,} were written")
                    continue
                if footers:
                    try:
                        rows = _parquet_rows(path)
                    except HarnessError as exc:
                        entry.problems.append(str(exc))
                        continue
                    if rows != info["rows"]:
                        entry.problems.append(f"{path} holds {rows:,} rows; {info['rows']:,} were written")
                        continue
                entry.files.setdefault(_CHUNK.match(name).group(1), []).append(path)
            return entry
        # Unfinished runs, and complete runs stored before run.json listed its chunks.
        entry.files = _chunk_files(directory)
        counted: dict[str, int] = {}
        for table, paths in entry.files.items():
            for path in paths:
                try:
                    counted[table] = counted.get(table, 0) + _parquet_rows(path)
                except HarnessError as exc:
                    entry.problems.append(str(exc))
        if meta.get("status") == "complete":
            for table, n in (meta.get("n_rows") or {}).items():
                if counted.get(table, 0) != n:
                    entry.problems.append(f"run {run_id} holds {counted.get(table, 0):,} rows of {table} in "
                                          f"{directory}; its run.json records {n:,}")
        return entry

    def run_ids(self) -> list[str]:
        return [e.name.split("=", 1)[1] for e in _visible_entries(self.root / "runs", "run_id=")]

    def scan_runs(self, run_ids: Iterable[str] | None = None) -> list[RunEntry]:
        """The runs (all, or those named) as they read now; a folder without run.json is a run being
        claimed, not yet a run."""
        entries = []
        for run_id in self.run_ids() if run_ids is None else run_ids:
            if self.run_exists(run_id):
                entries.append(self.run_entry(run_id))
            elif run_ids is not None:
                self.run_meta(run_id)  # raises: no such run
        return entries

    def complete_run(self, run_id: str) -> dict:
        """The metadata of a complete, intact run: what every reader (scoring, relabel, reports) may read.
        A run that is unfinished, failed or damaged (a chunk missing or cut short, rows not as written)
        is an error naming the run and what is wrong, never a number computed from part of it."""
        meta = self.run_meta(run_id)
        if meta.get("status") != "complete":
            raise HarnessError(f"run {run_id} is {meta.get('status', 'of unknown status')}, not complete; only "
                               "complete runs are read (resume it by running the same command again)")
        entry = self.run_entry(run_id, footers=True)
        if entry.damaged:
            raise HarnessError(f"run {run_id} is damaged: {'; '.join(entry.problems)} "
                               "(python -m harness check lists all damage; --repair moves it aside)")
        return meta

    def run_meta(self, run_id: str) -> dict:
        path = self.run_dir(run_id) / "run.json"
        if not path.exists():
            known = ", ".join(r["run_id"] for r in self.list_runs()[-10:]) or "none"
            raise HarnessError(f"no run {run_id!r} in store {self.root} (latest runs: {known})")
        return read_run_json(path, run_id)

    def list_runs(self, status: str | None = None) -> list[dict]:
        """Run metadata, oldest first. Damaged runs are left out (with a warning) unless ``status`` is
        ``"damaged"``; then only they are listed, each with its ``damage``."""
        runs = []
        for entry in self.scan_runs():
            if entry.damaged:
                _warn_damaged(f"run {entry.run_id}", entry.problems)
                if status == "damaged":
                    runs.append({"run_id": entry.run_id, **(entry.meta or {}), "damage": entry.problems})
                continue
            if status is None or entry.status == status:
                runs.append(entry.meta)
        runs.sort(key=lambda m: (m.get("created_at", ""), m.get("run_id", "")))
        return runs

    def resolve_run(self, ref: str, dataset: str | None = None) -> dict:
        """A run by id, or by name the latest complete run so named (on ``dataset`` when given).

        A name whose complete runs lie on several datasets is refused with the candidates listed:
        which one was meant cannot be guessed (see ``harness.identity``).
        """
        if self.run_exists(ref):
            return self.run_meta(ref)
        runs = self.list_runs()
        named = [m for m in runs if m.get("name") == ref and m.get("status") == "complete"
                 and (dataset is None or m.get("dataset") == dataset)]
        latest = {m.get("dataset") or "?": m for m in named}  # list_runs is ordered by creation time
        if len(latest) > 1:
            listed = "; ".join(f"{d}: run {m['run_id']} (suite {m.get('suite')})" for d, m in sorted(latest.items()))
            raise HarnessError(f"name {ref!r} matches runs on {len(latest)} datasets ({listed}); give the run id, or "
                               f"the dataset (--dataset {' or '.join(sorted(latest))}, or --labels of it)")
        if named:
            return named[-1]
        known = [m["run_id"] for m in runs[-10:]]
        raise HarnessError(f"no run {ref!r} in store {self.root}"
                           f"{did_you_mean(ref, [m.get('name', '') for m in runs] + [m['run_id'] for m in runs])} "
                           f"(latest runs: {', '.join(known) or 'none'})")

    def delete_run(self, run_id: str) -> None:
        shutil.rmtree(self.run_dir(run_id))

    def read_run_table(self, run_id: str, table: str, columns: list[str] | None = None) -> pa.Table:
        """A run's rows of one table, chunks in part order; a damaged run is an error naming the file."""
        entry = self.run_entry(run_id, footers=True)
        if entry.meta is None and not entry.problems:
            self.run_meta(run_id)  # raises: no such run
        if entry.damaged:
            raise HarnessError(f"run {run_id} is damaged: {'; '.join(entry.problems)} "
                               "(python -m harness check lists all damage)")
        paths = entry.files.get(table, [])
        if not paths:
            raise HarnessError(f"run {run_id} has no {table} rows")
        return pa.concat_tables([_read_parquet(p, columns) for p in paths])

    # ----- stored scores -----------------------------------------------------
    def _score_path(self, run_id: str, key: Mapping[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]
        return self.run_dir(run_id) / "scores" / f"{digest}.json"

    def put_score(self, run_id: str, key: Mapping[str, Any], entry: Mapping[str, Any],
                  label_sets: Iterable[str] = ()) -> None:
        """Keep a computed score of a run under ``key`` (JSON values: label set, metric version, options).

        ``entry`` is stored with the key and ``stored_at``; its top-level fields are the columns of
        the catalog's ``scores`` view. The entry remembers the versions of the run and of the
        ``label_sets`` it was computed from: once either is rewritten (a resumed run, a replaced
        label set), :meth:`get_score` no longer returns it. Deleting the run deletes its scores."""
        if not (self.run_dir(run_id) / "run.json").exists():
            raise HarnessError(f"no run {run_id!r} in store {self.root} to keep a score for")
        path = self._score_path(run_id, key)
        path.parent.mkdir(exist_ok=True)
        entry = {**entry, "run_id": run_id, "key": dict(key), "stored_at": now_iso(),
                 "sources": self._score_sources(run_id, list(label_sets))}
        # Keys in their order (not sorted): a score read back prints as it did when computed.
        atomic_write_bytes(path, json.dumps(entry, default=str).encode())
        self._register({"scores": True})  # catalog.duckdb's scores view exists once the first score does

    def score_files(self, run_id: str) -> list[Path]:
        return [Path(e.path) for e in _visible_entries(self.run_dir(run_id) / "scores", "") if e.name.endswith(".json")]

    def get_score(self, run_id: str, key: Mapping[str, Any]) -> dict | None:
        """The entry kept by :meth:`put_score` under ``key``, or None (never stored, unreadable, or computed
        from a run or label set that has been rewritten since)."""
        path = self._score_path(run_id, key)
        try:
            entry = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if entry.get("key") != json.loads(json.dumps(dict(key), default=str)):
            return None
        sources = entry.get("sources") or {}
        current = self._score_sources(run_id, [n for n in sources.get("label_sets", {})])
        return entry if sources == current else None

    def _score_sources(self, run_id: str, label_sets: list[str]) -> dict:
        def version(path: Path):
            try:
                return path.stat().st_mtime_ns
            except OSError:
                return None

        return {"run": version(self.run_dir(run_id) / "run.json"),
                "label_sets": {n: version(self.label_set_dir(n) / "meta.json") for n in label_sets}}

    # ----- label sets --------------------------------------------------------
    def label_set_dir(self, name: str) -> Path:
        return self.root / "labelsets" / f"label_set={name}"

    def put_label_set(self, name: str, meta: dict, tables: Mapping[str, Any], replace: bool = False) -> None:
        """Store (or replace) a label set atomically: all its tables or none.

        A name held by a label set of another dataset is refused unless ``replace``: replacing ReaL
        (imagenet-val) by a COCO file of the same name would make every ReaL score fail."""
        check_identifier(name, "label set name")
        if not replace and self.has_label_set(name):
            held = self.label_set_meta(name).get("dataset")
            if held != meta.get("dataset"):
                raise HarnessError(f"label set name {name!r} is taken by a label set of dataset {held!r} in store "
                                   f"{self.root}; give another name, or --replace to replace it (the old one is "
                                   "moved aside under removed/)")
        arrow = {t: to_arrow(data, LABEL_TABLES.get(t)) for t, data in tables.items()}
        final = self.label_set_dir(name)
        existed = final.exists()
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        except OSError as exc:
            raise _disk_error(exc, final.parent) from None
        building = FolderLock.held_new(tmp)  # recover() in other processes leaves it alone while held
        try:
            follow_umask(tmp, directory=True)
            for t, table in arrow.items():
                atomic_write_parquet(tmp / f"{t}.parquet", table)
            full = {**meta, "name": name, "created_at": now_iso(),
                    "n_rows": {t: table.num_rows for t, table in arrow.items()},
                    "files": {t: file_record(tmp / f"{t}.parquet") for t in arrow}}
            atomic_write_json(tmp / "meta.json", full)
            # One writer at a time swaps, and readers listing label sets (a shared lock) see either version
            # whole; see recover() for a kill midway.
            with FolderLock(final.parent):
                if not final.exists():
                    os.replace(tmp, final)
                elif not exchange_paths(tmp, final):  # the old version now has the temporary name
                    old = final.parent / f".{final.name}.old-{secrets.token_hex(3)}"
                    os.replace(final, old)
                    os.replace(tmp, final)
                    tmp = old
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            building.release()
        if not existed:
            self._note_created("label set", name)
        self._register({"label_sets": True, "label_tables": sorted(arrow)})

    def label_set_entry(self, name: str, deep: bool = False) -> LabelSetEntry:
        """A label set as it reads now: its meta.json and tables, each footer checked against its rows and
        each file against its size (with ``deep``, its sha256) as meta.json records them."""
        directory = self.label_set_dir(name)
        try:
            meta = read_label_set_json(directory / "meta.json", name)
        except HarnessError as exc:
            return LabelSetEntry(name, None, problems=[str(exc)])
        entry = LabelSetEntry(name, meta, problems=[self._unreadable[("label set", name)]]
                              if ("label set", name) in self._unreadable else [])
        for e in _visible_entries(directory, ""):
            m = _LABEL_FILE.match(e.name)
            if m:
                entry.files[m.group(1)] = Path(e.path)
        for table, n in (meta.get("n_rows") or {}).items():
            path = directory / f"{table}.parquet"
            try:
                rows = _parquet_rows(path)
            except HarnessError as exc:
                entry.problems.append(str(exc))
                continue
            if rows != n:
                entry.problems.append(f"{path} holds {rows:,} rows; {n:,} were written")
        for table, record in (meta.get("files") or {}).items():
            problem = file_problem(directory / f"{table}.parquet", record, deep)
            if problem and problem not in " ".join(entry.problems):
                entry.problems.append(problem)
        return entry

    def scan_label_sets(self, deep: bool = False) -> list[LabelSetEntry]:
        base = self.root / "labelsets"
        try:  # read-only: a colleague reading a shared store needs no write permission
            lock = open(base / ".lock")
        except FileNotFoundError:
            lock = None
        try:
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_SH)  # not in the middle of a replacement
            names = [e.name.split("=", 1)[1] for e in _visible_entries(base, "label_set=")]
            return [self.label_set_entry(n, deep) for n in names]
        finally:
            if lock is not None:
                lock.close()

    def label_set_meta(self, name: str) -> dict:
        path = self.label_set_dir(name) / "meta.json"
        if not path.exists():
            known = [m["name"] for m in self.list_label_sets()]
            raise HarnessError(f"no label set {name!r} in store {self.root}{did_you_mean(name, known)} "
                               f"(known: {', '.join(known) or 'none'})")
        entry = self.label_set_entry(name, deep=True)
        if entry.problems:
            raise HarnessError(f"label set {name!r} is damaged: {'; '.join(entry.problems)} "
                               "(python -m harness check lists all damage)")
        return entry.meta

    def has_label_set(self, name: str) -> bool:
        return (self.label_set_dir(name) / "meta.json").exists()

    def list_label_sets(self) -> list[dict]:
        out = []
        for entry in self.scan_label_sets():
            if entry.problems:
                _warn_damaged(f"label set {entry.name}", entry.problems)
            else:
                out.append(entry.meta)
        return out

    def read_label_table(self, name: str, table: str, exclude: Iterable[str] = ()) -> pa.Table:
        """One table of a label set, without the ``exclude`` columns (not even read)."""
        self.label_set_meta(name)  # raises for a missing or damaged label set
        path = self.label_set_dir(name) / f"{table}.parquet"
        if not path.exists():
            raise HarnessError(f"label set {name!r} has no {table} table")
        columns = [c for c in pq.read_schema(path).names if c not in set(exclude)] if exclude else None
        return _read_parquet(path, columns)

    # ----- class names -------------------------------------------------------
    def classes_path(self, dataset: str) -> Path:
        return self.root / "classes" / f"dataset={check_identifier(dataset, 'dataset name')}" / "classes.parquet"

    def put_classes(self, dataset: str, data: Any) -> None:
        """Store (or replace, atomically) the class names of ``dataset``: rows of ``CLASSES_SCHEMA``."""
        table = to_arrow(data, CLASSES_SCHEMA)
        path = self.classes_path(dataset)
        _make_dir(path.parent)
        atomic_write_parquet(path, table)
        self._register({"classes": True})

    def read_classes(self, dataset: str) -> pa.Table | None:
        """The class names of ``dataset`` (``CLASSES_SCHEMA``), or None when none were stored."""
        path = self.classes_path(dataset)
        return _read_parquet(path) if path.exists() else None

    def classes_files(self) -> list[Path]:
        return [Path(e.path) / "classes.parquet" for e in _visible_entries(self.root / "classes", "dataset=")
                if (Path(e.path) / "classes.parquet").exists()]

    # ----- checking ----------------------------------------------------------
    def check(self, repair: bool = False) -> list[dict]:
        """Verify the whole store: every run's files against its run.json (Parquet footers, row counts,
        unique keys, files nobody wrote there), label sets, and temporary files of dead writers.

        Returns one finding per thing wrong (``what``, ``problem``, and with ``repair`` the ``action``
        taken). Repairing never deletes data: damaged runs, label sets and stray files are moved under
        ``damaged/``; only temporary files and hidden work folders of dead writers are removed; the
        catalog is rebuilt."""
        if repair and not os.access(self.root / "runs", os.W_OK):
            raise HarnessError(f"check --repair moves damage aside inside {self.root}, which this user cannot "
                               "write; python -m harness check (without --repair) reports without writing")
        findings: list[dict] = []

        def found(what: str, problem: str, fix=None) -> None:
            item = {"what": what, "problem": problem}
            if repair and fix is not None:
                item["action"] = fix()
            findings.append(item)

        def aside(path: Path):
            return lambda: f"moved to {self.set_aside(path)}"

        now = time.time()
        for run_id in self.run_ids():
            directory = self.run_dir(run_id)
            lock = self.lock_run(run_id)
            idle = lock.try_acquire()  # nobody writes it now
            try:
                if not self.run_exists(run_id):
                    if idle and now - directory.stat().st_mtime > ORPHAN_AGE_S:
                        found(f"run folder {directory}", "has no run.json (not a run)", aside(directory))
                    continue
                entry = self.run_entry(run_id, footers=True)
                if entry.meta is not None and entry.status == "complete":
                    for table, paths in entry.files.items():
                        if entry.problems:
                            break
                        try:
                            problem = _duplicates(table, (_read_parquet(p, list(UNIQUE_COLUMNS.get(table, ())))
                                                          for p in paths))
                        except HarnessError as exc:
                            problem = str(exc)
                        if problem:
                            entry.problems.append(problem)
                    recorded = set(entry.meta.get("files") or ())
                    if recorded:
                        for paths in _chunk_files(directory).values():
                            for path in paths:
                                if path.name not in recorded:
                                    found(f"run {run_id}", f"{path} was not written by the run (it is not read)",
                                          aside(path))
                if entry.problems:
                    found(f"run {run_id}", "; ".join(entry.problems), aside(directory) if idle else None)
                    continue
                for e in _visible_entries(directory, "."):
                    if e.name.endswith(".tmp") and idle:
                        found(f"run {run_id}", f"temporary file {e.path} of a writer that is gone",
                              lambda p=e.path: Path(p).unlink(missing_ok=True) or "removed")
            finally:
                lock.release()
        for e in _visible_entries(self.root / "runs", ".run_id="):
            found(f"hidden folder {e.path}", "an import that did not finish (or is being written)",
                  lambda: self.recover() or "removed if its writer is gone for a minute")
        for entry in self.scan_label_sets(deep=True):
            if entry.problems:
                found(f"label set {entry.name}", "; ".join(entry.problems), aside(self.label_set_dir(entry.name)))
        for e in _visible_entries(self.root / "labelsets", ".label_set="):
            found(f"hidden folder {e.path}", "a label set replacement that did not finish (or is running)",
                  lambda: self.recover() or "put back or removed when no writer holds the lock")
        for e in _visible_entries(self.root, ".catalog."):
            if now - e.stat().st_mtime > ORPHAN_AGE_S:
                found(f"file {e.path}", "a catalog rebuild that did not finish",
                      lambda p=e.path: Path(p).unlink(missing_ok=True) or "removed")
        problem = self.catalog_problem()
        if problem:
            found(f"catalog {self.catalog_path}", problem, lambda: "rebuilt")
        if repair:
            self.refresh_catalog()
        return findings

    # ----- the views ---------------------------------------------------------
    def view_sql(self, runs: list[RunEntry] | None = None,
                 label_sets: list[LabelSetEntry] | None = None) -> list[str]:
        """CREATE VIEW statements over the files of intact runs and label sets (absolute paths, listed:
        damage is left out). The ``runs`` and ``label_sets`` views come from :meth:`connect`."""
        stmts = []
        intact = [e for e in runs or [] if not e.damaged]
        for table in sorted(set(RUN_TABLES) | {t for e in intact for t in e.files}):
            complete = [p for e in intact if e.status == "complete" for p in e.files.get(table, [])]
            unfinished = [p for e in intact if e.status != "complete" for p in e.files.get(table, [])]
            stmts.append(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM "
                         f"{_read_parquet_sql(table, complete, 'run_id', RUN_TABLES)}")
            if unfinished:
                stmts.append(f"CREATE OR REPLACE VIEW {table}_all AS SELECT * FROM {table} UNION ALL BY NAME "
                             f"SELECT * FROM {_read_parquet_sql(table, unfinished, 'run_id', RUN_TABLES)}")
            else:
                stmts.append(f"CREATE OR REPLACE VIEW {table}_all AS SELECT * FROM {table}")
        good = [e for e in label_sets or [] if not e.problems]
        for table in sorted(set(LABEL_TABLES) | {t for e in good for t in e.files}):
            files = [e.files[table] for e in good if table in e.files]
            stmts.append(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM "
                         f"{_read_parquet_sql(table, files, 'label_set', LABEL_TABLES)}")
        stmts.append(_classes_view(self.classes_files()))
        return stmts

    def catalog_sql(self, state: Mapping[str, Any], runs: list[RunEntry], label_sets: list[LabelSetEntry]
                    ) -> list[str]:
        """The views of ``catalog.duckdb``: over file patterns, so that adding a run changes nothing in
        it. ``state`` says which tables have files (a pattern that matches nothing is an error). While
        something is damaged (``state["listed"]``), over the intact files, listed, instead."""
        root = Path(re.sub(r"([][*?])", r"[\1]", str(self.root.resolve())))  # the root's own characters literal
        if state["listed"]:
            run_files = [self.run_dir(e.run_id).resolve() / "run.json" for e in runs if not e.damaged]
            ls_files = [self.label_set_dir(e.name).resolve() / "meta.json" for e in label_sets if not e.problems]
            score_files = [p.resolve() for e in runs if not e.damaged for p in self.score_files(e.run_id)]
            return [_json_view("runs", run_files, RUN_FIELDS), _json_view("label_sets", ls_files, LABEL_SET_FIELDS),
                    _json_view("scores", score_files, SCORE_FIELDS), *self.view_sql(runs, label_sets)]
        runs_json, ls_json = root / "runs" / "run_id=*" / "run.json", root / "labelsets" / "label_set=*" / "meta.json"
        stmts = [_json_view("runs", [runs_json] if state["runs"] else [], RUN_FIELDS),
                 _json_view("label_sets", [ls_json] if state["label_sets"] else [], LABEL_SET_FIELDS),
                 _json_view("scores", [root / "runs" / "run_id=*" / "scores" / "*.json"] if state["scores"] else [],
                            SCORE_FIELDS)]
        for table in sorted(set(RUN_TABLES) | set(state["run_tables"])):
            files = [root / "runs" / "run_id=*" / f"{table}-*.parquet"] if table in state["run_tables"] else []
            stmts.append(f"CREATE OR REPLACE VIEW {table}_all AS SELECT * FROM "
                         f"{_read_parquet_sql(table, files, 'run_id', RUN_TABLES)}")
            stmts.append(f"CREATE OR REPLACE VIEW {table} AS SELECT t.* FROM {table}_all t "
                         "WHERE t.run_id IN (SELECT run_id FROM runs WHERE status = 'complete')")
        for table in sorted(set(LABEL_TABLES) | set(state["label_tables"])):
            files = [root / "labelsets" / "label_set=*" / f"{table}.parquet"] if table in state["label_tables"] else []
            stmts.append(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM "
                         f"{_read_parquet_sql(table, files, 'label_set', LABEL_TABLES)}")
        stmts.append(_classes_view([root / "classes" / "dataset=*" / "classes.parquet"] if state["classes"] else []))
        return stmts

    def connect(self, runs: Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with the views over every intact run (or only ``runs``) and
        label set; damaged ones are left out with a :class:`StoreWarning` naming the file."""
        entries = self.scan_runs(runs)
        for entry in entries:
            if entry.damaged:
                _warn_damaged(f"run {entry.run_id}", entry.problems)
        label_sets = self.scan_label_sets()
        for entry in label_sets:
            if entry.problems:
                _warn_damaged(f"label set {entry.name}", entry.problems)
        con = duckdb.connect()
        run_rows = [json.dumps({**(e.meta or {}), "run_id": e.run_id,
                                "status": "damaged" if e.damaged else e.status,
                                **({"damage": e.problems} if e.damaged else {})}, default=str) for e in entries]
        con.register("run_metadata", pa.table({"json": pa.array(run_rows, pa.string())}))
        con.execute(f"CREATE VIEW runs AS SELECT {_json_columns(RUN_FIELDS)}, json::JSON AS meta FROM run_metadata")
        ls_rows = [json.dumps(e.meta, default=str) for e in label_sets if not e.problems]
        con.register("label_set_metadata", pa.table({"json": pa.array(ls_rows, pa.string())}))
        con.execute(f"CREATE VIEW label_sets AS SELECT {_json_columns(LABEL_SET_FIELDS)}, json::JSON AS meta "
                    "FROM label_set_metadata")
        scores = [p for e in entries if not e.damaged for p in self.score_files(e.run_id)]
        con.execute(_json_view("scores", scores, SCORE_FIELDS))
        for stmt in self.view_sql(entries, label_sets):
            con.execute(stmt)
        return con

    def sql(self, query: str, params: list | None = None, write: bool = False):
        """Run a query over the views; returns a pandas DataFrame.

        Only reading statements run unless ``write`` (:mod:`harness.sqlguard`: DuckDB's own parser tells)."""
        if write:
            sqlguard.statements(query)  # no statement at all is an error either way
        else:
            sqlguard.check_read_only(query)
        while True:  # a chunk that passed the size check but does not read: its owner is left out, and again
            con = self.connect()
            try:
                if not write:
                    for setting in sqlguard.READ_ONLY_SETTINGS:
                        con.execute(setting)
                return con.execute(query, params or []).df()
            except duckdb.Error as exc:
                found = None if write else unreadable_owner(str(exc), self.root)
                if found is None and not write and not isinstance(exc, (duckdb.ParserException,
                                                                        duckdb.BinderException)):
                    found = first_unreadable_chunk(self.scan_runs())
                if found is None or found[0] in self._unreadable:
                    raise HarnessError(f"SQL error: {exc}") from None
                self._unreadable[found[0]] = found[1]
            finally:
                con.close()

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    def register_run(self, run_id: str) -> None:
        """Make a finished run visible to plain DuckDB users of ``catalog.duckdb``. Its views read file
        patterns, so the catalog is rebuilt only when it is missing or the run brings a new table: the
        time does not grow with the number of runs."""
        self._register({"runs": True, "run_tables": sorted(_chunk_files(self.run_dir(run_id)))})

    def _register(self, adds: Mapping[str, Any]) -> None:
        state = self._catalog_state()
        if not self.catalog_path.exists() or state["listed"] or state["root"] != str(self.root.resolve()) or any(
                (v is True and not state[k]) or (isinstance(v, list) and not set(v) <= set(state[k]))
                for k, v in adds.items()):
            self.refresh_catalog()

    def _catalog_state(self) -> dict:
        try:
            return {**_EMPTY_CATALOG, **json.loads((self.root / ".catalog-state.json").read_text())}
        except (OSError, ValueError):
            return dict(_EMPTY_CATALOG)

    def catalog_state_of(self, runs: list[RunEntry], label_sets: list[LabelSetEntry]) -> dict:
        """What catalog.duckdb must be built from for these runs and label sets (kept beside it)."""
        return {"root": str(self.root.resolve()),
                "listed": any(e.damaged for e in runs) or any(e.problems for e in label_sets),
                "runs": bool(runs), "label_sets": any(e.meta is not None for e in label_sets),
                "scores": any(self.score_files(e.run_id) for e in runs),
                "run_tables": sorted({t for e in runs for t in e.files}),
                "label_tables": sorted({t for e in label_sets for t in e.files}),
                "classes": bool(self.classes_files())}

    def catalog_problem(self, runs: list[RunEntry] | None = None,
                        label_sets: list[LabelSetEntry] | None = None) -> str | None:
        """Why catalog.duckdb does not show this store as it is (a copied store, a kill between a run's
        rename and its registration, a run removed), or None."""
        runs = self.scan_runs() if runs is None else runs
        label_sets = self.scan_label_sets() if label_sets is None else label_sets
        return catalog_mismatch(self.catalog_path, self._catalog_state(), self.catalog_state_of(runs, label_sets))

    def refresh_catalog(self) -> Path:
        """(Re)build catalog.duckdb from the files; safe to delete at any time."""
        runs, label_sets = self.scan_runs(), self.scan_label_sets()
        state = self.catalog_state_of(runs, label_sets)
        try:
            fd, tmp = tempfile.mkstemp(prefix=".catalog.", suffix=".duckdb", dir=self.root)
        except OSError as exc:
            raise _disk_error(exc, self.catalog_path) from None
        os.close(fd)
        os.unlink(tmp)
        try:
            con = duckdb.connect(tmp)
            for stmt in self.catalog_sql(state, runs, label_sets):
                con.execute(stmt)
            con.close()
            follow_umask(tmp)
            os.replace(tmp, self.catalog_path)
            atomic_write_json(self.root / ".catalog-state.json", state)
        except OSError as exc:
            raise _disk_error(exc, self.catalog_path) from None
        finally:
            Path(tmp).unlink(missing_ok=True)
            Path(tmp + ".wal").unlink(missing_ok=True)
        return self.catalog_path


_EMPTY_CATALOG = {"root": None, "listed": False, "runs": False, "scores": False, "label_sets": False, "run_tables": [],
                  "label_tables": [], "classes": False}
RUN_FIELDS = ["run_id", "name", "model", "suite", "dataset", "kind", "status", "created_at", "finished_at",
              "metric_version"]
LABEL_SET_FIELDS = ["name", "dataset", "description", "created_at"]
SCORE_FIELDS = ["run_id", "label_set", "metric_version", "stored_at"]


def _warn_damaged(what: str, problems: list[str]) -> None:
    warnings.warn(f"{what} is damaged and left out: {'; '.join(problems)} "
                  "(python -m harness check lists all damage; --repair moves it aside)", StoreWarning, stacklevel=3)


def _json_columns(fields: list[str], from_path: Mapping[str, str] | None = None) -> str:
    from_path = from_path or {}
    return ", ".join(f"regexp_extract(filename, '{from_path[f]}', 1) AS {f}" if f in from_path
                     else f"json::JSON ->> '{f}' AS {f}" for f in fields)


# The folder names the run and the label set, whatever their JSON says (harness.storecheck).
_NAMED_BY_FOLDER = {"runs": {"run_id": r"run_id=([^/\\]+)[/\\]run\.json$"},
                    "label_sets": {"name": r"label_set=([^/\\]+)[/\\]meta\.json$"},
                    "scores": {"run_id": r"run_id=([^/\\]+)[/\\]scores[/\\][^/\\]+$"}}


def _json_view(view: str, files: list[Path], fields: list[str]) -> str:
    """A view with one row per JSON file (or pattern): the named fields as text, plus the whole object as
    ``meta``; a file that is not JSON is left out (``python -m harness check`` names it)."""
    if not files:
        cols = ", ".join(f"NULL::VARCHAR AS {f}" for f in fields)
        return f"CREATE OR REPLACE VIEW {view} AS SELECT {cols}, NULL::JSON AS meta WHERE false"
    return (f"CREATE OR REPLACE VIEW {view} AS SELECT {_json_columns(fields, _NAMED_BY_FOLDER.get(view))}, "
            f"json::JSON AS meta FROM (SELECT content AS json, filename FROM "
            f"read_text([{', '.join(sql_string(f) for f in files)}]) WHERE json_valid(content))")


def _read_parquet_sql(table: str, files: list[Path], partition: str, registry: Mapping[str, pa.Schema]) -> str:
    """``read_parquet`` over these files with the partition column from the folder names; an empty
    select of the table's columns when there are none. Registered tables share one schema, so their
    files are not opened to unify schemas (``union_by_name``) until they are read."""
    if not files:
        schema = registry.get(table) or RUN_TABLES.get(table) or LABEL_TABLES.get(table) or pa.schema([])
        cols = [f"NULL::{_duck_type(f.type)} AS {f.name}" for f in schema]
        cols.append(f"NULL::VARCHAR AS {partition}")
        return "(SELECT " + ", ".join(cols) + " WHERE false)"
    listed = "[" + ", ".join(sql_string(p) for p in files) + "]"
    union = "false" if table in registry else "true"
    return (f"read_parquet({listed}, hive_partitioning=true, hive_types={{'{partition}': VARCHAR}}, "
            f"union_by_name={union})")


def _classes_view(files: list[Path]) -> str:
    return (f"CREATE OR REPLACE VIEW classes AS SELECT * FROM "
            f"{_read_parquet_sql('classes', files, 'dataset', {'classes': CLASSES_SCHEMA})}")


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_list(t):
        return _duck_type(t.value_type) + "[]"
    mapping = {
        pa.string(): "VARCHAR", pa.int32(): "INTEGER", pa.int64(): "BIGINT",
        pa.float32(): "FLOAT", pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN",
    }
    if t in mapping:
        return mapping[t]
    raise TypeError(f"no DuckDB type for {t}")
