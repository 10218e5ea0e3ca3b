"""The store under faults, for real: kill -9 at each step of a write, two writers at once, a lost catalog."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from harness.store import Store

REPO = Path(__file__).resolve().parent.parent

# A writer that does what the runner does (resume by stored keys, one chunk per batch).
WRITER = """
import sys
import numpy as np
import pyarrow as pa
from harness.store import Store

store = Store(sys.argv[1])
writer = store.begin_run({"name": "w", "suite": "real", "dataset": "imagenet-val"}, run_id=sys.argv[2])
done = writer.stored_keys()
todo = [k for k in (f"k{i:05d}" for i in range(int(sys.argv[3]))) if k not in done]
print("writing", flush=True)
for start in range(0, len(todo), 1000):
    keys = todo[start:start + 1000]
    logits = np.random.default_rng(start).random((len(keys), 250), dtype=np.float32)
    writer.write_chunk(pa.table({"key": keys, "top_classes": [[int(k[1:]) % 1000] for k in keys],
                                 "logits": pa.array(list(logits), pa.list_(pa.float32()))}))
writer.finish()
"""


def check_no_partial_file(store: Store, run_dir: Path) -> int:
    """Every visible chunk reads whole, the views agree with the files, no key twice; returns the rows."""
    n = 0
    keys: list[str] = []
    for path in run_dir.glob("predictions-*.parquet"):
        table = pq.read_table(path)  # a half-written file would fail here
        n += table.num_rows
        keys += table.column("key").to_pylist()
    assert len(keys) == len(set(keys))
    assert store.sql("SELECT count(*) AS n FROM predictions_all")["n"][0] == n
    return n


# Where each writer kills itself (REALBENCH_FAULT, harness/faults.py): at every step of a chunk's write, at
# its 1st to 3rd chunk, so that the crash moment is the writer's progress, never the machine's speed.
KILL_POINTS = [("parquet-written", 1), ("parquet-linked", 2), ("chunk-stored", 1), ("parquet-written", 3),
               ("parquet-linked", 1), ("chunk-stored", 3), ("parquet-written", 2), ("parquet-linked", 3)]


@pytest.mark.slow
def test_kill9_at_every_step_of_a_write_loses_nothing_and_duplicates_nothing(store):
    total, run_id = 40_000, "killed-writer"
    kills, before = 0, -1
    while True:
        env = dict(os.environ)
        if kills < len(KILL_POINTS):
            point, count = KILL_POINTS[kills]
            env["REALBENCH_FAULT"] = f"at={point},count={count},action=SIGKILL"
        proc = subprocess.run([sys.executable, "-c", WRITER, str(store.root), run_id, str(total)], cwd=REPO,
                              capture_output=True, text=True, env=env, timeout=300)
        run_dir = store.run_dir(run_id)
        rows = check_no_partial_file(store, run_dir)
        assert rows >= before  # what was stored stays stored
        if kills < len(KILL_POINTS):  # the chunks before the fatal one, and the fatal one once it is visible
            assert rows - before <= 3000 or before < 0
        before = rows
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        kills += 1
        assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
        assert store.sql("SELECT count(*) AS n FROM predictions")["n"][0] == 0  # unfinished: not in the view
        if KILL_POINTS[kills - 1][0] != "chunk-stored":  # killed with the chunk's temporary file on disk
            assert [p for p in run_dir.iterdir() if p.name.startswith(".predictions.")]
    assert kills == len(KILL_POINTS)
    rows = store.sql("SELECT key FROM predictions")
    assert len(rows) == total and rows["key"].is_unique
    # Temporary files of killed writers are dot-files: never globbed by the views.
    assert all(p.name.startswith(".") for p in run_dir.iterdir() if not p.name.startswith(("predictions-", "run.")))


def test_lost_or_corrupt_catalog_is_rebuilt_from_the_parquet_files(store):
    for i in range(2):
        store.write_run({"name": f"m{i}", "suite": "real", "dataset": "imagenet-val"},
                        {"predictions": pd.DataFrame({"key": ["a", "b", "c"], "top_classes": [[i]] * 3})})
    expected = store.sql("SELECT run_id, count(*) AS n FROM predictions GROUP BY run_id ORDER BY run_id")

    def catalog_rows():
        with duckdb.connect(str(store.catalog_path), read_only=True) as con:  # plain DuckDB, as users open it
            return con.execute("SELECT run_id, count(*) AS n FROM predictions GROUP BY run_id ORDER BY run_id").df()

    for damage in (lambda p: p.unlink(), lambda p: p.write_bytes(b"this is not a DuckDB file" * 100)):
        damage(store.catalog_path)
        proc = subprocess.run([sys.executable, "-m", "harness", "--store", str(store.root), "catalog"],
                              capture_output=True, text=True, cwd=REPO, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "catalog rebuilt from the Parquet files" in proc.stdout
        pd.testing.assert_frame_equal(catalog_rows(), expected)


def stopped_at_first_chunk(args: list[str], env: dict) -> subprocess.Popen:
    """A run that stops itself (SIGSTOP) once its first chunk is stored, holding its run's lock."""
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**env, "REALBENCH_FAULT": "at=chunk-stored,count=1,action=SIGSTOP"})
    _, status = os.waitpid(proc.pid, os.WUNTRACED)  # returns when the child stops (or ends)
    if not os.WIFSTOPPED(status):
        proc.returncode = os.waitstatus_to_exitcode(status)
        raise AssertionError(f"the run ended before its first chunk: {proc.communicate()}")
    return proc


