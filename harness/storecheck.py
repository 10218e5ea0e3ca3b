"""The store's own files, checked by type when read: a ``run.json`` or a label set's ``meta.json`` that
is not what the store wrote is damage of its owner (left out with a warning naming the file, listed
by ``python -m harness check``, moved aside by ``--repair``), never a crash of every command.

The folder is the identity: ``runs/run_id=<id>/run.json`` describes run ``<id>`` whatever its
``run_id`` field says, and ``labelsets/label_set=<name>/meta.json`` describes label set ``<name>``.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .errors import HarnessError

RUN_STATUSES = ("running", "complete", "failed", "interrupted")
_CHUNK = re.compile(r"^([A-Za-z0-9_]+)-(\d+)\.parquet$")
_TABLE = re.compile(r"^[A-Za-z0-9_]+$")
# Fields every reader takes as text (sorting, filtering, naming); null where a run has none.
_RUN_TEXT = ("name", "model", "suite", "dataset", "kind", "finished_at", "resumed_at", "source_sha256")
_LABEL_SET_TEXT = ("dataset", "description")


def read_json_object(path: Path, what: str) -> dict:
    """A JSON object from one of the store's files; anything else is a HarnessError naming the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HarnessError(f"{path} is missing") from None
    except OSError as exc:
        raise HarnessError(f"{path} cannot be read ({exc.strerror})") from None
    try:
        meta = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise HarnessError(f"{path} is not a readable {what} ({str(exc)[:200]})") from None
    if not isinstance(meta, dict):
        raise HarnessError(f"{path} is not a readable {what} (a JSON object was expected)")
    return meta


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _text_fields(meta: dict, fields: tuple[str, ...]) -> list[str]:
    return [f"{f} is {type(meta[f]).__name__}, expected text" for f in fields
            if f in meta and meta[f] is not None and not isinstance(meta[f], str)]


