"""The store: Parquet files on disk, a DuckDB catalog of views over them.

Layout of a store directory (the single source of truth)::

    runs/run_id=<id>/run.json                 run metadata (status running|complete|failed)
    runs/run_id=<id>/<table>-<part>.parquet   per-sample rows of that run, one file per chunk
    runs/run_id=<id>/scores/<digest>.json     a stored score of that run (put_score/get_score)
    labelsets/label_set=<name>/meta.json      label set metadata
    labelsets/label_set=<name>/<table>.parquet
    catalog.duckdb                            views over the files, for plain DuckDB users

Every file is written to a temporary name and renamed into place, so a reader
(or a process killed with -9) never sees half a file. Only files matching
``<table>-<part>.parquet`` are read; temporary files and folders start with a dot.
An import (``write_run``) is built in a hidden folder and renamed into place complete.
A label set is replaced under ``labelsets/.lock`` by two renames (the old folder aside, the new
one in); a process killed between them leaves the old one hidden, and the next ``Store`` opened
puts it back.
A run's rows are visible in the plain table views (``predictions``,
``detections``...) only once its run.json says ``complete``; the ``*_all``
views show the rows of unfinished runs too.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from . import faults
from .errors import HarnessError, did_you_mean

STORE_ENV = "REALBENCH_HOME"

# Known per-sample tables.  A view is created for each, empty when no file
# exists yet, so queries never fail just because nothing was stored yet.
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

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")


def default_store_dir() -> Path:
    env = os.environ.get(STORE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("realbench")) / "store"


def check_identifier(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SAFE_ID.match(value):
        raise HarnessError(
            f"{what} {value!r} is not a valid name: use letters, digits, '.', '_', '+', '-' "
            "(starting with a letter or digit, at most 200 characters)"
        )
    return value


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())


def atomic_write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
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
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{table}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        pq.write_table(arrow, tmp, compression="zstd")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
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
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, Mapping):
        table = pa.table(dict(data))
    else:  # pandas
        table = pa.Table.from_pandas(data, preserve_index=False)
    if schema is None:
        return table
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    extra = [n for n in table.column_names if n not in schema.names]
    if extra:
        raise HarnessError(f"unexpected columns {extra} for a table with columns {schema.names}")
    return pa.table(columns, schema=schema)


class FolderLock:
    """An exclusive lock on a folder (``flock`` on its ``.lock``), released on close or on the holder's death."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.file = open(directory / ".lock", "a+")

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


@dataclass
class RunWriter:
    """Writes one run chunk by chunk; the run becomes visible when finished."""

    store: "Store"
    run_id: str
    meta: dict

    @property
    def dir(self) -> Path:
        return self.store.run_dir(self.run_id)

    def next_part(self, table: str) -> int:
        parts = [int(p.stem.rsplit("-", 1)[1]) for p in self.dir.glob(f"{table}-*.parquet")]
        return max(parts, default=-1) + 1

    def write_chunk(self, data: Any, table: str = "predictions") -> Path:
        arrow = to_arrow(data, RUN_TABLES.get(table))
        path = publish_new_parquet(self.dir, table, arrow, self.next_part(table))
        faults.reached("chunk-stored")
        return path

    def stored_keys(self, table: str = "predictions") -> set[str]:
        """Keys already stored by earlier chunks (for resuming a killed run)."""
        files = sorted(self.dir.glob(f"{table}-*.parquet"))
        keys: set[str] = set()
        for f in files:
            keys.update(pq.read_table(f, columns=["key"]).column("key").to_pylist())
        return keys

    def update(self, **fields: Any) -> None:
        self.meta.update(fields)
        atomic_write_json(self.dir / "run.json", self.meta)

    def finish(self, **fields: Any) -> str:
        self.update(status="complete", finished_at=now_iso(), **fields)
        self.store.refresh_catalog()
        return self.run_id

    def fail(self, error: str, **fields: Any) -> None:
        self.update(status="failed", error=error, finished_at=now_iso(), **fields)
        self.store.refresh_catalog()


