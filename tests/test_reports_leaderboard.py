"""Leaderboards built from a store filled with the shipped data, checked against independent computations."""
from __future__ import annotations

import html.parser
import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from harness.errors import HarnessError
from harness.score import score_run
from harness.store import Store
from reports import cli
from reports.external import parse_timm_results
from reports.leaderboard import SOURCE_EXTERNAL, SOURCE_IMPORT, build
from reports.publish import render_leaderboard, write_files
from reports.render import rows_lines
from reports.shipped import build_store
from reports.spec import LEADERBOARD_DIR, load_spec, parse_spec

from filecompare import first_difference

MODELS = ("ResNet50", "ViT", "DINO", "SimCLR", "label_errors_resnet50_cv")


@pytest.fixture(scope="module")
def shipped_store(tmp_path_factory, shared_data) -> Store:
    store = Store(tmp_path_factory.mktemp("reports") / "store")
    build_store(store)
    return store


@pytest.fixture(scope="module")
def real_board(shipped_store):
    return build(shipped_store, load_spec("real"))


@pytest.fixture(scope="module")
def raw_correct(shared_data) -> dict[str, dict[str, pd.Series]]:
    """Per-image correctness computed here from the raw files, independently of harness and reports."""
    folder = shared_data / "imagenet"
    synsets = (folder / "imagenet_synsets.txt").read_text().split()
    index = {s: i for i, s in enumerate(synsets)}
    orig = pd.read_csv(folder / "LOC_val_solution.csv")
    orig = orig.set_index("ImageId").PredictionString.str.split().str[0].map(index).sort_index()
    real = json.loads((folder / "real.json").read_text())
    real_keys = [f"ILSVRC2012_val_{i + 1:08d}" for i in range(len(real))]
    real = pd.Series(real, index=real_keys)
    real = real[real.map(len) > 0]
    out = {}
    for model in MODELS:
        pred = pd.read_csv(folder / "model_predictions" / f"{model}.csv")
        pred = pred.set_index(pred.file_name.str.replace(".JPEG", "", regex=False)).predicted_class
        out[model] = {
            "imagenet-original": (pred.reindex(orig.index) == orig),
            "real": pd.Series([int(pred[k]) in labels for k, labels in real.items()], index=real.index),
        }
    return out


@pytest.mark.slow
def test_real_leaderboard_rows_match_independent_scoring(real_board, raw_correct, shipped_store):
    rows = {r.name: r for r in real_board.rows}
    assert set(rows) == set(MODELS)
    for model, row in rows.items():
        truth = raw_correct[model]
        assert row.source == SOURCE_IMPORT and f"{model}.csv" in row.provenance
        assert row.relabelled.n == truth["real"].size == 46_837
        assert row.reference.n == truth["imagenet-original"].size == 50_000
        assert row.relabelled.accuracy == pytest.approx(truth["real"].mean(), abs=1e-12)
        assert row.reference.accuracy == pytest.approx(truth["imagenet-original"].mean(), abs=1e-12)
        k = int(truth["real"].sum())
        assert (row.relabelled.wilson.low, row.relabelled.wilson.high) == pytest.approx(
            proportion_confint(k, truth["real"].size, method="wilson"), abs=1e-12)
        assert row.relabelled.bootstrap.low < row.relabelled.accuracy < row.relabelled.bootstrap.high
        run_id = shipped_store.resolve_run(model)["run_id"]
        assert row.relabelled.accuracy == score_run(shipped_store, run_id, "real")["top1"]
        gap = row.gap_interval  # images resampled once for both label sets
        assert gap.method == "paired percentile bootstrap" and gap.n == 50_000
        assert gap.estimate == pytest.approx(truth["real"].mean() - truth["imagenet-original"].mean(), abs=1e-12)
        assert gap.low < gap.estimate < gap.high
    # the numbers published with the prediction files (data README), to two decimals
    published = {"ResNet50": (76.13, 82.96), "ViT": (78.01, 83.99), "DINO": (76.75, 82.80),
                 "SimCLR": (68.14, 75.65), "label_errors_resnet50_cv": (72.73, 77.61)}
    for model, (orig, real) in published.items():
        assert (round(100 * rows[model].reference.accuracy, 2), round(100 * rows[model].relabelled.accuracy, 2)) \
            == (orig, real)
    assert [r.relabelled.accuracy for r in real_board.rows] == sorted(
        (r.relabelled.accuracy for r in real_board.rows), reverse=True)


