"""Sharded runs for real: torchrun, the gloo backend, two CPU processes, a real EfficientNet-Lite0."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.runner import run_classification
from harness.suites import get_suite

pytestmark = pytest.mark.slow  # every test starts torchrun with two ranks that each load a model

REPO = Path(__file__).resolve().parent.parent
TORCHRUN = Path(sys.executable).parent / "torchrun"
N_GOOD = 22


def torchrun(store, *args, launcher=("--standalone", "--nproc_per_node", "2"), timeout=900):
    proc = subprocess.run([str(TORCHRUN), *launcher, "-m", "harness", "--store", str(store.root), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    return proc


@pytest.fixture(scope="module")
def images(tmp_path_factory, shared_data):
    """22 real validation images, one truncated JPEG and one text file posing as a JPEG."""
    folder = tmp_path_factory.mktemp("images")
    files = sorted((shared_data / "imagenet-val-subset").iterdir())[:N_GOOD + 2]
    for f in files[:N_GOOD]:
        os.symlink(f, folder / f.name)
    (folder / files[N_GOOD].name).write_bytes(files[N_GOOD].read_bytes()[:400])
    (folder / files[N_GOOD + 1].name).write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def single(tmp_path_factory, images):
    """The same images in one process: the reference the sharded runs must equal."""
    from harness.store import Store

    store = Store(tmp_path_factory.mktemp("single"))
    run_id = run_classification(store, get_suite("imagenet"), "efficientnet-lite0", data_dir=images,
                                batch_size=4, workers=0, quiet=True)
    return rows(store, run_id)


def rows(store, run_id):
    return store.sql(f"SELECT key, top_classes, top_scores, error FROM predictions WHERE run_id = '{run_id}' "
                     "ORDER BY key")


def assert_same_rows(sharded, single):
    """Row for row: the same keys, classes and errors; scores equal up to float32 rounding (the
    ranks run other batch compositions and thread counts, which reorder the sums)."""
    assert list(sharded["key"]) == list(single["key"])
    assert sharded["error"].fillna("").tolist() == single["error"].fillna("").tolist()
    good = single["error"].isna()
    for a, b in zip(sharded["top_classes"][good], single["top_classes"][good]):
        assert list(a) == list(b)
    for a, b in zip(sharded["top_scores"][good], single["top_scores"][good]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def only_run(store) -> dict:
    [meta] = store.list_runs()
    return meta


def test_two_ranks_give_the_single_process_rows(store, images, single):
    proc = torchrun(store, "run", "--model", "efficientnet-lite0", "--suite", "imagenet", "--data-dir",
                    str(images), "--batch-size", "4", "--chunk-images", "3", "--workers", "0", "--quiet")
    assert proc.returncode == 0, proc.stderr
    meta = only_run(store)
    assert meta["status"] == "complete" and meta["world_size"] == 2
    assert [s["rank"] for s in meta["shards"]] == [0, 1]
    assert [s["images_this_session"] for s in meta["shards"]] == [12, 12]  # strided halves of 24
    assert meta["n_rows"] == {"predictions": N_GOOD + 2} and meta["n_errors"] == 2
    assert_same_rows(rows(store, meta["run_id"]), single)
    # Rank 0 alone reports: one score line per label set, and the summary counts the bad files.
    assert proc.stdout.count("stored as run") == 1
    assert f"{N_GOOD + 2} images, 2 unreadable (stored as error rows)" in proc.stdout
    assert "2 unreadable images counted wrong" in proc.stdout


def test_two_machines_through_torchrun_rendezvous_flags(store, images, single):
    """Two torchrun agents, one process each, meeting at a c10d rendezvous as two machines would."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launch = ["--nnodes", "2", "--nproc_per_node", "1", "--rdzv-backend", "c10d",
              "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"test-{os.getpid()}"]
    args = ["run", "--model", "efficientnet-lite0", "--suite", "imagenet", "--data-dir", str(images),
            "--batch-size", "4", "--workers", "0", "--quiet"]
    agents = [subprocess.Popen([str(TORCHRUN), *launch, "--node-rank", str(node), "-m", "harness", "--store",
                                str(store.root), *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}) for node in (0, 1)]
    outputs = [agent.communicate(timeout=900) for agent in agents]
    assert [agent.returncode for agent in agents] == [0, 0], outputs
    meta = only_run(store)
    assert meta["status"] == "complete" and meta["world_size"] == 2
    assert_same_rows(rows(store, meta["run_id"]), single)


def test_a_killed_rank_is_restarted_by_torchrun_and_the_run_resumes(store, images, single, tmp_path):
    args = ["run", "--model", "efficientnet-lite0", "--suite", "imagenet", "--data-dir", str(images),
            "--batch-size", "2", "--chunk-images", "2", "--workers", "0", "--quiet"]
    # Rank 1 kills itself once its first chunk is stored, in the first group only ("once"): torchrun restarts
    # both ranks, and the restarted group resumes the run.
    fault = f"at=chunk-stored,count=1,action=SIGKILL,rank=1,once={tmp_path / 'rank1-killed'}"
    agent = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "--max-restarts", "1",
                            "-m", "harness", "--store", str(store.root), *args], cwd=REPO, capture_output=True,
                           text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1", "REALBENCH_FAULT": fault})
    assert agent.returncode == 0, agent.stderr
    assert (tmp_path / "rank1-killed").exists()  # the fault fired
    meta = only_run(store)  # the restarted group resumed the run instead of starting another
    assert meta["status"] == "complete" and "resumed_at" in meta
    assert sum(s["images_this_session"] for s in meta["shards"]) < N_GOOD + 2
    assert_same_rows(rows(store, meta["run_id"]), single)
    assert store.sql("SELECT count(*) AS n FROM predictions_all")["n"][0] == N_GOOD + 2  # no duplicates


def test_a_bad_folder_stops_every_rank_before_any_work(store, images, tmp_path):
    (tmp_path / "bad" / "cats").mkdir(parents=True)
    shutil.copy(next(images.iterdir()), tmp_path / "bad" / "cats")
    proc = torchrun(store, "run", "--model", "efficientnet-lite0", "--suite", "imagenet", "--data-dir",
                    str(tmp_path / "bad"), "--workers", "0", "--quiet", timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.count("error: ") == 2  # each rank says it once, then exits: nobody waits
    assert "1 sub-folders that are not class names of imagenet-val" in proc.stderr
    assert store.list_runs() == [] and not list((store.root / "runs").iterdir())



def test_a_failing_model_in_a_sharded_list_is_recorded_and_every_rank_goes_on(store, images, tmp_path):
    (tmp_path / "broken.pth").write_bytes(b"junk")
    (tmp_path / "models.txt").write_text("tf_efficientnet_lite0 broken.pth\nefficientnet-lite0\n")
    proc = torchrun(store, "run", "--models-file", str(tmp_path / "models.txt"), "--suite", "imagenet",
                    "--data-dir", str(images), "--limit", "6", "--batch-size", "4", "--workers", "0", "--quiet")
    assert proc.returncode == 0, proc.stderr  # a recorded failure is no crash for torchrun to restart
    assert "2 models: 1 complete, 0 skipped (complete before), 1 failed" in proc.stdout
    runs = store.sql("SELECT status, meta->>'error' AS error, meta->>'world_size' AS ranks FROM runs "
                     "ORDER BY status")  # created_at has one-second steps: no order
    assert runs["status"].tolist() == ["complete", "failed"] and runs["ranks"].tolist() == ["2", "2"]
    assert "broken.pth could not be read" in runs["error"][1]
