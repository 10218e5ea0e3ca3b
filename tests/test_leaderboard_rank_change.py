"""The leaderboard's rank-change column: places each model gains from the base label set to the
corrected one, on the five shipped ImageNet files (original labels -> ReaL)."""
from __future__ import annotations

from harness.store import Store
from harness.suites import get_suite
from reports.leaderboard import build, position_changes
from reports.render import render_markdown
from reports.spec import parse_spec

MODELS = ("ResNet50", "ViT", "DINO", "SimCLR", "label_errors_resnet50_cv")
SPEC = """
title = "rank change"
description = "original labels vs ReaL"
dataset = "imagenet-val"
metric = "top1"
[reference]
suite = "imagenet"
label_set = "imagenet-original"
[relabelled]
suite = "real"
label_set = "real"
[rows]
runs = ["*"]
samples = "full"
[statistics]
bootstrap_resamples = 100
[table]
columns = ["rank", "model", "relabelled", "reference", "rank_change"]
"""


def test_position_changes_share_ties():
    assert position_changes([0.9, 0.8, 0.7], [0.7, 0.8, 0.9]) == [-2, 0, 2]
    assert position_changes([0.9, 0.9, 0.5], [0.5, 0.9, 0.9]) == [-2, 0, 2]   # tied rows share the best place: 1, 1, 3


def test_rank_change_column_on_the_shipped_imagenet_files(tmp_path, shared_data):
    store = Store(tmp_path / "store")
    real = get_suite("real")
    for name in MODELS:
        real.import_predictions(store, shared_data / "imagenet/model_predictions" / f"{name}.csv", name)
    real.ensure_label_sets(store, ["imagenet-original", "real"])
    board = build(store, parse_spec(SPEC, "rank-change", tmp_path / "rank-change.toml"))
    # Original top-1: ViT 78.01, DINO 76.75, ResNet50 76.13, cv 72.73, SimCLR 68.14;
    # ReaL: ViT 83.99, ResNet50 82.96, DINO 82.80, cv 77.61, SimCLR 75.65.
    assert {r.name: r.rank_change for r in board.rows} == {
        "ViT": 0, "ResNet50": 1, "DINO": -1, "label_errors_resnet50_cv": 0, "SimCLR": 0}
    text = render_markdown(board).decode()
    assert "rank change (imagenet-original \u2192 real)" in text
    line = next(row for row in text.splitlines() if row.startswith("|") and "ResNet50" in row)
    assert line.rstrip(" |").endswith("+1")