def test_real_pairwise_tests_and_ranks_match_statsmodels(real_board, raw_correct):
    names = [r.name for r in real_board.rows]
    assert len(real_board.pairs) == len(names) * (len(names) - 1) // 2
    raw_p = []
    for pair in real_board.pairs:
        a, b = raw_correct[pair.a]["real"], raw_correct[pair.b]["real"]
        table = pd.crosstab(a, b).reindex(index=[True, False], columns=[True, False], fill_value=0).to_numpy()
        ref = mcnemar(table, exact=True)
        assert pair.mcnemar.pvalue == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
        assert pair.mcnemar.n == 46_837
        assert pair.difference.estimate == pytest.approx(a.mean() - b.mean(), abs=1e-12)
        raw_p.append(ref.pvalue)
    holm = multipletests(raw_p, method="holm")[1]
    assert [p.holm_pvalue for p in real_board.pairs] == pytest.approx(list(holm), rel=1e-9, abs=1e-300)
    significant = {(p.a, p.b) for p, h in zip(real_board.pairs, holm) if h < 0.05}
    acc = {r.name: r.relabelled.accuracy for r in real_board.rows}
    for row in real_board.rows:
        better = sum(1 for other in names if acc[other] > acc[row.name]
                     and ((other, row.name) in significant or (row.name, other) in significant))
        assert row.rank == 1 + better
    ranks = {r.name: r.rank for r in real_board.rows}
    # ResNet50 and DINO differ by 0.16 points on ReaL: not significant, so they share a rank
    assert ranks["ResNet50"] == ranks["DINO"] == 2 and ranks["ViT"] == 1


def test_real_correlation_across_models_matches_scipy(real_board):
    x = [100 * r.reference.accuracy for r in real_board.rows]
    y = [100 * r.relabelled.accuracy for r in real_board.rows]
    pearson, spearman, line = real_board.correlation
    assert pearson.r == pytest.approx(stats.pearsonr(x, y).statistic, rel=1e-12) and pearson.n == 5
    assert spearman.r == pytest.approx(stats.spearmanr(x, y).statistic, rel=1e-12)
    assert line.slope == pytest.approx(stats.linregress(x, y).slope, rel=1e-12)


def test_timm_study_matches_the_csv_files(shipped_store, shared_data):
    board = build(shipped_store, load_spec("timm-real"))
    folder = shared_data / "timm-results"
    orig = pd.read_csv(folder / "results-imagenet.csv", thousands=",")
    real = pd.read_csv(folder / "results-imagenet-real.csv", thousands=",")
    both = orig.merge(real, on=["model", "img_size"], suffixes=("_o", "_r"))
    assert len(board.rows) == len(both) == 1556
    assert all(r.source == SOURCE_EXTERNAL and r.rank is None and r.relabelled.bootstrap is None
               for r in board.rows)
    top = both.sort_values(["top1_r", "top1_o"], ascending=False).iloc[0]
    assert board.rows[0].name == top.model
    assert 100 * board.rows[0].relabelled.accuracy == pytest.approx(top.top1_r, abs=1e-9)
    assert board.rows[0].relabelled.n == 46_837 and board.rows[0].reference.n == 50_000
    giant = [r for r in board.rows if r.name == "eva_giant_patch14_560.m30m_ft_in22k_in1k"][0]
    assert giant.params_m == 1014.45  # stored as "1,014.45" in the CSV
    pearson, _, _ = board.correlation
    assert pearson.r == pytest.approx(stats.pearsonr(both.top1_o, both.top1_r).statistic, rel=1e-9)
    fitted, given = board.regimes
    assert given.breakpoint == 81.0 and given.breakpoint_source == "given"
    assert given.below.n == int((both.top1_o < 81).sum()) and given.above.n == int((both.top1_o >= 81).sum())
    assert fitted.breakpoint_source == "piecewise-linear fit" and min(fitted.below.n, fitted.above.n) >= 20
    # at the top, a point of original accuracy buys less ReaL accuracy than below
    assert given.above.line.slope < given.below.line.slope and given.slope_difference_pvalue < 1e-6
    from reports.render import regime_sentences

    # p-values at a breakpoint chosen from the same data are optimistic, and the text says so
    assert any(t.startswith("Caveat: the breakpoint was fitted") for t in regime_sentences(board, fitted))
    assert not any(t.startswith("Caveat") for t in regime_sentences(board, given))


