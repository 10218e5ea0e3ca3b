"""Bulk runs under faults, for real: weights that do not load, memory that runs out, partial runs resumed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.bulk import ModelRequest, read_model_requests
from harness.errors import HarnessError

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

# Past 24 images a forward pass asks the allocator for 2**62 bytes (REALBENCH_FAULT, harness/faults.py): torch's
# own out-of-memory error from a real allocation, at a batch size fixed by the test, whatever memory the machine has.
OOM_ABOVE_24 = {**ENV, "REALBENCH_FAULT": "at=forward,above=24,action=oom"}


def harness(store, *args, check=None, env=ENV):
    proc = subprocess.run([sys.executable, "-m", "harness", "--store", str(store.root), *args], capture_output=True,
                          text=True, cwd=REPO, timeout=900, env=env)
    if check is not None:
        assert proc.returncode == check, proc.stderr
    return proc


@pytest.fixture
def images(tmp_path, shared_data):
    folder = tmp_path / "images"
    folder.mkdir()
    files = sorted((shared_data / "imagenet-val-subset").iterdir())[:7]
    for f in files[:6]:
        os.symlink(f, folder / f.name)
    (folder / files[6].name).write_bytes(files[6].read_bytes()[:500])  # truncated
    return folder


def test_model_list_file_is_read_with_clear_errors(tmp_path):
    listing = tmp_path / "models.txt"
    listing.write_text("# leaderboard\nefficientnet-lite0\n\nresnet50  weights/r50.pth  # ours\nefficientnet-lite0\n")
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "r50.pth").write_bytes(b"")  # checked to exist before any model runs
    assert read_model_requests("vit-b16", listing) == [
        ModelRequest("vit-b16"), ModelRequest("efficientnet-lite0"),
        ModelRequest("resnet50", str(tmp_path / "weights" / "r50.pth"))]
    listing.write_text("resnet50 a.pth b.pth\n")
    with pytest.raises(HarnessError, match=r"models.txt:1: expected 'MODEL \[CHECKPOINT\]'"):
        read_model_requests(None, listing)
    with pytest.raises(HarnessError, match="no model to run"):
        read_model_requests(" , ", None)
    with pytest.raises(HarnessError, match="does not exist"):
        read_model_requests(None, tmp_path / "missing.txt")


@pytest.mark.slow
def test_a_failing_model_is_recorded_and_the_others_go_on(store, images, tmp_path):
    (tmp_path / "broken.pth").write_bytes(b"\x80\x02 these are not weights")
    listing = tmp_path / "models.txt"
    listing.write_text("efficientnet-lite0\ntf_efficientnet_lite0 broken.pth\nefficientnet-lite1\n")
    args = ["run", "--models-file", str(listing), "--suite", "imagenet", "--data-dir", str(images),
            "--batch-size", "4", "--workers", "0", "--quiet"]
    proc = harness(store, *args, check=2)
    assert f"error: tf_efficientnet_lite0: checkpoint {tmp_path / 'broken.pth'} could not be read" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "3 models: 2 complete, 0 skipped (complete before), 1 failed" in proc.stdout
    assert proc.stdout.count("7 images, 1 unreadable (stored as error rows)") == 2
    runs = store.sql("SELECT model, status, meta->>'error' AS error, meta->>'error_traceback' AS tb FROM runs "
                     "ORDER BY model").set_index("model")  # created_at has one-second steps: no order
    assert runs["status"].to_dict() == {"efficientnet-lite0": "complete", "efficientnet-lite1": "complete",
                                        "tf_efficientnet_lite0": "failed"}
    failed = runs.loc["tf_efficientnet_lite0"]
    assert "could not be read" in failed["error"] and "Traceback" in failed["tb"]
    assert store.sql("SELECT count(*) AS n FROM predictions")["n"][0] == 14

    again = harness(store, *args, check=2)  # complete runs are skipped, the broken one is tried again
    assert "3 models: 0 complete, 2 skipped (complete before), 1 failed" in again.stdout
    assert again.stdout.count("already complete as run") == 2
    status = store.sql("SELECT status, count(*) AS n FROM runs GROUP BY status ORDER BY status")
    assert dict(zip(status["status"], status["n"])) == {"complete": 2, "failed": 2}


@pytest.mark.slow
def test_out_of_memory_halves_the_batch_until_it_fits(store):
    args = ["run", "--model", "efficientnet-lite0", "--suite", "real", "--limit", "96", "--batch-size", "96",
            "--workers", "0", "--quiet"]
    proc = harness(store, *args, check=0, env=OOM_ABOVE_24)
    assert "out of memory on cpu at batch size 96; retrying with 48" in proc.stderr
    assert "out of memory on cpu at batch size 48; retrying with 24" in proc.stderr
    [meta] = store.list_runs()
    assert meta["status"] == "complete" and meta["oom_retries"] == 2 and meta["batch_size_effective"] == 24
    harness(store, *args, "--fresh", check=0)  # the same run with all the memory it wants
    same = store.sql("""SELECT count(*) AS n, sum((a.top_classes = b.top_classes)::INT) AS equal
                        FROM predictions a JOIN predictions b USING (key) WHERE a.run_id < b.run_id""").iloc[0]
    assert (same["n"], same["equal"]) == (96, 96)


@pytest.mark.slow
def test_resume_continues_the_named_partial_run(store):
    common = ["run", "--model", "efficientnet-lite0", "--suite", "real", "--limit", "24", "--workers", "0",
              "--quiet", "--batch-size", "4"]
    killed = harness(store, *common, "--chunk-images", "4",  # killed by itself once its first chunk is stored
                     env={**ENV, "REALBENCH_FAULT": "at=chunk-stored,count=1,action=SIGKILL"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [partial] = store.list_runs()
    other = harness(store, *common, "--topk", "3", "--resume", partial["run_id"], check=2)
    assert f"run {partial['run_id']} was made with a different topk" in other.stderr
    done = harness(store, *[a for a in common if a != "--quiet"], "--resume", partial["run_id"], check=0)
    assert f"resuming run {partial['run_id']}" in done.stderr
    [meta] = [m for m in store.list_runs() if m["status"] == "complete"]
    assert meta["run_id"] == partial["run_id"] and meta["n_rows"] == {"predictions": 24}
    assert store.sql("SELECT count(DISTINCT key) AS n FROM predictions")["n"][0] == 24
    finished = harness(store, *common, "--resume", partial["run_id"], check=2)
    assert "is already complete; nothing to resume" in finished.stderr


@pytest.mark.slow
def test_a_model_whose_process_dies_is_recorded_and_the_next_one_runs(store, images, tmp_path):
    args = ["run", "--model", "efficientnet-lite1,efficientnet-lite0", "--suite", "imagenet",
            "--data-dir", str(images), "--batch-size", "1", "--chunk-images", "1", "--workers", "0", "--quiet"]
    # The first model's process segfaults once it has stored a row; "once" lets the second one through.
    fault = f"at=chunk-stored,count=1,action=SIGSEGV,once={tmp_path / 'segfaulted'}"
    proc = harness(store, *args, check=2, env={**ENV, "REALBENCH_FAULT": fault})
    assert "error: efficientnet-lite1: the process running efficientnet-lite1 died from signal SIGSEGV" in proc.stderr
    assert "2 models: 1 complete, 0 skipped (complete before), 1 failed" in proc.stdout
    stored = store.sql("SELECT model, run_id, status, meta->>'error' AS error FROM runs").set_index("model")
    assert stored["status"].to_dict() == {"efficientnet-lite1": "failed", "efficientnet-lite0": "complete"}
    runs = stored["run_id"].to_dict()  # the dead model's own run is marked, no second run stored for it
    assert list(store.run_dir(runs["efficientnet-lite1"]).glob("predictions-*.parquet"))
    assert "SIGSEGV" in stored.loc["efficientnet-lite1", "error"]

    again = harness(store, *args, check=0)  # the dead model's run is resumed, the others skipped
    assert "2 models: 1 complete, 1 skipped (complete before), 0 failed" in again.stdout
    rows = store.sql("SELECT run_id, count(*) AS n, count(DISTINCT key) AS keys FROM predictions GROUP BY run_id")
    assert len(rows) == 2 and set(rows["n"]) == {7} and set(rows["keys"]) == {7}
    assert runs["efficientnet-lite1"] in set(rows["run_id"])


def test_a_failure_while_claiming_the_run_is_recorded(store):
    from harness.runner import evaluate_classification
    from harness.suites import get_suite

    (store.root / "labelsets" / ".lock").mkdir()  # the label sets cannot be stored: their lock is a folder
    with pytest.raises(IsADirectoryError):
        evaluate_classification(store, get_suite("real"), "efficientnet-lite0", limit=2, workers=0, quiet=True,
                                skip_complete=True, record_failures=True)
    [meta] = store.list_runs()
    assert meta["status"] == "failed" and meta["model"] == "efficientnet-lite0"
    assert meta["error"].startswith("IsADirectoryError") and "ensure_label_sets" in meta["error_traceback"]


class _Hungry:
    """A model whose forward asks the CPU allocator for ``bytes_per_image`` per image of any batch larger
    than ``fits`` images: a real allocation failure, not a raised stand-in."""

    def __init__(self, fits: int, bytes_per_image: int = 2**50):
        self.fits, self.bytes_per_image = fits, bytes_per_image

    def __call__(self, x):
        import torch

        if len(x) > self.fits:
            torch.empty(len(x) * self.bytes_per_image, dtype=torch.uint8)
        return x.flatten(1)[:, :3] * 2


def test_backoff_halves_to_what_fits_and_gives_up_below_one_image():
    import torch

    from harness.runner import BackoffForward

    warnings = []
    x = torch.arange(8 * 5, dtype=torch.float32).reshape(8, 5)
    forward = BackoffForward(_Hungry(fits=2), "cpu", "fp32", 8, warnings.append)
    assert torch.equal(forward(x), x[:, :3] * 2)
    assert (forward.slice, forward.oom_retries) == (2, 2)
    assert warnings == ["out of memory on cpu at batch size 8; retrying with 4",
                        "out of memory on cpu at batch size 4; retrying with 2"]

    starving = BackoffForward(_Hungry(fits=0), "cpu", "fp32", 8, warnings.append)
    with pytest.raises(HarnessError, match="out of memory on cpu even at batch size 1"):
        starving(x)
    assert starving.oom_retries == 3
