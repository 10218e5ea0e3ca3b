"""Issue 22, concurrency: one file imported by three processes at once is one run; readers (every command
opens a Store, which tidies what dead writers left) never remove what a live writer is building."""
from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import pandas as pd

from harness.store import FolderLock, Store

REPO = Path(__file__).resolve().parent.parent

# Each process imports the modules first, then waits for the start file, so the imports race for real.
IMPORT_AT_ONCE = """
import os, sys, time
from harness.cli import main
import harness.classification, harness.suites, harness.store
start = sys.argv[1]
while not os.path.exists(start):
    time.sleep(0.001)
sys.exit(main(sys.argv[2:]))
"""


def test_one_file_imported_by_three_processes_at_once_is_one_run(tmp_path, shared_data):
    lines = (shared_data / "imagenet/model_predictions/ResNet50.csv").read_text().splitlines()[:2001]
    predictions = tmp_path / "resnet50-2000.csv"
    predictions.write_text("\n".join(lines) + "\n")
    store = Store(tmp_path / "store")
    from harness.suites import get_suite

    get_suite("real").ensure_label_sets(store)  # the shipped label sets are there before the race
    start = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", IMPORT_AT_ONCE, str(start), "--store", str(store.root),
                               "import", str(predictions), "--suite", suite, "--name", f"p{i}"], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
             for i, suite in enumerate(["real", "imagenet", "real"])]
    time.sleep(3)  # all three are waiting
    start.touch()
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    runs = store.list_runs()
    assert len(runs) == 1, [r["run_id"] for r in runs]
    said = "".join(out for out, _ in outputs)
    assert said.count("already stored as run") == 2 and said.count(runs[0]["run_id"]) >= 3


def test_a_label_set_being_built_is_left_alone_until_its_writer_is_gone(store):
    base = store.root / "labelsets"
    building = Path(tempfile.mkdtemp(prefix=".label_set=mine.", dir=base))
    lock = FolderLock.held_new(building)  # as put_label_set holds it while writing
    (building / "labels.parquet").write_bytes(b"half")
    os.utime(building, (time.time() - 3600,) * 2)  # old, too: only the lock tells
    subprocess.run([sys.executable, "-m", "harness", "--store", str(store.root), "runs"], cwd=REPO, check=True,
                   capture_output=True, timeout=300)
    Store(store.root)
    assert (building / "labels.parquet").exists()  # another process's reader and this one's left it
    lock.release()  # the writer dies
    Store(store.root)
    assert not building.exists()


def _replace_labels(root: str, times: int) -> str | None:
    store = Store(root)
    try:
        for i in range(times):
            store.put_label_set("busy", {"dataset": "d"}, {"labels": pd.DataFrame(
                {"key": [f"k{j:06d}" for j in range(20000)], "labels": [[i]] * 20000})})
    except Exception:  # noqa: BLE001 - reported to the test
        return traceback.format_exc()
    return None


def _open_stores(root: str, stop) -> int:
    opened = 0
    while not stop.is_set():
        Store(root)  # as every command does
        opened += 1
    return opened


def test_readers_opening_the_store_never_break_a_label_set_writer(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    root = str(tmp_path / "store")
    Store(root)
    manager = ctx.Manager()
    stop = manager.Event()
    with ctx.Pool(3) as pool:
        readers = [pool.apply_async(_open_stores, (root, stop)) for _ in range(2)]
        error = pool.apply(_replace_labels, (root, 8))
        stop.set()
        opened = [r.get(timeout=120) for r in readers]
    assert error is None, error
    assert min(opened) > 0
    assert Store(root).label_set_meta("busy")["n_rows"] == {"labels": 20000}
