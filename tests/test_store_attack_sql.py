"""Issue 22, security: `harness sql` without --write writes nothing anywhere, however the statement is spelled.

DuckDB's own parser classifies every statement (harness/sqlguard.py); an EXPLAIN passes only when the
statement it explains does, since EXPLAIN ANALYZE in any spelling runs it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.sqlguard import explained

REPO = Path(__file__).resolve().parent.parent
KEYS = ["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.JPEG", "ILSVRC2012_val_00000003.JPEG"]


@pytest.fixture
def one_run(store):
    run_id = store.write_run({"name": "r", "suite": "real", "dataset": "d"},
                             {"predictions": pd.DataFrame({"key": KEYS, "top_classes": [[1], [2], [3]]})})
    return run_id


def copy_into(target: Path, run_id: str) -> str:
    return f"COPY (SELECT * EXCLUDE (run_id) FROM predictions WHERE run_id = '{run_id}') TO '{target}' (FORMAT PARQUET)"


SPELLINGS = [
    "EXPLAIN (ANALYZE) {copy}",
    "EXPLAIN (FORMAT json, ANALYZE) {copy}",
    "/* a comment */ EXPLAIN /* another */ ANALYZE {copy}",
    "-- a line comment\nexplain\n  analyse\n{copy}",
    "EXPLAIN (ANALYZE true) {copy}",
    "SELECT 1; EXPLAIN (ANALYZE) {copy};",
    "EXPLAIN {copy}",  # no ANALYZE: would not run, but is no reading statement either
]


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("target", ["run folder", "catalog", "outside"])
def test_no_spelling_of_explain_runs_a_copy(store, one_run, tmp_path, spelling, target):
    path = {"run folder": store.run_dir(one_run) / "predictions-00001.parquet", "catalog": store.catalog_path,
            "outside": tmp_path / "elsewhere.parquet"}[target]
    before = path.read_bytes() if path.exists() else None
    with pytest.raises(HarnessError, match="EXPLAIN COPY statements change files or settings.*--write"):
        store.sql(spelling.format(copy=copy_into(path, one_run)))
    assert (path.read_bytes() if path.exists() else None) == before
    with duckdb.connect(str(store.catalog_path), read_only=True) as con:  # plain DuckDB counts the run once
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 3


@pytest.mark.parametrize("query, rows", [
    ("EXPLAIN ANALYZE SELECT count(*) FROM predictions", None),
    ("EXPLAIN (ANALYZE) SELECT count(*) FROM predictions", None),
    ("/* how many */ SELECT count(*) AS n FROM predictions", 3),
    ("FROM predictions SELECT count(*) AS n", 3),
    ("WITH p AS (SELECT * FROM predictions) SELECT count(*) AS n FROM p", 3),
])
def test_reading_statements_still_run(store, one_run, query, rows):
    frame = store.sql(query)
    if rows is not None:
        assert frame["n"].tolist() == [rows]
    else:
        assert len(frame) >= 1


def test_explained_statement_is_found_by_duckdbs_tokenizer():
    assert explained("EXPLAIN (FORMAT 'x(', ANALYZE) /* ) */ SELECT 1") == "SELECT 1"
    assert explained("explain analyse -- no\nCOPY t TO 'f'") == "COPY t TO 'f'"
    assert explained("EXPLAIN (ANALYZE") is None
    assert explained("SELECT 1") is None


def test_reading_a_file_outside_the_store_is_allowed_and_settings_are_locked(store, one_run, tmp_path):
    """The documented choice: `sql` reads any file the user can read (joins with the user's own tables)."""
    names = tmp_path / "names.csv"
    names.write_text("cls,name\n1,tench\n2,goldfish\n")
    frame = store.sql(f"SELECT p.key, n.name FROM predictions p JOIN read_csv('{names}') n "
                      "ON p.top_classes[1] = n.cls ORDER BY p.key")
    assert frame["name"].tolist() == ["tench", "goldfish"]
    settings = store.sql("SELECT current_setting('lock_configuration') AS locked, "
                         "current_setting('autoinstall_known_extensions') AS install, "
                         "current_setting('autoload_known_extensions') AS autoload").iloc[0]
    assert (bool(settings["locked"]), bool(settings["install"]), bool(settings["autoload"])) == (True, False, False)
    with pytest.raises(HarnessError, match="SET statements change files or settings"):
        store.sql("SET lock_configuration = false")


@pytest.mark.parametrize("query", ["", "   ", "-- only a comment", "/* nothing */ ;"])
def test_empty_sql_is_one_clear_error(store, capsys, query):
    for write in ([], ["--write"]):
        assert main(["--store", str(store.root), "sql", query, *write]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: the SQL text holds no statement") and err.count("\n") == 1, err


def test_the_cli_refuses_explain_analyze_copy_and_writes_nothing(store, one_run, tmp_path):
    target = tmp_path / "out.csv"
    proc = subprocess.run([sys.executable, "-m", "harness", "--store", str(store.root), "sql",
                           f"EXPLAIN (ANALYZE) COPY (SELECT 1 AS a) TO '{target}'"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("error: EXPLAIN COPY statements") and not target.exists()
    assert "Traceback" not in proc.stderr