@pytest.mark.slow
def test_regenerating_gives_byte_identical_files_and_reproduces_the_committed_ones(shipped_store, tmp_path):
    strip_png = re.compile(rb"data:image/png;base64,[A-Za-z0-9+/=]+")
    for name in ("real", "real-subset", "timm-real", "cifar10-v6", "cifar10-corrected", "imagenetv2",
                 "imagenet-sketch"):
        shutil.copy(LEADERBOARD_DIR / f"{name}.toml", tmp_path)
        first = render_leaderboard(shipped_store, name, tmp_path)
        assert write_files(first) == list(first)
        second = render_leaderboard(shipped_store, name, tmp_path)
        assert second == first and write_files(second) == []
    # `python -m reports build-store` alone reproduces these committed leaderboards whole: runs a store
    # holds beyond the shipped data (an own run on the 1,300-image subset, own CIFAR runs) are left out
    # of them and named by the CLI, not written into the files. The picture is compared only in-process
    # because its bytes depend on matplotlib's version.
    for name in ("real", "timm-real", "cifar10-v6", "cifar10-corrected", "imagenetv2", "imagenet-sketch"):
        for suffix in (".md", ".html"):
            fresh = strip_png.sub(b"", (tmp_path / f"{name}{suffix}").read_bytes())
            committed = strip_png.sub(b"", (LEADERBOARD_DIR / f"{name}{suffix}").read_bytes())
            difference = first_difference(fresh, committed, f"leaderboards/{name}{suffix}")
            assert difference is None, difference


def test_partial_run_is_left_out_or_compared_on_common_samples(shipped_store, shared_data, tmp_path):
    from harness.suites import get_suite

    subset = sorted(p.stem for p in (shared_data / "imagenet-val-subset").rglob("*.JPEG"))
    assert len(subset) == 1300
    pred = pd.read_csv(shared_data / "imagenet" / "model_predictions" / "ViT.csv")
    pred = pred[pred.file_name.str.replace(".JPEG", "", regex=False).isin(subset)]
    partial_file = tmp_path / "ViT-subset.csv"
    pred.to_csv(partial_file, index=False)
    store = Store(tmp_path / "store")
    shutil.copytree(shipped_store.root, store.root, dirs_exist_ok=True)
    get_suite("imagenet").import_predictions(store, partial_file, "ViT-subset")

    full = build(store, load_spec("real"))
    assert "ViT-subset" not in [r.name for r in full.rows]
    assert any("ViT-subset is left out" in n and "1,300" in n for n in full.left_out)
    assert not any("ViT-subset" in n for n in full.notes)  # the files state the rule, not the store's extra runs

    text = (LEADERBOARD_DIR / "real.toml").read_text().replace('samples = "full"', 'samples = "common"')
    common = build(store, parse_spec(text, "real-common", tmp_path / "real-common.toml"))
    rows = {r.name: r for r in common.rows}
    assert rows["ViT-subset"].relabelled.accuracy == rows["ViT"].relabelled.accuracy
    assert rows["ViT"].reference.n == 1300 and common.reference.n_samples == 1300
    real = json.loads((shared_data / "imagenet" / "real.json").read_text())
    real_labelled = sum(1 for k in subset if real[int(k[-8:]) - 1])
    assert rows["ViT"].relabelled.n == real_labelled == common.relabelled.n_samples
    same = [p for p in common.pairs if {p.a, p.b} == {"ViT", "ViT-subset"}][0]
    assert same.mcnemar.pvalue == 1.0 and rows["ViT"].rank == rows["ViT-subset"].rank  # exact tie


