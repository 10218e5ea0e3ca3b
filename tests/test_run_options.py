"""`run`'s model names, timm-compatible options and device logic, checked on the CPU.

Typos are refused before torch is imported (asserted on ``sys.modules``, not on seconds) and leave
nothing stored; the options are recorded in the run and part of its fingerprint.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError

REPO = Path(__file__).resolve().parent.parent

# main() in a fresh interpreter; prints the exit status, then whether torch was imported.
NO_TORCH = ("import sys, contextlib; from harness.cli import main\n"
            "code = main(sys.argv[1:])\n"
            "print(code, 'torch' in sys.modules, 'timm' in sys.modules)")


def harness_without_torch(store_dir: Path, *args: str) -> tuple[str, str]:
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, "--store", str(store_dir), *args], capture_output=True,
                          text=True, cwd=REPO, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1], proc.stderr


@pytest.mark.parametrize("model, expected", [
    ("efficientnet-lte0", "unknown model 'efficientnet-lte0': neither an alias of `python -m harness models` nor "
                          "a timm 1.0.31 model name; did you mean 'efficientnet-lite0', 'efficientnet_lite0'"),
    ("resnet-18", "unknown model 'resnet-18'"),
    ("resnet18.nosuchtag", "timm has no weights tagged 'nosuchtag' for resnet18; its tags: a1_in1k,"),
    ("efficientnet-lite*x", "no model matches 'efficientnet-lite*x'"),
    ("bit-l", "bit-l: BiT-L (JFT-300M pretraining, Kolesnikov et al. 2020) was never released by Google"),
])
def test_a_model_that_cannot_run_is_one_line_before_torch_and_stores_nothing(tmp_path, model, expected):
    status, stderr = harness_without_torch(tmp_path / "store", "run", "--model", model, "--suite", "real")
    assert status == "2 False False"  # exit status 2, neither torch nor timm imported
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert expected in stderr
    if model == "resnet-18":
        assert "did you mean 'resnet18'" in stderr
    if model == "bit-l":  # said once: what it is and what to do
        assert stderr.count("bit-l") == 1 and "--checkpoint FILE" in stderr and "bit-m" in stderr
    assert not (tmp_path / "store").exists()


def test_a_models_file_is_checked_whole_before_the_first_model(tmp_path):
    listing = tmp_path / "models.txt"
    listing.write_text("efficientnet-lite0\nefficientnet-lite1\nefficientnet-lite3  # a typo: there is no such alias\n"
                       "resnet50 missing.pth\n")
    status, stderr = harness_without_torch(tmp_path / "store", "run", "--models-file", str(listing),
                                           "--suite", "real")
    assert status == "2 False False"
    assert stderr.startswith("error: 2 models cannot run, so none was run: ")
    assert f"{listing}:3: unknown model 'efficientnet-lite3'" in stderr
    assert "did you mean 'efficientnet-lite0'" in stderr or "did you mean 'efficientnet_lite3'" in stderr
    assert f"{listing}:4: checkpoint {tmp_path / 'missing.pth'} for model resnet50 does not exist" in stderr
    assert not (tmp_path / "store").exists()


def test_unknown_suite_run_and_label_set_suggest_the_near_name(tmp_path, shared_data):
    status, stderr = harness_without_torch(tmp_path / "store", "run", "--model", "efficientnet-lite0",
                                           "--suite", "rael")
    assert status == "2 False False" and "unknown suite 'rael'; did you mean 'real'?" in stderr

    from harness.store import Store
    from harness.suites import get_suite

    store = Store(tmp_path / "store")
    get_suite("real").import_predictions(store, shared_data / "imagenet/model_predictions/ResNet50.csv", "ResNet50")
    status, stderr = harness_without_torch(store.root, "score", "--run", "ResNet5")
    assert status == "2 False False" and "no run 'ResNet5'" in stderr and "did you mean 'ResNet50'?" in stderr
    status, stderr = harness_without_torch(store.root, "score", "--run", "ResNet50", "--labels", "rael")
    assert status == "2 False False" and "no label set 'rael'" in stderr and "did you mean 'real'?" in stderr
    assert len(store.list_runs()) == 1


def test_wildcards_expand_over_aliases_and_timm_names():
    from harness.bulk import ModelRequest, read_model_requests

    assert read_model_requests("efficientnet-lite*", None) == [
        ModelRequest(f"efficientnet-lite{i}") for i in range(3)]
    assert read_model_requests("tf_efficientnet_lite*", None) == [
        ModelRequest(f"tf_efficientnet_lite{i}.in1k") for i in range(5)]
    # as timm's validate.py --model 'efficientnet_lite*': the pretrained names (lite1-4 have no weights)
    assert read_model_requests("efficientnet_lite*,efficientnet-lite0", None) == [
        ModelRequest("efficientnet_lite0.ra_in1k"), ModelRequest("efficientnet-lite0")]


def test_shipped_timm_names_are_those_of_the_installed_timm():
    import timm

    from harness.models import timm_names

    names = timm_names()
    if names["timm_version"] != timm.__version__:
        pytest.fail(f"harness/timm_names.json is from timm {names['timm_version']} but timm {timm.__version__} is "
                    "installed; regenerate it with harness.models.write_timm_names()")
    assert names["architectures"] == sorted(timm.list_models())
    assert names["pretrained"] == sorted(timm.list_pretrained())