@pytest.mark.slow
def test_same_command_twice_at_once_gives_two_whole_runs(store):
    """The second process finds the first one's unfinished run locked and starts its own instead of writing
    into it; then both write at once. Each stops itself at its first chunk, the first one holding its lock
    while the second claims, so the order does not depend on the machine's speed."""
    args = [sys.executable, "-m", "harness", "--store", str(store.root), "run", "--model", "efficientnet-lite0",
            "--suite", "real", "--limit", "24", "--batch-size", "4", "--chunk-images", "4", "--workers", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = stopped_at_first_chunk(args, env)
    try:
        second = stopped_at_first_chunk(args, env)
    finally:
        first.send_signal(signal.SIGCONT)
    second.send_signal(signal.SIGCONT)
    (_, err1), (_, err2) = first.communicate(timeout=900), second.communicate(timeout=900)
    assert (first.returncode, second.returncode) == (0, 0), (err1, err2)
    assert "resuming" not in err2
    runs = store.sql("SELECT run_id, status FROM runs")
    assert len(runs) == 2 and set(runs["status"]) == {"complete"}
    counts = store.sql("SELECT run_id, count(*) AS n, count(DISTINCT key) AS keys FROM predictions GROUP BY run_id")
    assert counts["n"].tolist() == [24, 24] and counts["keys"].tolist() == [24, 24]


# strace kills the writer with a real SIGKILL on entry to a chosen system call, before it runs: a crash at
# an exact point of a write, with no hook in the code.


def needs_strace(test):
    """Skip where strace is missing, except on CI (env CI set), where scripts/setup.sh installs it: fail there."""
    import functools

    @functools.wraps(test)
    def run(*args, **kwargs):
        if shutil.which("strace") is None:
            if os.environ.get("CI"):
                pytest.fail("strace is missing on CI; scripts/setup.sh installs the Debian package strace")
            pytest.skip("the crash-point tests need strace: apt-get install strace (scripts/setup.sh does it)")
        return test(*args, **kwargs)
    return run

QUIET_ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # no .pyc renames among the counted calls

REPLACE_LABELS = """
import sys
import pandas as pd
from harness.store import Store

Store(sys.argv[1]).put_label_set("mine", {"dataset": "d"}, {"labels": pd.DataFrame({"key": ["a"], "labels": [[2]]})})
"""


def traced(log: Path, calls: str, command: list[str], inject_at: int | None = None) -> subprocess.CompletedProcess:
    inject = ["-e", f"inject={calls}:signal=KILL:when={inject_at}"] if inject_at else []
    proc = subprocess.run(["strace", "-f", "-qq", "-o", str(log), "-e", f"trace={calls}", *inject, *command],
                          capture_output=True, text=True, cwd=REPO, timeout=600, env=QUIET_ENV)
    if proc.returncode != 0 and "ptrace" in proc.stderr:
        if os.environ.get("CI"):
            pytest.fail(f"strace cannot trace on CI (ptrace refused): {proc.stderr.strip()[:200]}")
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip()[:200]}")
    return proc