@pytest.mark.slow
def test_a_later_check_run_on_fewer_images_never_replaces_a_larger_run(shipped_store, shared_data, tmp_path):
    # Issue 12's scenario: a 24-image --data-dir check run named efficientnet-lite0 replaced the 1,300-image
    # run in real-subset (every row dropped to n=24). Here the larger run has 96 images, to stay quick.
    from harness.runner import run_classification
    from harness.suites import get_suite

    store = Store(tmp_path / "store")
    shutil.copytree(shipped_store.root, store.root, dirs_exist_ok=True)
    larger = run_classification(store, get_suite("real"), "efficientnet-lite0", limit=96, batch_size=48,
                                workers=0, quiet=True)
    check = tmp_path / "check"
    check.mkdir()
    for image in sorted((shared_data / "imagenet-val-subset").iterdir())[:24]:
        (check / image.name).symlink_to(image)
    smaller = run_classification(store, get_suite("real"), "efficientnet-lite0", data_dir=check, batch_size=24,
                                 workers=0, quiet=True)
    assert store.list_runs("complete")[-1]["run_id"] == smaller  # the newest run of the name
    board = build(store, load_spec("real-subset"))
    rows = {r.name: r for r in board.rows}
    assert rows["efficientnet-lite0"].reference.n == 96 == board.reference.n_samples
    assert rows["ResNet50"].reference.n == 96
    assert "images: 96" in rows["efficientnet-lite0"].provenance and store.run_meta(larger)["n_images"] == 96
    assert any("the most samples" in line for line in rows_lines(board))  # the rule is written into the page


def test_two_suites_pair_runs_by_name_cifar10_vs_cifar10_1(shipped_store, shared_data):
    board = build(shipped_store, load_spec("cifar10-v6"))
    folder = shared_data / "cifar"
    labels = {"orig": np.load(folder / "cifar10_test_labels.npy"), "v6": np.load(folder / "cifar10.1_v6_labels.npy")}
    accuracy = {}
    for which, sub in (("orig", "original_predictions"), ("v6", "v6_predictions")):
        for f in (folder / "cifar10_1_model_predictions" / sub).glob("*_predictions.json"):
            pred = np.array(json.loads(f.read_text()))
            accuracy.setdefault(f.name.removesuffix("_predictions.json"), {})[which] = (pred == labels[which]).mean()
    rows = {r.name: r for r in board.rows}
    assert set(rows) == set(accuracy) and len(rows) == 30
    for name, acc in accuracy.items():
        assert rows[name].reference.accuracy == pytest.approx(acc["orig"], abs=1e-12)
        assert rows[name].relabelled.accuracy == pytest.approx(acc["v6"], abs=1e-12)
        assert rows[name].reference.n == 10_000 and rows[name].relabelled.n == 2_000
        assert rows[name].gap_interval.method == "independent percentile bootstrap"
    # runs that exist on only one of the two datasets are named, not silently dropped
    assert any(n.startswith("label_errors_cv is left out") and "cifar10.1-v6" in n for n in board.left_out)
    x = [100 * accuracy[r.name]["orig"] for r in board.rows]
    y = [100 * accuracy[r.name]["v6"] for r in board.rows]
    pearson, _, line = board.correlation
    assert pearson.r == pytest.approx(stats.pearsonr(x, y).statistic, rel=1e-9) and pearson.n == 30
    assert line.slope == pytest.approx(stats.linregress(x, y).slope, rel=1e-9)
    assert all(p.mcnemar.n == 2_000 for p in board.pairs) and len(board.pairs) == 30 * 29 // 2


def test_bad_specs_are_refused_with_one_clear_error(tmp_path):
    good = (LEADERBOARD_DIR / "real.toml").read_text()
    cases = {
        good.replace("[table]", "[table]\ncolour = 1"): "unknown key",
        good.replace('"provenance"]', '"provenance", "f1"]'): "unknown column",
        good.replace("seed = 0", "seed = 0\nbreakpoints = [\"knee\"]"): "breakpoints",
        good.replace('samples = "full"', 'samples = "some"'): "samples",
        good.replace("confidence = 0.95", "confidence = 95.0"): "confidence",
        good.replace('runs = ["*"]', "runs = []"): "selects no rows",
        good.replace('dataset = "imagenet-val"', ""): "lacks 'dataset'",
        good + "\n[[oops": "not valid TOML",
        good.replace('metric = "top1"', 'metrics = ["top5", "top1"]'): "starting with \"top1\"",
        good.replace('metric = "top1"', 'metric = "top1"\nmetrics = ["top1"]'): "both 'metric' and 'metrics'",
        good.replace('"provenance"]', '"provenance", "reference_top5"]'): "needs 'top5' in metrics",
    }
    for text, message in cases.items():
        with pytest.raises(HarnessError, match=message):
            parse_spec(text, "bad", tmp_path / "bad.toml")
    with pytest.raises(HarnessError, match="known leaderboards: .*real"):
        load_spec("no-such-board")