def _row_counts(value: Any, what: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{what} is {type(value).__name__}, expected an object of table -> row count"]
    return [f"{what}[{str(t)[:40]!r}] is {n!r}, expected a row count" for t, n in value.items()
            if not (_TABLE.match(t) and _count(n))][:3]


def run_json_problems(meta: dict) -> list[str]:
    """What in a run.json is not of the type the store writes ([] when all is well)."""
    problems = []
    if meta.get("status") not in RUN_STATUSES:
        problems.append(f"status is {meta.get('status')!r}, expected one of {', '.join(RUN_STATUSES)}")
    if not isinstance(meta.get("created_at"), str):
        problems.append(f"created_at is {meta.get('created_at')!r}, expected a time stamp")
    problems += _text_fields(meta, _RUN_TEXT)
    if "run_id" in meta and not isinstance(meta["run_id"], str):
        problems.append(f"run_id is {type(meta['run_id']).__name__}, expected text")
    files = meta.get("files")
    if files is not None:
        if not isinstance(files, dict):
            problems.append(f"files is {type(files).__name__}, expected an object of chunk -> rows, bytes")
        else:
            bad = [name for name, info in files.items()
                   if not (_CHUNK.match(name) and isinstance(info, dict) and _count(info.get("rows"))
                           and _count(info.get("bytes")))]
            if bad:
                problems.append(f"files[{bad[0][:60]!r}] is not a chunk name with its rows and bytes "
                                f"({len(bad)} such entries)")
    if meta.get("n_rows") is not None:
        problems += _row_counts(meta["n_rows"], "n_rows")
    return problems


def label_set_json_problems(meta: dict) -> list[str]:
    """What in a label set's meta.json is not of the type the store writes."""
    problems = _text_fields(meta, _LABEL_SET_TEXT)
    if not isinstance(meta.get("created_at"), str):
        problems.append(f"created_at is {meta.get('created_at')!r}, expected a time stamp")
    if "name" in meta and not isinstance(meta["name"], str):
        problems.append(f"name is {type(meta['name']).__name__}, expected text")
    problems += _row_counts(meta.get("n_rows", {}), "n_rows")
    files = meta.get("files", {})
    if not isinstance(files, dict) or not all(
            isinstance(t, str) and _TABLE.match(t) and isinstance(r, dict) and _count(r.get("bytes"))
            and isinstance(r.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", r["sha256"])
            for t, r in files.items()):
        problems.append("files is not an object of table -> bytes, sha256")
    return problems


def read_run_json(path: Path, run_id: str) -> dict:
    """A run's metadata, checked by type, with ``run_id`` its folder's name."""
    meta = read_json_object(path, "run.json")
    problems = run_json_problems(meta)
    if problems:
        raise HarnessError(f"{path} is not a run.json the store wrote: {'; '.join(problems)}")
    return {**meta, "run_id": run_id}


def read_label_set_json(path: Path, name: str) -> dict:
    """A label set's metadata, checked by type, with ``name`` its folder's name."""
    meta = read_json_object(path, "meta.json")
    problems = label_set_json_problems(meta)
    if problems:
        raise HarnessError(f"{path} is not a label set meta.json the store wrote: {'; '.join(problems)}")
    return {**meta, "name": name}


def unreadable_owner(message: str, root: Path) -> tuple[tuple[str, str], str] | None:
    """The run or label set (``("run", id)`` / ``("label set", name)``) whose file a DuckDB error names, if
    the file lies in the store ``root`` (a chunk that passed the size check but does not read), and the
    error's first line."""
    for base in {str(root), str(Path(root).resolve())}:
        found = re.search(re.escape(base) + r"/(runs/run_id|labelsets/label_set)=([^/'\"]+)/[^/'\"]+\.parquet",
                          message)
        if found:
            return ("run" if found.group(1) == "runs/run_id" else "label set", found.group(2)), message.splitlines()[0]
    return None


def first_unreadable_chunk(entries) -> tuple[tuple[str, str], str] | None:
    """The first run among ``entries`` (intact :class:`~harness.store.RunEntry`) with a chunk that does not
    decode whole, and the sentence naming it; for a DuckDB error that names no file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for entry in entries:
        if entry.damaged:
            continue
        for paths in entry.files.values():
            for path in paths:
                try:
                    pq.read_table(path)
                except (OSError, pa.ArrowException) as exc:
                    return ("run", entry.run_id), f"{path} cannot be read as Parquet ({str(exc).strip()[:200]})"
    return None


def catalog_outdated(root: Path, recorded: dict) -> bool:
    """A quick look, when a store is opened, for a catalog.duckdb that cannot be right: missing while the
    store holds something, built for another folder (a copied store), or built before the first run or
    label set arrived (a writer killed between renaming it into place and registering it)."""
    runs = any(e.name.startswith("run_id=") for e in _entries(root / "runs"))
    label_sets = any(e.name.startswith("label_set=") for e in _entries(root / "labelsets"))
    if not (root / "catalog.duckdb").exists():
        return runs or label_sets
    return (recorded.get("root") != str(Path(root).resolve()) or (runs and not recorded.get("runs"))
            or (label_sets and not recorded.get("label_sets")))


def catalog_mismatch(path: Path, recorded: dict, expected: dict) -> str | None:
    """Why the catalog at ``path``, built from the ``recorded`` state, does not show the store's
    ``expected`` state, or None."""
    if not path.exists():
        return "is missing" if expected["runs"] or expected["label_sets"] else None
    if recorded.get("root") != expected["root"]:
        return (f"was built for the store at {recorded.get('root')} (a copy?); plain DuckDB users would read "
                "that store's files")
    differ = [k for k in expected if recorded.get(k) != expected[k]]
    if differ:
        return (f"does not match the store ({', '.join(differ)} differ: the store holds {_state_text(expected)}, "
                f"the catalog was built for {_state_text(recorded)})")
    import duckdb

    try:
        with duckdb.connect(str(path), read_only=True) as con:
            con.execute("SELECT count(*) FROM runs").fetchone()
    except duckdb.Error as exc:
        return f"cannot be read by DuckDB ({str(exc).splitlines()[0][:200]})"
    return None


def _state_text(state: dict) -> str:
    return (f"{'runs' if state.get('runs') else 'no runs'}, "
            f"{'label sets' if state.get('label_sets') else 'no label sets'}, "
            f"tables {', '.join(state.get('run_tables', []) + state.get('label_tables', [])) or 'none'}"
            + (", damage listed around" if state.get("listed") else ""))


def _entries(folder: Path) -> list:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except FileNotFoundError:
        return []


def check_run_names(meta: dict) -> None:
    """A run's name and model are printed by every listing: refuse ones that cannot be (a lone surrogate, as
    an undecodable command-line byte becomes; NUL and other control characters)."""
    for field in ("name", "model"):
        value = meta.get(field)
        if isinstance(value, str) and (not printable_text(value) or not value.strip()):
            raise HarnessError(f"run {field} {value!r} is not printable text (a lone surrogate, NUL or another "
                               "control character, or nothing but spaces); expected a name such as 'resnet50-ft'")


def printable_text(value: str) -> bool:
    """Text UTF-8 can store that holds no control character."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in value)


def text_problem(table, where: str) -> str | None:
    """A sentence about a NUL character in a string column of an Arrow ``table`` (it ends C strings and
    file names: 'a\\x00' would print as 'a'), or None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for name in table.column_names:
        column = table.column(name)
        while pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            column = pc.list_flatten(column)
        if (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)) and pc.any(pc.match_substring(column, "\x00")).as_py():
            first = next(v for v in column.to_pylist() if v is not None and "\x00" in v)
            return f"{where}: column {name} holds {first[:60]!r} with a NUL character; expected plain text"
    return None


def file_record(path: Path) -> dict:
    """What a label set's meta.json keeps of each of its files: bytes and sha256, so that a file swapped
    for another of the same rows (another label set's, a hand edit) is found."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def file_problem(path: Path, record: dict, deep: bool) -> str | None:
    """Why ``path`` is not the file ``record`` describes (its size always, with ``deep`` its sha256)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"{path} is missing"
    if size != record["bytes"]:
        return f"{path} holds {size:,} bytes; {record['bytes']:,} were written"
    if deep and file_record(path)["sha256"] != record["sha256"]:
        return f"{path} is not the file that was written (its sha256 differs; another label set's file?)"
    return None