@pytest.mark.slow
@needs_strace
def test_label_set_replacement_killed_at_any_step_is_recovered(tmp_path):
    store = Store(tmp_path / "store")
    command = [sys.executable, "-c", REPLACE_LABELS, str(store.root)]
    # strace counts `when` per system call, so each case traces the one call it kills at.
    exchanges, unlinks = "renameat2", "unlink,unlinkat"

    def swap(line):  # the new version and the old one exchange names in one step
        return "label_set=mine\", " in line and "RENAME_EXCHANGE" in line

    def call_number(calls, is_it):
        """The number of the call ``is_it`` among ``calls`` of a replacement that is not killed."""
        store.put_label_set("mine", {"dataset": "d"}, {"labels": pd.DataFrame({"key": ["a"], "labels": [[1]]})})
        assert traced(tmp_path / "log", calls, command).returncode == 0
        lines = [line for line in (tmp_path / "log").read_text().splitlines() if "(" in line]
        return next(n for n, line in enumerate(lines, 1) if is_it(line))

    cases = [  # (calls, the one to kill at, after it by, the labels left, whether the label set's folder is there)
        (exchanges, swap, 0, [1], True),  # the new version written aside, the old one still in place
        (unlinks, lambda line: "unlinkat(" in line, 0, [2], True),  # the new one in; the old one being deleted
    ]
    for calls, is_it, after, survivor, in_place in cases:
        kill_at = call_number(calls, is_it) + after
        store.put_label_set("mine", {"dataset": "d"}, {"labels": pd.DataFrame({"key": ["a"], "labels": [[1]]})})
        assert traced(tmp_path / "log", calls, command, kill_at).returncode == -signal.SIGKILL
        assert store.label_set_dir("mine").exists() == in_place
        assert list((store.root / "labelsets").glob(".label_set=mine.*"))  # what the killed writer left
        store = Store(store.root)  # opening the store puts the old folder back, or tidies up
        assert store.sql("SELECT labels[1] AS top FROM labels WHERE label_set = 'mine'")["top"].tolist() == survivor
        assert not list((store.root / "labelsets").glob(".label_set=*"))


@pytest.mark.slow
@needs_strace
def test_import_killed_mid_write_leaves_no_run(store, shared_data, tmp_path):
    predictions = shared_data / "imagenet/model_predictions/ResNet50.csv"
    command = [sys.executable, "-m", "harness", "--store", str(store.root), "import", str(predictions),
               "--suite", "real"]
    killed = traced(tmp_path / "log", "link,linkat", command, inject_at=1)  # as its Parquet file is published
    assert killed.returncode == -signal.SIGKILL
    [work] = (store.root / "runs").iterdir()
    assert work.name.startswith(".run_id=ResNet50-")  # hidden: not a run for any query
    runs = subprocess.run([sys.executable, "-m", "harness", "--store", str(store.root), "runs"], capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    assert runs.returncode == 0 and "ResNet50" not in runs.stdout
    assert store.sql("SELECT count(*) AS n FROM predictions_all")["n"][0] == 0
    os.utime(work, (time.time() - 120, time.time() - 120))  # its writer long gone
    Store(store.root)
    assert not work.exists()
