"""Issue 22, corruption: one bad file in the store is its owner's damage (left out with a warning naming
the file, reported by `check`, moved aside by `check --repair`), never every command's crash or a silent
wrong number; the catalog follows the store it is in."""
from __future__ import annotations

import json
import os
import shutil
import warnings

import duckdb
import pandas as pd
import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.score import score_run
from harness.store import Store, StoreWarning

KEYS = ["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.JPEG", "ILSVRC2012_val_00000003.JPEG"]


def two_runs(store: Store) -> tuple[str, str]:
    """Two complete three-image runs and a label set: 'good' is right on all three, 'victim' on two."""
    store.put_label_set("mine", {"dataset": "d"}, {"labels": pd.DataFrame({"key": KEYS, "labels": [[1], [2], [3]]})})
    return tuple(store.write_run({"name": name, "suite": "real", "dataset": "d"},
                                 {"predictions": pd.DataFrame({"key": KEYS, "top_classes": [[c] for c in top]})})
                 for name, top in (("good", [1, 2, 3]), ("victim", [1, 2, 0])))


def cli(capsys, store: Store, *argv: str) -> tuple[int, str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        code = main(["--store", str(store.root), *argv])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


def edit_json(path, **fields) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


RUN_JSON_DAMAGE = {
    "files entry of the wrong type": lambda meta: {"files": {name: "x" for name in meta["files"]}},
    "files as a list": lambda meta: {"files": list(meta["files"])},
    "files naming a path outside": lambda meta: {"files": {"../../x.parquet": {"rows": 3, "bytes": 1}}},
    "n_rows as a string": lambda meta: {"n_rows": "3"},
    "created_at null": lambda meta: {"created_at": None},
    "status a number": lambda meta: {"status": 7},
    "name a list": lambda meta: {"name": ["victim"]},
}


@pytest.mark.parametrize("damage", RUN_JSON_DAMAGE)
def test_a_run_json_of_the_wrong_type_is_its_runs_damage(store, capsys, damage):
    good, victim = two_runs(store)
    path = store.run_dir(victim) / "run.json"
    edit_json(path, **RUN_JSON_DAMAGE[damage](json.loads(path.read_text())))
    with pytest.warns(StoreWarning, match=f"run {victim} is damaged.*run.json is not a run.json the store wrote"):
        assert [m["run_id"] for m in store.list_runs()] == [good]
    with pytest.warns(StoreWarning, match=f"run {victim} is damaged"):
        assert store.sql("SELECT run_id, count(*) AS n FROM predictions GROUP BY run_id").values.tolist() == [[good, 3]]
    assert score_run(store, good, "mine")["top1"] == 1.0
    with pytest.raises(HarnessError, match=f"{victim}.*run.json is not a run.json the store wrote"):
        score_run(store, victim, "mine")
    code, out, _ = cli(capsys, store, "runs")
    assert code == 0 and good in out and victim not in out
    code, out, _ = cli(capsys, store, "check")
    assert code == 1 and f"run {victim}: " in out and "run.json is not a run.json the store wrote" in out
    code, out, _ = cli(capsys, store, "check", "--repair")
    assert code == 0 and "moved to" in out
    assert list((store.root / "damaged" / "runs").glob(f"run_id={victim}.*"))
    assert cli(capsys, store, "check")[1].strip().endswith("no problems found")


@pytest.mark.parametrize("fields", [{"n_rows": "3"}, {"n_rows": {"labels": "3"}}, {"created_at": None},
                                    {"dataset": 5}])
def test_a_label_set_meta_json_of_the_wrong_type_is_its_damage(store, capsys, fields):
    good, _ = two_runs(store)
    store.put_label_set("other", {"dataset": "d"}, {"labels": pd.DataFrame({"key": KEYS, "labels": [[1]] * 3})})
    edit_json(store.label_set_dir("other") / "meta.json", **fields)
    with pytest.warns(StoreWarning, match="label set other is damaged.*meta.json is not a label set meta.json"):
        assert [m["name"] for m in store.list_label_sets()] == ["mine"]
    assert score_run(store, good, "mine")["top1"] == 1.0
    code, out, _ = cli(capsys, store, "sql", "SELECT DISTINCT label_set FROM labels")
    assert code == 0 and "mine" in out and "other" not in out
    code, out, _ = cli(capsys, store, "check", "--repair")
    assert code == 0 and "label set other: " in out and "moved to" in out
    assert not store.label_set_dir("other").exists()


def test_a_garbled_chunk_of_the_same_size_is_left_out_of_sql(store, capsys):
    good, victim = two_runs(store)
    [chunk] = store.run_dir(victim).glob("predictions-*.parquet")
    chunk.write_bytes(bytes(reversed(chunk.read_bytes())))  # same size, nothing readable
    with pytest.warns(StoreWarning, match=f"run {victim} is damaged.*{chunk.name}"):
        rows = store.sql("SELECT run_id, count(*) AS n FROM predictions GROUP BY run_id")
    assert rows.values.tolist() == [[good, 3]]
    code, out, _ = cli(capsys, store, "sql", "SELECT run_id, top_classes FROM predictions ORDER BY key")
    assert code == 0 and good in out and victim not in out
    code, out, _ = cli(capsys, store, "runs")
    assert code == 0 and good in out
    code, out, _ = cli(capsys, store, "check", "--repair")
    assert code == 0 and chunk.name in out and "moved to" in out


def test_the_folder_names_the_run_not_its_run_json(store, capsys):
    good, victim = two_runs(store)
    edit_json(store.run_dir(victim) / "run.json", run_id=good)  # claims to be the other run
    assert sorted(m["run_id"] for m in store.list_runs()) == sorted([good, victim])
    assert store.run_meta(victim)["run_id"] == victim and store.resolve_run("victim")["run_id"] == victim
    assert score_run(store, victim, "mine")["top1"] == pytest.approx(2 / 3)
    code, out, _ = cli(capsys, store, "score", "--run", "victim", "--labels", "mine", "--json")
    result = json.loads(out)
    assert code == 0 and (result["run_id"], result["top1"]) == (victim, pytest.approx(2 / 3))
    store.refresh_catalog()
    with duckdb.connect(str(store.catalog_path), read_only=True) as con:
        assert sorted(r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()) == sorted([good, victim])


def catalog_rows(store: Store) -> list:
    with duckdb.connect(str(store.catalog_path), read_only=True) as con:
        return con.execute("SELECT run_id, count(*) FROM predictions GROUP BY ALL ORDER BY ALL").fetchall()


def test_a_copied_store_reads_its_own_files(tmp_path):
    original = Store(tmp_path / "original")
    good, victim = two_runs(original)
    shutil.copytree(original.root, tmp_path / "copy")
    shutil.rmtree(original.root / "runs" / f"run_id={victim}")  # the original changes after the copy
    copy = Store(tmp_path / "copy")
    assert catalog_rows(copy) == sorted([(good, 3), (victim, 3)])


def test_a_catalog_that_misses_a_table_or_does_not_open_is_reported_and_rebuilt(tmp_path, capsys):
    """A writer killed between renaming its run into place and registering it: plain DuckDB misses its rows."""
    store = Store(tmp_path / "store")
    good, victim = two_runs(store)
    elsewhere = Store(tmp_path / "elsewhere")
    captions = elsewhere.write_run({"name": "c", "suite": "anet-captions", "dataset": "anet"}, {"dense_captions": {
        "key": ["v_a"], "rank": [0], "start": [1.0], "end": [2.0], "sentence": ["a man"]}})
    os.rename(elsewhere.run_dir(captions), store.run_dir(captions))  # in place, never registered
    with duckdb.connect(str(store.catalog_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM dense_captions").fetchone()[0] == 0
    code, out, _ = cli(capsys, store, "check")
    assert code == 1 and "catalog.duckdb: does not match the store (run_tables differ" in out
    assert cli(capsys, store, "check", "--repair")[0] == 0
    with duckdb.connect(str(store.catalog_path), read_only=True) as con:
        assert con.execute("SELECT run_id, sentence FROM dense_captions").fetchall() == [(captions, "a man")]
    store.catalog_path.write_bytes(b"")  # empty, as plain DuckDB users found it after a kill
    code, out, _ = cli(capsys, store, "check")
    assert code == 1 and "cannot be read by DuckDB" in out
    assert cli(capsys, store, "check", "--repair")[0] == 0
    assert catalog_rows(store) == sorted([(good, 3), (victim, 3)])


def test_a_store_opened_rebuilds_a_catalog_that_missed_its_first_run(tmp_path):
    elsewhere = Store(tmp_path / "elsewhere")
    good, _ = two_runs(elsewhere)
    store = Store(tmp_path / "store")
    store.refresh_catalog()
    os.rename(elsewhere.run_dir(good), store.run_dir(good))
    Store(store.root)  # any command opening the store
    assert catalog_rows(store) == [(good, 3)]


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_a_damaged_activitynet_run_is_an_error_not_a_zero(store, capsys, tmp_path, damage):
    submission = tmp_path / "captions.json"
    submission.write_text(json.dumps({"version": "VERSION 1.0", "external_data": {"used": False}, "results": {
        "v_uqiMw7tQ1Cc": [{"sentence": "a man is playing", "timestamp": [0.0, 20.0]}]}}))
    code, out, _ = cli(capsys, store, "import", str(submission), "--suite", "anet-captions")
    assert code == 0
    [run] = store.list_runs()
    [chunk] = store.run_dir(run["run_id"]).glob("dense_captions-*.parquet")
    if damage == "truncated":
        chunk.write_bytes(chunk.read_bytes()[:-10])
    else:
        chunk.unlink()
    code, out, err = cli(capsys, store, "score", "--run", run["run_id"])
    assert code == 2 and f"run {run['run_id']} is damaged" in err and chunk.name in err
    assert "0.00" not in out


def test_swapped_label_set_files_are_found(store, capsys):
    """Two label sets of the same rows exchange their labels file: same size, same row count, other labels."""
    good, _ = two_runs(store)
    store.put_label_set("wrong", {"dataset": "d"}, {"labels": pd.DataFrame({"key": KEYS, "labels": [[4], [5], [6]]})})
    mine, wrong = (store.label_set_dir(n) / "labels.parquet" for n in ("mine", "wrong"))
    assert mine.stat().st_size == wrong.stat().st_size
    mine_bytes = mine.read_bytes()
    mine.write_bytes(wrong.read_bytes())
    wrong.write_bytes(mine_bytes)
    with pytest.raises(HarnessError, match="label set 'mine' is damaged: .*labels.parquet is not the file that was "
                                           "written"):
        score_run(store, good, "mine")  # not top-1 0.00 against the other label set's labels
    code, out, _ = cli(capsys, store, "check")
    assert code == 1 and "label set mine: " in out and "label set wrong: " in out and "sha256 differs" in out
