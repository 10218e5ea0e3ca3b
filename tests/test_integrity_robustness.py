"""Own-model effective robustness as a command (issue 22, item 6).

The population is timm's 1,556 published rows (shipped CSVs); the reference run is the shipped ResNet50
predictions on all 50,000 validation images. ImageNetV2's images are not shipped, so the model's run on
it is a stand-in file covering the published 10,000 keys (10 per class folder, 7 of them predicted
right: 70.00%), and a 10-image file is the subset run.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

REPO = Path(__file__).resolve().parent.parent
V2 = "imagenetv2-matched-frequency"


def _reports(store, *args):
    return subprocess.run([sys.executable, "-m", "reports", "--store", str(store.root), *args], capture_output=True,
                          text=True, cwd=REPO, timeout=600)


@pytest.fixture(scope="module")
def population(tmp_path_factory, shared_data):
    from harness.store import Store
    from harness.suites import get_suite
    from reports.external import import_timm

    folder = tmp_path_factory.mktemp("robustness")
    store = Store(folder / "store")
    import_timm(store)
    get_suite("imagenet").import_predictions(store, shared_data / "imagenet/model_predictions/ResNet50.csv",
                                             "ResNet50")
    keys = [f"{c}/{i}.jpeg" for c in range(1000) for i in range(10)]
    full = pd.DataFrame({"file_name": keys, "predicted_class": [c if i < 7 else (c + 1) % 1000
                                                                for c in range(1000) for i in range(10)]})
    full.to_csv(folder / "v2-full.csv", index=False)
    full.head(10).to_csv(folder / "v2-part.csv", index=False)
    get_suite(V2).import_predictions(store, folder / "v2-full.csv", "ResNet50")
    get_suite(V2).import_predictions(store, folder / "v2-part.csv", "part")
    return store


def test_a_full_run_is_placed_on_the_published_line_naming_its_runs(population, shared_data):
    store = population
    done = _reports(store, "robustness", "--run", "ResNet50", "--shift", V2)
    assert done.returncode == 0, done.stderr
    timm = shared_data / "timm-results"
    both = pd.read_csv(timm / "results-imagenet.csv", thousands=",").merge(
        pd.read_csv(timm / f"results-{V2}.csv", thousands=","), on=["model", "img_size"], suffixes=("_o", "_s"))
    x, y = both.top1_o / 100, both.top1_s / 100
    fit = scipy_stats.linregress(np.log(x / (1 - x)), np.log(y / (1 - y)))
    predicted = 1 / (1 + np.exp(-(fit.intercept + fit.slope * np.log(0.7613 / (1 - 0.7613)))))
    runs = {m["dataset"]: m["run_id"] for m in store.list_runs() if m["name"] == "ResNet50"}
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"effective robustness of ResNet50 on {V2}") and "1,556 published models" in lines[0]
    assert f"run {runs['imagenet-val']} on imagenet-original: top-1 76.13%, all 50,000 images" in lines[1]
    assert f"run {runs[V2]} on {V2}: top-1 70.00%, all 10,000 images" in lines[2]
    assert f"effective robustness: {100 * (0.70 - predicted):+.2f} points" in lines[4] and "SUBSET" not in done.stdout


def test_a_subset_run_is_refused_or_marked(population):
    store = population
    refused = _reports(store, "robustness", "--run", "part", "--shift", V2, "--reference-run", "ResNet50")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert f"predicts 10 of the 10,000 images of {V2}" in refused.stderr and "--allow-subset" in refused.stderr
    shown = _reports(store, "robustness", "--run", "part", "--shift", V2, "--reference-run", "ResNet50",
                     "--allow-subset")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("SUBSET effective robustness of part")
    assert "SUBSET: 10 of 10,000 images, not the published test set" in shown.stdout
    assert "SUBSET effective robustness:" in shown.stdout


def test_own_runs_never_leak_into_the_timm_only_page_and_quiet_is_quiet(population, tmp_path):
    """The store holds own ImageNetV2 runs (a whole one and a 10-image one) and the V2 label set: the committed
    timm-only page is still rebuilt byte for byte, and --quiet prints nothing."""
    store = population
    done = _reports(store, "leaderboard", "imagenetv2", "--out", str(tmp_path), "--quiet")
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")
    # the Markdown page (the HTML's data-v attributes carry unrounded floats, being made deterministic apart)
    assert (tmp_path / "imagenetv2.md").read_bytes() == (REPO / "leaderboards" / "imagenetv2.md").read_bytes()
    again = _reports(store, "leaderboard", "imagenetv2", "--out", str(tmp_path))
    assert again.stdout.strip().startswith("imagenetv2: ") and "files changed" in again.stdout


def test_a_leaderboard_on_a_missing_relabel_says_what_to_run(population, tmp_path):
    done = _reports(population, "leaderboard", "real-rebuilt", "--out", str(tmp_path))
    assert done.returncode == 2
    assert "needs label set 'real-rebuilt', which store" in done.stderr
    assert "run `python -m relabel real --register real-rebuilt` first" in done.stderr
