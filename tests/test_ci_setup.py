"""The test setup itself: what CI does differently from a developer's terminal must not change a result.

CI runs the suite as a background job with no terminal (SIGINT ignored by inheritance), on machines whose
thread count and BLAS differ; each of those once turned a test red (issue 21).
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from harness.detection.runner import DETS_PER_IMAGE, detection_rows

from filecompare import first_difference

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def _background_child(tmp_path: Path, interruptible: bool) -> int:
    """A Python child, started from a non-interactive shell's background job (as `nohup pytest &` starts
    pytest), runs a grandchild that sends itself Ctrl-C, through ``childproc.INTERRUPTIBLE`` or without it;
    the grandchild's exit status."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(f"""
        import subprocess, sys
        sys.path.insert(0, {str(TESTS)!r})
        from childproc import INTERRUPTIBLE
        extra = INTERRUPTIBLE if {interruptible!r} else {{}}
        code = "import os, signal, time; os.kill(os.getpid(), signal.SIGINT); time.sleep(0.5)"
        print(subprocess.run([sys.executable, "-c", code], stderr=subprocess.DEVNULL, **extra).returncode)
    """))
    shell = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} & wait $!"
    done = subprocess.run(["bash", "-c", shell], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, check=True)
    return int(done.stdout)


def test_a_child_of_a_background_job_gets_ctrl_c_only_through_interruptible(tmp_path):
    # Without it the inherited SIG_IGN survives exec: the child ignores its own Ctrl-C and exits 0, which is
    # how test_interrupted_detection_run_resumes... failed under `nohup ... &`.
    assert _background_child(tmp_path, interruptible=False) == 0
    # An uncaught KeyboardInterrupt ends Python by SIGINT itself: status -2 (the run CLI catches it: 130).
    assert _background_child(tmp_path, interruptible=True) == -2


def test_detections_with_equal_scores_get_the_same_rows_in_any_model_order():
    boxes = torch.tensor([[0., 0., 10., 10.], [5., 5., 20., 20.], [1., 2., 3., 4.], [0., 0., 10., 10.]])
    labels = torch.tensor([3, 1, 3, 1])
    scores = torch.tensor([0.5, 0.5, 0.9, 0.5])  # three exact ties
    tables = []
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]):
        out = {"boxes": boxes[order], "labels": labels[order], "scores": scores[order]}
        table, dropped = detection_rows([out], [42], [7], categories={1, 3})
        assert dropped == 0
        tables.append(table.to_pydict())
    assert tables[0] == tables[1] == tables[2]
    first = tables[0]
    assert first["det_index"] == [7 * DETS_PER_IMAGE + k for k in range(4)]
    # score first, then category, then the box
    assert first["score"] == pytest.approx([0.9, 0.5, 0.5, 0.5])
    assert first["category_id"] == [3, 1, 1, 3]
    assert first["bbox_x"] == [1.0, 0.0, 5.0, 0.0]


def test_sort_keys_in_pages_do_not_carry_the_last_digits_of_a_float():
    from reports import render

    # The two values issue 21 found in imagenetv2.html on two machines: one least-squares fit, two BLAS paths.
    a, b = -0.0013221894904621387, -0.0013221894904623553
    assert render.sort_key_text(a) == render.sort_key_text(b) == "-0.00132218949"
    assert render.sort_key_text(3) == "3" and render.sort_key_text(None) == ""
    assert render.sort_key_text(0.1 + 0.2) == "0.3" and render.sort_key_text(83.30769230769231) == "83.30769231"


@pytest.mark.slow
def test_a_board_with_effective_robustness_is_the_same_bytes_with_one_or_two_threads(tmp_path, shared_data):
    store = tmp_path / "store"
    env = {**os.environ, "REALBENCH_MIRROR": str(shared_data)}
    subprocess.run([sys.executable, "-m", "reports", "--store", str(store), "--quiet", "import-timm"], env=env,
                   check=True, cwd=REPO, capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
    pages = {}
    for threads in ("1", "2"):
        out = tmp_path / f"threads-{threads}"
        limits = {k: threads for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        subprocess.run([sys.executable, "-m", "reports", "--store", str(store), "--quiet", "leaderboard",
                        "imagenetv2", "--out", str(out)], env={**env, **limits}, check=True, cwd=REPO,
                       capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
        pages[threads] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert sorted(pages["1"]) == ["imagenetv2.html", "imagenetv2.md", "imagenetv2.png"]
    for name, data in pages["1"].items():
        difference = first_difference(data, pages["2"][name], name)
        assert difference is None, difference
