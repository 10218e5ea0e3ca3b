"""Issue 13's measured failures, each as it was found: damage stays with its own run or label set, scores
never count duplicates or holes, `harness sql` only reads, any path works, files follow the umask, a failed
import leaves the store as it was."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from harness.errors import HarnessError
from harness.score import score_run
from harness.store import Store, StoreWarning

REPO = Path(__file__).resolve().parent.parent
KEYS = ["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.JPEG", "ILSVRC2012_val_00000003.JPEG"]


def harness(store: Store, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "--store", str(store.root), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def two_runs(store: Store) -> tuple[str, str]:
    """Two complete three-image runs and a label set: classes 1, 2, 3 are right."""
    store.put_label_set("mine", {"dataset": "d"}, {"labels": pd.DataFrame({"key": KEYS, "labels": [[1], [2], [3]]})})
    ids = []
    for name, top in (("good", [1, 2, 3]), ("victim", [1, 2, 0])):
        ids.append(store.write_run({"name": name, "suite": "real", "dataset": "d"},
                                   {"predictions": pd.DataFrame({"key": KEYS, "top_classes": [[c] for c in top]})}))
    return ids[0], ids[1]


def chunk(store: Store, run_id: str) -> Path:
    [path] = store.run_dir(run_id).glob("predictions-*.parquet")
    return path


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_a_damaged_chunk_affects_only_its_run(store, damage):
    good, victim = two_runs(store)
    path = chunk(store, victim)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-20])
    else:
        path.unlink()
    with pytest.warns(StoreWarning, match=f"run {victim} is damaged.*{path.name}"):
        rows = store.sql("SELECT run_id, count(*) AS n FROM predictions GROUP BY run_id")
    assert rows.to_dict("records") == [{"run_id": good, "n": 3}]
    assert score_run(store, good, "mine")["top1"] == 1.0
    with pytest.raises(HarnessError, match=f"run {victim} is damaged: .*{path.name}"):
        score_run(store, victim, "mine")  # an error naming the file, not "top-1 nan%, n=0"
    for command in (["runs"], ["catalog"], ["sql", "SELECT count(*) AS n FROM predictions"], ["score", "--run", good,
                    "--labels", "mine"]):
        proc = harness(store, *command)
        assert proc.returncode == 0, (command, proc.stderr)
        assert "Traceback" not in proc.stderr
    check = harness(store, "check")
    assert check.returncode == 1 and f"run {victim}: " in check.stdout and path.name in check.stdout
    repaired = harness(store, "check", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert not store.run_dir(victim).exists()
    assert list((store.root / "damaged" / "runs").glob(f"run_id={victim}.*"))  # moved aside, not deleted
    assert harness(store, "check").stdout.strip().endswith("no problems found")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.sql("SELECT count(*) AS n FROM predictions")["n"][0] == 3


def test_garbage_run_json_is_reported_not_fatal(store):
    good, victim = two_runs(store)
    (store.run_dir(victim) / "run.json").write_text("{garbage")
    with pytest.warns(StoreWarning, match="run.json"):
        assert [m["run_id"] for m in store.list_runs()] == [good]
    proc = harness(store, "runs")
    assert proc.returncode == 0 and good in proc.stdout
    assert harness(store, "catalog").returncode == 0
    with duckdb.connect(str(store.catalog_path), read_only=True) as con:  # plain DuckDB leaves it out too
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 3
    check = harness(store, "check")
    assert check.returncode == 1 and "run.json" in check.stdout


def test_a_copy_of_a_chunk_in_a_run_folder_is_not_counted(store):
    good, _ = two_runs(store)
    path = chunk(store, good)
    copy = path.with_name("predictions-00001.parquet")
    query = f"COPY (SELECT * EXCLUDE (run_id) FROM predictions WHERE run_id = '{good}') TO '{copy}' (FORMAT PARQUET)"
    refused = harness(store, "sql", query)
    assert refused.returncode == 2 and "COPY statements" in refused.stderr and "--write" in refused.stderr
    assert not copy.exists()
    assert harness(store, "sql", "--write", query).returncode == 0 and copy.exists()
    result = score_run(store, good, "mine")
    assert (result["n"], result["n_predicted"], result["top1"]) == (3, 3, 1.0)  # n=6 before
    check = harness(store, "check")
    assert check.returncode == 1 and f"{copy} was not written by the run" in check.stdout


def test_duplicate_keys_are_refused_naming_the_run(store):
    writer = store.begin_run({"name": "twice", "suite": "real", "dataset": "d"})
    writer.write_chunk(pd.DataFrame({"key": KEYS, "top_classes": [[1]] * 3}))
    writer.write_chunk(pd.DataFrame({"key": KEYS[:1], "top_classes": [[1]]}))
    with pytest.raises(HarnessError, match=f"run {writer.run_id}: 1 key values of table predictions occur more"):
        writer.finish()
    with pytest.raises(HarnessError, match="occur more than once"):
        store.write_run({"name": "dup"}, {"predictions": pd.DataFrame({"key": ["a", "a"], "top_classes": [[1]] * 2})})


@pytest.mark.parametrize("statement", [
    "CREATE TABLE t AS SELECT 1", "ATTACH 'x.duckdb'", "INSTALL httpfs", "LOAD httpfs", "EXPORT DATABASE 'x'",
    "SELECT 1; INSERT INTO t VALUES (1)", "SET threads = 1", "EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'"])
def test_sql_refuses_writing_statements(store, statement):
    with pytest.raises(HarnessError, match="statements change files or settings.*--write"):
        store.sql(statement)


def test_a_resumed_run_predicts_a_damaged_chunk_again(store):
    writer = store.begin_run({"name": "r", "suite": "real", "dataset": "d"})
    first = writer.write_chunk(pd.DataFrame({"key": KEYS[:2], "top_classes": [[1], [2]]}))
    writer.write_chunk(pd.DataFrame({"key": KEYS[2:], "top_classes": [[3]]}))
    first.write_bytes(first.read_bytes()[:100])
    resumed = store.begin_run({}, run_id=writer.run_id)
    with pytest.warns(StoreWarning, match=f"{first.name}.*predicted again"):
        assert resumed.stored_keys() == {KEYS[2]}
    resumed.write_chunk(pd.DataFrame({"key": KEYS[:2], "top_classes": [[1], [2]]}))
    resumed.finish()
    assert score_run(store, writer.run_id, "mine" if store.has_label_set("mine") else _labels(store))["top1"] == 1.0


def _labels(store: Store) -> str:
    store.put_label_set("mine", {"dataset": "d"}, {"labels": pd.DataFrame({"key": KEYS, "labels": [[1], [2], [3]]})})
    return "mine"


def test_a_truncated_label_set_is_left_out(store):
    good, _ = two_runs(store)
    store.put_label_set("other", {"dataset": "d"}, {"labels": pd.DataFrame({"key": KEYS, "labels": [[0]] * 3})})
    path = store.label_set_dir("other") / "labels.parquet"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.warns(StoreWarning, match="label set other is damaged"):
        assert set(store.sql("SELECT DISTINCT label_set FROM labels")["label_set"]) == {"mine"}
    assert score_run(store, good, "mine")["top1"] == 1.0
    with pytest.raises(HarnessError, match="label set 'other' is damaged"):
        score_run(store, good, "other")


@pytest.mark.parametrize("folder", ["it's", "a[1]", "x y"])
def test_any_store_path_works(tmp_path, folder):
    store = Store(tmp_path / folder / "store")
    good, _ = two_runs(store)
    assert score_run(store, good, "mine")["top1"] == 1.0
    proc = harness(store, "sql", "--format", "csv", "SELECT count(*) AS n FROM predictions JOIN runs USING (run_id)")
    assert proc.returncode == 0 and proc.stdout.split() == ["n", "6"], proc.stderr
    with duckdb.connect(str(store.catalog_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 6


def test_files_and_folders_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        store = Store(tmp_path / "store")
        two_runs(store)
        writer = store.begin_run({"name": "chunked", "suite": "real", "dataset": "d"})
        writer.write_chunk(pd.DataFrame({"key": KEYS, "top_classes": [[1]] * 3}))
        writer.finish()
    finally:
        os.umask(old)
    for path in store.root.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.name != ".lock":
            assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))


def test_failed_import_on_a_fresh_store_leaves_it_as_it_was(tmp_path):
    store = Store(tmp_path / "store")
    bad = tmp_path / "bad.csv"
    bad.write_text("file_name,predicted_class\nnot-an-imagenet-file.jpg,3\n")
    proc = harness(store, "import", "--suite", "real", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not list((store.root / "runs").iterdir())
    assert not [p for p in (store.root / "labelsets").iterdir() if p.name != ".lock"]  # no shipped label sets


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MB file system (tmpfs), to fill up."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True,
                           text=True)
    if mount.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"CI must be able to mount a small tmpfs: {mount.stderr.strip()}")
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(disk: Path, leave: int, name: str = "filler") -> None:
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    (disk / name).write_bytes(b"\0" * max(0, free - leave))


def test_disk_full_stops_cleanly_and_the_run_resumes(small_disk):
    store = Store(small_disk / "store")
    _labels(store)
    writer = store.begin_run({"name": "big", "suite": "real", "dataset": "d"})
    writer.write_chunk(pd.DataFrame({"key": KEYS[:1], "top_classes": [[1]]}))
    fill(small_disk, leave=8192)
    noise = pd.DataFrame({"key": [f"n{i}" for i in range(20_000)], "top_classes": [[i % 1000] for i in range(20_000)]})
    with pytest.raises(HarnessError, match=f"no space left on the device holding {store.run_dir(writer.run_id)}"):
        writer.write_chunk(noise)
    fill(small_disk, leave=0, name="filler2")  # not a byte left, not even for run.json
    with pytest.raises(HarnessError, match=f"run {writer.run_id} could not be marked failed.*stays resumable"):
        writer.fail("no space")
    (small_disk / "filler").unlink()
    (small_disk / "filler2").unlink()
    assert not [p for p in store.run_dir(writer.run_id).iterdir() if p.name.endswith(".tmp")]
    resumed = store.begin_run({}, run_id=writer.run_id)
    assert resumed.stored_keys() == {KEYS[0]}
    resumed.write_chunk(pd.DataFrame({"key": KEYS[1:], "top_classes": [[2], [3]]}))
    resumed.finish()
    assert score_run(store, writer.run_id, "mine")["top1"] == 1.0


def test_disk_full_import_leaves_the_store_as_it_was(small_disk, shared_data):
    store = Store(small_disk / "store")
    fill(small_disk, leave=64 * 1024)
    before = sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*"))
    proc = harness(store, "import", "--suite", "real", str(shared_data / "imagenet/model_predictions/ResNet50.csv"))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "no space left on the device holding" in proc.stderr
    assert sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*")) == before
