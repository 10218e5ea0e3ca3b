"""Issue 22, faults: what dead writers leave behind, read by someone who may not write. A store without
write permission (a colleague's, a read-only mount) is readable by every read command, `check` reports
there, and commands that write say so in one sentence."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.store import Store

REPO = Path(__file__).resolve().parent.parent
KEYS = ["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.JPEG", "ILSVRC2012_val_00000003.JPEG"]


@pytest.fixture
def read_only_store():
    """A store with a run, a label set and what two killed writers left, that the reader cannot write:
    as root the commands run as user nobody (root writes anywhere), otherwise the files lose write permission."""
    parent = Path(tempfile.mkdtemp(prefix="realbench-ro-"))
    parent.chmod(0o755)
    store = Store(parent / "store")
    store.put_label_set("mine", {"dataset": "d"}, {"labels": pd.DataFrame({"key": KEYS, "labels": [[1], [2], [3]]})})
    run_id = store.write_run({"name": "good", "suite": "real", "dataset": "d"},
                             {"predictions": pd.DataFrame({"key": KEYS, "top_classes": [[1], [2], [0]]})})
    dead_import = Path(tempfile.mkdtemp(prefix=f".run_id={run_id}x.", dir=store.root / "runs"))
    dead_labels = Path(tempfile.mkdtemp(prefix=".label_set=other.", dir=store.root / "labelsets"))
    for folder in (dead_import, dead_labels):
        (folder / "part.parquet.tmp").write_bytes(b"half")
        os.utime(folder, (time.time() - 3600,) * 2)
    for path in [store.root, *store.root.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    yield store, run_id, [dead_import, dead_labels]
    for path in [store.root, *store.root.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    shutil.rmtree(parent)


# Several commands in one interpreter (as the reader); each one's exit status, stdout and stderr as JSON.
COMMANDS = """
import contextlib, io, json, sys, traceback
from harness.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except BaseException:
            code = traceback.format_exc()
    results.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def as_reader(store: Store, *commands: list[str]) -> list[tuple[int, str, str]]:
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    if prefix and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: no way to read as a user without write permission")
    argv = [["--store", str(store.root), *command] for command in commands]
    proc = subprocess.run([*prefix, sys.executable, "-c", COMMANDS, json.dumps(argv)], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "HOME": str(store.root.parent)})
    assert proc.returncode == 0, proc.stderr
    return [tuple(result) for result in json.loads(proc.stdout.splitlines()[-1])]


def test_a_read_only_store_is_readable_and_checkable(read_only_store):
    store, run_id, leftovers = read_only_store
    runs, sql, score, check, catalog, repair = as_reader(
        store, ["runs"], ["sql", "SELECT count(*) AS n FROM predictions", "--format", "csv"],
        ["score", "--run", run_id, "--labels", "mine"], ["check"], ["catalog"], ["check", "--repair"])
    assert runs[0] == 0 and run_id in runs[1], runs
    assert sql[0] == 0 and sql[1].split() == ["n", "3"], sql
    assert score[0] == 0 and "66.67%" in score[1], score
    assert check[0] == 1 and all(str(folder) in check[1] for folder in leftovers), check
    for code, out, err in (catalog, repair):  # commands that write: one sentence each
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "cannot write" in catalog[2] and "check (without --repair) reports" in repair[2]
    assert all(folder.exists() for folder in leftovers)  # nothing was touched


def test_the_owner_tidies_what_dead_writers_left(read_only_store):
    store, run_id, leftovers = read_only_store
    for path in [store.root, *store.root.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    Store(store.root)
    assert not any(folder.exists() for folder in leftovers)
    assert [m["run_id"] for m in Store(store.root).list_runs()] == [run_id]