def test_timm_csv_parsing_refuses_bad_files_and_stores_nothing(shared_data, tmp_path, store):
    text = (shared_data / "timm-results" / "results-imagenet.csv").read_text().splitlines()
    bad_number = tmp_path / "bad.csv"
    bad_number.write_text("\n".join([text[0], text[1].replace(",90.056,", ",ninety,"), *text[2:5]]) + "\n")
    with pytest.raises(HarnessError, match=r"column 'top1' row 2 holds 'ninety'"):
        parse_timm_results(bad_number)
    repeated = tmp_path / "repeated.csv"
    repeated.write_text("\n".join([text[0], text[1], text[1]]) + "\n")
    with pytest.raises(HarnessError, match="row 3 repeats model"):
        parse_timm_results(repeated)
    no_column = tmp_path / "nocol.csv"
    no_column.write_text("model,top1\nx,1\n")
    with pytest.raises(HarnessError, match="lacks the column"):
        parse_timm_results(no_column)
    assert store.list_runs() == []


@pytest.mark.slow
def test_cli_regenerates_checks_and_compares(shipped_store, raw_correct, tmp_path, capsys, monkeypatch):
    shutil.copy(LEADERBOARD_DIR / "real.toml", tmp_path)
    args = ["--store", str(shipped_store.root), "leaderboard", "--dir", str(tmp_path)]
    assert cli.main(args + ["--check"]) == 1  # nothing generated yet
    assert cli.main(args) == 0
    assert "real: 3 of 3 files changed" in capsys.readouterr().out
    assert cli.main(args + ["--check"]) == 0
    assert cli.main(args) == 0 and "real: 0 of 3 files changed" in capsys.readouterr().out
    # --out: the files go there, byte for byte the same; without --dir or --out, to leaderboards/ where you are
    assert cli.main(args + ["real", "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "real.md").read_bytes() == (tmp_path / "real.md").read_bytes()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert cli.main(["--store", str(shipped_store.root), "leaderboard", "real"]) == 0
    assert (tmp_path / "elsewhere" / "leaderboards" / "real.md").read_bytes() == (tmp_path / "real.md").read_bytes()
    capsys.readouterr()
    # --store goes before or after the command
    assert cli.main(["compare", "ResNet50", "DINO", "--label-set", "real", "--store", str(shipped_store.root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("label set real (suite real, dataset imagenet-val), n = 46,837 shared samples\n")
    assert "ResNet50: top-1 82.96%" in out
    assert cli.main(["compare", "ResNet50", "DINO", "--label-set", "imagenet-original", "--store",
                     str(shipped_store.root)]) == 0
    assert capsys.readouterr().out.startswith("label set imagenet-original (suite imagenet, dataset imagenet-val), "
                                              "n = 50,000 shared samples")
    a, b = raw_correct["ResNet50"]["real"], raw_correct["DINO"]["real"]
    table = pd.crosstab(a, b).reindex(index=[True, False], columns=[True, False], fill_value=0).to_numpy()
    assert f"p = {mcnemar(table, exact=True).pvalue:.3g}" in out
    assert cli.main(["--store", str(shipped_store.root), "leaderboard", "--dir", str(tmp_path), "nope"]) == 2
    assert "no leaderboard spec" in capsys.readouterr().err
    shutil.copy(LEADERBOARD_DIR / "cifar10-v6.toml", tmp_path)  # runs on one dataset only are named on stderr
    assert cli.main(["leaderboard", "cifar10-v6", "--dir", str(tmp_path), "--store", str(shipped_store.root)]) == 0
    assert "cifar10-v6: label_errors_cv is left out: it has a run on cifar10-test" in capsys.readouterr().err
    assert "left out" not in (tmp_path / "cifar10-v6.md").read_text().replace("are left out;", "")


@pytest.mark.slow
def test_build_store_is_idempotent_registers_cifar10h_real_and_is_quiet_on_request(shipped_store, shared_data,
                                                                                  capsys):
    from relabel.cifar import cifar10h_counts, label_sets

    before = {m["run_id"] for m in shipped_store.list_runs()}
    assert cli.main(["build-store", "--quiet", "--store", str(shipped_store.root)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "timm result tables" not in captured.out
    assert {line.split(": ")[1] for line in captured.out.splitlines()} == before  # nothing imported twice
    assert {m["run_id"] for m in shipped_store.list_runs()} == before
    # the ReaL-style CIFAR-10H set behind cifar10h.toml: what relabel.cifar.label_sets gives at 20%
    meta = shipped_store.label_set_meta("cifar10h-real")
    assert meta["min_share"] == 0.2 and meta["dataset"] == "cifar10-test" and "at least 20%" in meta["description"]
    stored = shipped_store.sql("SELECT key, labels FROM labels WHERE label_set = 'cifar10h-real'")
    expected, _ = label_sets(cifar10h_counts(shared_data / "cifar" / "cifar10h-counts.npy"), 0.2)
    assert {int(k): list(v) for k, v in zip(stored.key, stored.labels)} == dict(enumerate(expected))
    board = build(shipped_store, load_spec("cifar10h"))
    assert len(board.rows) == 31  # the 30 published models and label_errors_cv; own runs join when stored
    # with progress: one bar per stage on stderr
    assert cli.main(["--store", str(shipped_store.root), "build-store"]) == 0
    captured = capsys.readouterr()
    assert "ImageNet predictions" in captured.err and "timm result tables" in captured.out


def test_top5_columns_from_timm_tables_and_a_dash_where_a_run_has_none(shipped_store, shared_data, tmp_path):
    board = build(shipped_store, load_spec("timm-real"))
    assert "top5" in board.spec.metrics
    folder = shared_data / "timm-results"
    real = pd.read_csv(folder / "results-imagenet-real.csv", thousands=",").set_index(["model", "img_size"])
    orig = pd.read_csv(folder / "results-imagenet.csv", thousands=",").set_index(["model", "img_size"])
    for row in board.rows[:50]:
        model = row.name.split(" @")[0]
        assert 100 * row.relabelled.metrics.get("top5") == pytest.approx(real.top5[model, row.img_size], abs=1e-9)
        assert 100 * row.reference.metrics.get("top5") == pytest.approx(orig.top5[model, row.img_size], abs=1e-9)
    md = render_leaderboard(shipped_store, "timm-real")[LEADERBOARD_DIR / "timm-real.md"].decode()
    assert "| top-5 % (real) |" in md and "| top-5 % (imagenet-original) |" in md
    # the five ImageNet prediction files hold top-1 classes only: a dash and the reason, no crash
    text = (LEADERBOARD_DIR / "real.toml").read_text().replace('metric = "top1"', 'metrics = ["top1", "top5"]')
    real_board = build(shipped_store, parse_spec(text, "real-top5", tmp_path / "real-top5.toml"))
    assert all(r.relabelled.metrics.get("top5") is None and r.reference.metrics.get("top5") is None
               for r in real_board.rows)
    assert any(n.startswith("top-5 shows – for ") and "fewer than five classes" in n for n in real_board.notes)
    from reports.render import render_markdown

    table = [line for line in render_markdown(real_board).decode().splitlines() if line.startswith("| 1 | ViT |")]
    assert table and "| – |" in table[0]
    # a run that stores five classes per sample has top-5 (the cross-validated CIFAR-10 probabilities)
    cifar = (LEADERBOARD_DIR / "cifar10h.toml").read_text().replace('metric = "top1"', 'metrics = ["top1", "top5"]')
    rows = {r.name: r for r in build(shipped_store, parse_spec(cifar, "c", tmp_path / "c.toml")).rows}
    pyx = np.load(shared_data / "cifar" / "cifar10_test_pyx.npy")
    labels = np.load(shared_data / "cifar" / "cifar10_test_labels.npy")
    top5 = np.argsort(-pyx, axis=1, kind="stable")[:, :5]
    assert rows["label_errors_cv"].reference.metrics.get("top5") == pytest.approx(
        np.mean((top5 == labels[:, None]).any(1)))
    assert rows["resnet_basic_56"].reference.metrics.get("top5") is None


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


def _chromium_dom(url: str, profile) -> str:
    import subprocess

    browser = shutil.which("chromium")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing on CI; scripts/setup.sh installs the Debian package chromium")
        pytest.skip("the leaderboard page test needs headless Chromium: apt-get install chromium "
                    "(scripts/setup.sh does it)")
    done = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                           "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class _Table(html.parser.HTMLParser):
    """The leaderboard table as Chromium left it: header attributes and rows of (data-col -> text)."""

    def __init__(self):
        super().__init__()
        self.heads, self.rows, self._cell, self._in_board = [], [], None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._in_board = attrs.get("id") == "leaderboard"
        elif self._in_board and tag == "th":
            self.heads.append(attrs)
        elif self._in_board and tag == "tr" and "data-model" in attrs:
            self.rows.append({"model": attrs["data-model"]})
        elif self._in_board and tag == "td":
            self._cell = attrs["data-col"]
            self.rows[-1][self._cell] = ""

    def handle_data(self, data):
        if self._cell:
            self.rows[-1][self._cell] += data

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        elif tag == "table":
            self._in_board = False


def test_html_page_is_self_contained_sorts_in_headless_chromium(shipped_store, real_board, tmp_path):
    shutil.copy(LEADERBOARD_DIR / "real.toml", tmp_path)
    write_files(render_leaderboard(shipped_store, "real", tmp_path))
    page = tmp_path / "real.html"
    source = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", source), "the page must not load anything"
    assert "data:image/png;base64," in source

    dom = _chromium_dom(page.as_uri() + "#sort=reference:asc", tmp_path / "profile-1")
    table = _Table()
    table.feed(dom)
    by_reference = sorted(real_board.rows, key=lambda r: r.reference.accuracy)
    assert [r["model"] for r in table.rows] == [r.name for r in by_reference]  # the page's script sorted it
    assert [h.get("aria-sort") for h in table.heads if h["data-col"] == "reference"] == ["ascending"]
    resnet = next(r for r in table.rows if r["model"] == "ResNet50")
    run_id = shipped_store.resolve_run("ResNet50")["run_id"]
    assert resnet["relabelled"] == f"{100 * score_run(shipped_store, run_id, 'real')['top1']:.2f}" == "82.96"

    dom = _chromium_dom(page.as_uri() + "#sort=model", tmp_path / "profile-2")
    table = _Table()
    table.feed(dom)
    assert [r["model"] for r in table.rows] == sorted((r.name for r in real_board.rows), reverse=True)
    # an interval column sorts by its lower bound (a number the page parses from data-v)
    dom = _chromium_dom(page.as_uri() + "#sort=relabelled_wilson:asc", tmp_path / "profile-3")
    table = _Table()
    table.feed(dom)
    by_low = sorted(real_board.rows, key=lambda r: r.relabelled.wilson.low)
    assert [r["model"] for r in table.rows] == [r.name for r in by_low]
    assert all(re.fullmatch(r"\[\d+\.\d\d, \d+\.\d\d\]", r["relabelled_wilson"]) for r in table.rows)


@pytest.mark.parametrize("name, table, n_shift", [("imagenetv2", "results-imagenetv2-matched-frequency.csv", 10_000),
                                                  ("imagenet-sketch", "results-sketch.csv", 50_889)])
def test_shift_leaderboards_match_the_csv_files_and_an_independent_logit_fit(shipped_store, shared_data, name,
                                                                              table, n_shift):
    from reports.render import render_markdown

    board = build(shipped_store, load_spec(name))
    folder = shared_data / "timm-results"
    orig = pd.read_csv(folder / "results-imagenet.csv", thousands=",")
    shift = pd.read_csv(folder / table, thousands=",")
    both = orig.merge(shift, on=["model", "img_size"], suffixes=("_o", "_s"))
    assert len(board.rows) == len(both) == 1556
    assert {(r.relabelled.n, r.reference.n) for r in board.rows} == {(n_shift, 50_000)}
    pearson, _, _ = board.correlation
    assert pearson.r == pytest.approx(stats.pearsonr(both.top1_o, both.top1_s).statistic, rel=1e-9)
    assert [reg.breakpoint_source for reg in board.regimes] == ["piecewise-linear fit", "given"]
    # effective robustness: OLS of logit(shifted) on logit(original) over the same 1,556 rows, by scipy
    x, y = np.array([r.reference.accuracy for r in board.rows]), np.array([r.relabelled.accuracy for r in board.rows])
    fit = stats.linregress(np.log(x / (1 - x)), np.log(y / (1 - y)))
    assert board.robustness.slope.estimate == pytest.approx(fit.slope, rel=1e-9)
    assert board.robustness.intercept.estimate == pytest.approx(fit.intercept, rel=1e-9, abs=1e-12)
    expected = y - 1 / (1 + np.exp(-(fit.intercept + fit.slope * np.log(x / (1 - x)))))
    np.testing.assert_allclose([r.effective.estimate for r in board.rows], expected, atol=1e-9)
    assert all(r.effective.low <= r.effective.estimate <= r.effective.high for r in board.rows)
    top = max(board.rows, key=lambda r: r.effective.estimate)
    text = render_markdown(board).decode()
    assert "## Effective robustness on" in text and f"| {top.name} | {100 * top.effective.estimate:+.2f} |" in text


def test_any_timm_table_imports_on_the_suite_it_measures(store, shared_data, tmp_path):
    from harness.data import sha256_file
    from reports.external import import_timm_file

    # timm's ImageNet-A table has the same format; the shipped Sketch table stands in for one here
    a_table = tmp_path / "results-imagenet-a.csv"
    shutil.copy(shared_data / "timm-results" / "results-sketch.csv", a_table)
    run_id = import_timm_file(store, a_table)
    meta = store.run_meta(run_id)
    assert (meta["suite"], meta["label_set"], meta["dataset"]) == ("imagenet-a", "imagenet-a", "imagenet-a")
    assert meta["n_samples_per_model"] == 7_500 and meta["source_sha256"] == sha256_file(a_table)
    assert meta["name"] == "timm-imagenet-a" and len(store.sql(
        f"SELECT * FROM aggregates WHERE run_id = '{run_id}'")) == 1556
    assert import_timm_file(store, a_table) == run_id  # the same file again is not a second run
    r_run = import_timm_file(store, a_table, suite="imagenet-r", name="my-r-table")
    assert store.run_meta(r_run)["n_samples_per_model"] == 30_000
    with pytest.raises(HarnessError, match="cannot tell which test set a file named 'mine.csv' measures"):
        import_timm_file(store, tmp_path / "mine.csv")


def test_real_gap_vs_v2_gap_study_matches_scipy(shipped_store, shared_data, capsys):
    from reports.shift_study import gap_study

    folder = shared_data / "timm-results"
    tables = [pd.read_csv(folder / f"results-{n}.csv", thousands=",")[["model", "img_size", "top1"]]
              for n in ("imagenet", "imagenet-real", "imagenetv2-matched-frequency")]
    both = tables[0].merge(tables[1], on=["model", "img_size"], suffixes=("", "_real")).merge(
        tables[2], on=["model", "img_size"], suffixes=("", "_v2"))
    study = gap_study(shipped_store)
    assert study.n_models == len(both) == 1556
    raw_real, raw_v2 = (both.top1_real - both.top1).round(6), (both.top1_v2 - both.top1).round(6)
    assert study.raw_pearson.r == pytest.approx(stats.pearsonr(raw_real, raw_v2).statistic, abs=1e-9)
    assert study.raw_spearman.r == pytest.approx(stats.spearmanr(raw_real, raw_v2).statistic, abs=1e-9)

    def residual(y):  # distance from the least-squares line in logit space, in points
        lx, ly = np.log(both.top1 / (100 - both.top1)), np.log(y / (100 - y))
        fit = stats.linregress(lx, ly)
        return y - 100 / (1 + np.exp(-(fit.intercept + fit.slope * lx)))

    expected = stats.pearsonr(residual(both.top1_real), residual(both.top1_v2))
    assert study.effective_pearson.r == pytest.approx(expected.statistic, abs=1e-9)
    ci = expected.confidence_interval(0.95)
    assert (study.effective_pearson.low, study.effective_pearson.high) == pytest.approx((ci.low, ci.high), abs=1e-6)
    assert cli.main(["--store", str(shipped_store.root), "shift-study"]) == 0
    assert f"Pearson {study.effective_pearson.r:+.3f}" in capsys.readouterr().out