class Store:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root else default_store_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "runs").mkdir(exist_ok=True)
        (self.root / "labelsets").mkdir(exist_ok=True)
        self.recover()

    def recover(self) -> None:
        """Tidy what writers killed midway left behind: a label set set aside and never replaced goes
        back into place, and hidden work folders whose writer is gone are removed."""
        for folder in (self.root / "runs").glob(".run_id=*"):
            # An import's folder is locked by its writer; the age keeps off a folder created this instant,
            # before its writer could lock it.
            if folder.is_dir() and time.time() - folder.stat().st_mtime > 60:
                lock = FolderLock(folder)
                if lock.try_acquire():
                    shutil.rmtree(folder, ignore_errors=True)
                lock.release()
        base = self.root / "labelsets"
        hidden = sorted(p for p in base.glob(".label_set=*") if p.is_dir())
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
                else:
                    shutil.rmtree(folder, ignore_errors=True)
        finally:
            lock.release()

    # ----- runs -------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / f"run_id={run_id}"

    def new_run_id(self, name: str) -> str:
        base = re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-.") or "run"
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        return f"{base[:120]}-{stamp}-{secrets.token_hex(3)}"

    def begin_run(self, meta: dict, run_id: str | None = None) -> RunWriter:
        """Start (or, with the id of an unfinished run, resume) a run."""
        run_id = check_identifier(run_id or self.new_run_id(meta.get("name", "run")), "run id")
        directory = self.run_dir(run_id)
        if (directory / "run.json").exists():
            old = json.loads((directory / "run.json").read_text())
            if old.get("status") == "complete":
                raise HarnessError(f"run {run_id} is already complete in {self.root}")
            meta = {**old, **meta, "resumed_at": now_iso()}
        meta = {**meta, "run_id": run_id, "status": "running"}
        meta.setdefault("created_at", now_iso())
        writer = RunWriter(self, run_id, meta)
        writer.update()
        return writer

    def write_run(self, meta: dict, tables: Mapping[str, Any]) -> str:
        """Store a whole run at once (imports). Returns its run id.

        The run is built in a hidden folder and renamed into place complete: a process killed midway
        leaves no run, only a hidden folder that a later :meth:`recover` removes.
        """
        arrow = {name: to_arrow(data, RUN_TABLES.get(name)) for name, data in tables.items()}
        run_id = check_identifier(self.new_run_id(meta.get("name", "run")), "run id")
        final = self.run_dir(run_id)
        work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        lock = FolderLock(work)
        lock.try_acquire()  # a folder nobody else knows yet
        try:
            for name, table in arrow.items():
                publish_new_parquet(work, name, table, 0)
            stamp = now_iso()
            atomic_write_json(work / "run.json", {
                "created_at": stamp, **meta, "run_id": run_id, "status": "complete", "finished_at": stamp,
                "n_rows": {name: t.num_rows for name, t in arrow.items()}})
            os.rename(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        finally:
            lock.release()
        self.refresh_catalog()
        return run_id

    def run_meta(self, run_id: str) -> dict:
        path = self.run_dir(run_id) / "run.json"
        if not path.exists():
            known = ", ".join(r["run_id"] for r in self.list_runs()[-10:]) or "none"
            raise HarnessError(f"no run {run_id!r} in store {self.root} (latest runs: {known})")
        return json.loads(path.read_text())

    def list_runs(self, status: str | None = None) -> list[dict]:
        runs = []
        for path in sorted((self.root / "runs").glob("run_id=*/run.json")):
            try:
                meta = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if status is None or meta.get("status") == status:
                runs.append(meta)
        runs.sort(key=lambda m: (m.get("created_at", ""), m.get("run_id", "")))
        return runs

    def resolve_run(self, ref: str) -> dict:
        """A run by id, or the latest complete run whose name is ``ref``."""
        if (self.run_dir(ref) / "run.json").exists():
            return self.run_meta(ref)
        runs = self.list_runs()
        named = [m for m in runs if m.get("name") == ref and m.get("status") == "complete"]
        if named:
            return named[-1]
        known = [m["run_id"] for m in runs[-10:]]
        raise HarnessError(f"no run {ref!r} in store {self.root}"
                           f"{did_you_mean(ref, [m.get('name', '') for m in runs] + [m['run_id'] for m in runs])} "
                           f"(latest runs: {', '.join(known) or 'none'})")

    def delete_run(self, run_id: str) -> None:
        shutil.rmtree(self.run_dir(run_id))
        self.refresh_catalog()

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
        self.refresh_catalog()  # catalog.duckdb's scores view exists once the first score does

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

    def put_label_set(self, name: str, meta: dict, tables: Mapping[str, Any]) -> None:
        """Store (or replace) a label set atomically: all its tables or none."""
        check_identifier(name, "label set name")
        arrow = {t: to_arrow(data, LABEL_TABLES.get(t)) for t, data in tables.items()}
        final = self.label_set_dir(name)
        with FolderLock(final.parent):  # one label-set writer at a time; see recover() for a kill midway
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
            try:
                for t, table in arrow.items():
                    atomic_write_parquet(tmp / f"{t}.parquet", table)
                full = {**meta, "name": name, "created_at": now_iso(),
                        "n_rows": {t: table.num_rows for t, table in arrow.items()}}
                atomic_write_json(tmp / "meta.json", full)
                old = None
                if final.exists():
                    old = final.parent / f".{final.name}.old-{secrets.token_hex(3)}"
                    os.replace(final, old)
                os.replace(tmp, final)
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        self.refresh_catalog()

    def label_set_meta(self, name: str) -> dict:
        path = self.label_set_dir(name) / "meta.json"
        if not path.exists():
            known = [m["name"] for m in self.list_label_sets()]
            raise HarnessError(f"no label set {name!r} in store {self.root}{did_you_mean(name, known)} "
                               f"(known: {', '.join(known) or 'none'})")
        return json.loads(path.read_text())

    def has_label_set(self, name: str) -> bool:
        return (self.label_set_dir(name) / "meta.json").exists()

    def list_label_sets(self) -> list[dict]:
        out = []
        for path in sorted((self.root / "labelsets").glob("label_set=*/meta.json")):
            out.append(json.loads(path.read_text()))
        return out

    # ----- the catalog -------------------------------------------------------
    def _table_names(self, kind: str, known: Iterable[str]) -> list[str]:
        base = self.root / kind
        found = {p.name.rsplit("-", 1)[0] if kind == "runs" else p.stem
                 for p in base.glob("*=*/*.parquet")}
        return sorted(set(known) | found)

    def view_sql(self) -> list[str]:
        """CREATE VIEW statements over the files (absolute paths)."""
        root = self.root.resolve()
        stmts = []
        stmts.append(_json_view(
            "runs", root / "runs" / "run_id=*" / "run.json",
            any((self.root / "runs").glob("run_id=*/run.json")),
            ["run_id", "name", "model", "suite", "dataset", "kind", "status", "created_at",
             "finished_at", "metric_version"]))
        for table in self._table_names("runs", RUN_TABLES):
            files = list((self.root / "runs").glob(f"run_id=*/{table}-*.parquet"))
            if files:
                src = (f"read_parquet('{root}/runs/run_id=*/{table}-*.parquet', hive_partitioning=true, "
                       "hive_types={'run_id': VARCHAR}, union_by_name=true)")
            else:
                src = _empty_select(RUN_TABLES[table], "run_id")
            stmts.append(f"CREATE OR REPLACE VIEW {table}_all AS SELECT * FROM {src}")
            stmts.append(
                f"CREATE OR REPLACE VIEW {table} AS SELECT t.* FROM {table}_all t "
                "WHERE t.run_id IN (SELECT run_id FROM runs WHERE status = 'complete')")
        for table in self._table_names("labelsets", LABEL_TABLES):
            files = list((self.root / "labelsets").glob(f"label_set=*/{table}.parquet"))
            if files:
                src = (f"read_parquet('{root}/labelsets/label_set=*/{table}.parquet', hive_partitioning=true, "
                       "hive_types={'label_set': VARCHAR}, union_by_name=true)")
            else:
                src = _empty_select(LABEL_TABLES[table], "label_set")
            stmts.append(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM {src}")
        stmts.append(_json_view(
            "scores", root / "runs" / "run_id=*" / "scores" / "*.json",
            any((self.root / "runs").glob("run_id=*/scores/*.json")),
            ["run_id", "label_set", "metric_version", "stored_at"]))
        stmts.append(_json_view(
            "label_sets", root / "labelsets" / "label_set=*" / "meta.json",
            any((self.root / "labelsets").glob("label_set=*/meta.json")),
            ["name", "dataset", "description", "created_at"]))
        return stmts

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with the catalog's views (no file lock)."""
        con = duckdb.connect()
        for stmt in self.view_sql():
            con.execute(stmt)
        return con

    def sql(self, query: str, params: list | None = None):
        """Run a query over the catalog; returns a pandas DataFrame."""
        con = self.connect()
        try:
            return con.execute(query, params or []).df()
        except duckdb.Error as exc:
            raise HarnessError(f"SQL error: {exc}") from None
        finally:
            con.close()

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    def refresh_catalog(self) -> Path:
        """(Re)build catalog.duckdb from the files; safe to delete at any time."""
        fd, tmp = tempfile.mkstemp(prefix=".catalog.", suffix=".duckdb", dir=self.root)
        os.close(fd)
        os.unlink(tmp)
        try:
            con = duckdb.connect(tmp)
            for stmt in self.view_sql():
                con.execute(stmt)
            con.close()
            os.replace(tmp, self.catalog_path)
        finally:
            Path(tmp).unlink(missing_ok=True)
            Path(tmp + ".wal").unlink(missing_ok=True)
        return self.catalog_path


def _json_view(view: str, pattern: Path, exists: bool, fields: list[str]) -> str:
    """A view with one row per JSON file: the named fields as text, plus the whole object as ``meta``."""
    if exists:
        cols = ", ".join(f"json ->> '{f}' AS {f}" for f in fields)
        return (f"CREATE OR REPLACE VIEW {view} AS SELECT {cols}, json AS meta "
                f"FROM read_json_objects('{pattern}', format='auto', maximum_object_size=268435456)")
    cols = ", ".join(f"NULL::VARCHAR AS {f}" for f in fields)
    return f"CREATE OR REPLACE VIEW {view} AS SELECT {cols}, NULL::JSON AS meta WHERE false"


def _empty_select(schema: pa.Schema, partition: str) -> str:
    cols = [f"NULL::{_duck_type(f.type)} AS {f.name}" for f in schema]
    cols.append(f"NULL::VARCHAR AS {partition}")
    return "(SELECT " + ", ".join(cols) + " WHERE false)"


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
