"""A small leaderboard rendered to markdown, in the quick run: every cell of its leaderboard and pairs tables
against numbers computed here from the raw files (pandas, statsmodels), rows in rank order; the p-value
text at its edges. Before, only the slow whole-page comparison looked at a rendered cell."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from harness.suites import get_suite
from reports.leaderboard import build
from reports.render import p_equals, pvalue_text, render_markdown
from reports.spec import LEADERBOARD_DIR, parse_spec

N = 400
MODELS = ("ResNet50", "ViT", "SimCLR")


@pytest.fixture(scope="module")
def board_and_truth(tmp_path_factory, shared_data):
    from harness.store import Store

    root = tmp_path_factory.mktemp("render")
    store = Store(root / "store")
    for suite in ("imagenet", "real"):
        get_suite(suite).ensure_label_sets(store)
    folder = shared_data / "imagenet"
    index = {s: i for i, s in enumerate((folder / "imagenet_synsets.txt").read_text().split())}
    solution = pd.read_csv(folder / "LOC_val_solution.csv")
    original = solution.set_index("ImageId").PredictionString.str.split().str[0].map(index)
    real = json.loads((folder / "real.json").read_text())
    correct = {}
    for model in MODELS:
        pred = pd.read_csv(folder / "model_predictions" / f"{model}.csv").sort_values("file_name").head(N)
        pred.to_csv(root / f"{model}.csv", index=False)
        get_suite("imagenet").import_predictions(store, root / f"{model}.csv", model)
        keys = pred.file_name.str.replace(".JPEG", "", regex=False)
        cls = pred.predicted_class.to_numpy()
        labels = [real[int(k[-8:]) - 1] for k in keys]
        correct[model] = {"reference": cls == original.reindex(keys).to_numpy(),
                          "relabelled": np.array([c in lab for c, lab in zip(cls, labels) if lab])}
    text = (LEADERBOARD_DIR / "real.toml").read_text().replace('samples = "full"', 'samples = "common"')
    text = text.replace("bootstrap_resamples = 10000", "bootstrap_resamples = 500")
    board = build(store, parse_spec(text, "small", root / "small.toml"))
    return board, correct, store


def table_after(markdown: str, title: str) -> list[list[str]]:
    lines = markdown.split(f"## {title}\n\n", 1)[1].splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("| "):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def pct(v: float) -> str:
    return f"{100 * v:.2f}"


def test_every_leaderboard_cell_against_the_raw_files(board_and_truth):
    board, correct, store = board_and_truth
    markdown = render_markdown(board).decode()
    rows = table_after(markdown, "Leaderboard")
    by_relabelled = sorted(MODELS, key=lambda m: -correct[m]["relabelled"].mean())
    assert [r[1] for r in rows] == by_relabelled  # rank order: relabelled top-1, best first
    for cells in rows:
        (rank, name, source, rel, rel_wilson, rel_boot, ref, ref_wilson, ref_boot, gap, gap_boot, n_rel, n_ref,
         provenance) = cells
        c = correct[name]
        k_rel, n_rel_ = int(c["relabelled"].sum()), c["relabelled"].size
        k_ref, n_ref_ = int(c["reference"].sum()), c["reference"].size
        assert source == "imported predictions" and rank.isdigit()
        assert rel == pct(k_rel / n_rel_) and ref == pct(k_ref / n_ref_)
        assert (n_rel, n_ref) == (f"{n_rel_:,}", f"{n_ref_:,}") == (n_rel, "400")
        low, high = proportion_confint(k_rel, n_rel_, alpha=0.05, method="wilson")
        assert rel_wilson == f"[{pct(low)}, {pct(high)}]"
        low, high = proportion_confint(k_ref, n_ref_, alpha=0.05, method="wilson")
        assert ref_wilson == f"[{pct(low)}, {pct(high)}]"
        assert gap == f"{100 * (k_rel / n_rel_ - k_ref / n_ref_):+.2f}"
        for interval in (rel_boot, ref_boot, gap_boot):
            low_text, high_text = interval.strip("[]").split(", ")
            assert float(low_text) <= float(high_text)
        assert float(rel_boot.strip("[]").split(", ")[0]) <= float(rel) <= float(rel_boot.strip("[]").split(", ")[1])


def test_every_pairs_cell_against_statsmodels(board_and_truth):
    board, correct, store = board_and_truth
    rows = table_after(render_markdown(board).decode(), board_pairs_title(board))
    assert len(rows) == 3  # every pair of three models
    for a, b, diff, interval, only_a, only_b, p, holm, significant in rows:
        ca, cb = correct[a]["relabelled"], correct[b]["relabelled"]
        assert diff == f"{100 * (ca.mean() - cb.mean()):+.2f}"
        assert (only_a, only_b) == (f"{int((ca & ~cb).sum()):,}", f"{int((~ca & cb).sum()):,}")
        table = [[int((ca & cb).sum()), int((ca & ~cb).sum())], [int((~ca & cb).sum()), int((~ca & ~cb).sum())]]
        assert p == pvalue_text(min(1.0, mcnemar(table, exact=True).pvalue))
        assert significant == ("yes" if float(holm) < 0.05 else "no")
        assert float(holm) >= float(p) - 5e-4


def board_pairs_title(board) -> str:
    from reports.render import pairs_title

    return pairs_title(board)


@pytest.mark.parametrize("p,text", [(1e-301, "< 1e-300"), (0.0, "< 1e-300"), (1.5e-10, "1.5e-10"),
                                    (0.000999, "0.000999"), (0.001, "0.001"), (0.0456, "0.046"), (1.0, "1.000")])
def test_pvalue_text_at_its_edges(p, text):
    assert pvalue_text(p) == text
    assert p_equals(p) == (f"p {text}" if text.startswith("<") else f"p = {text}")


def test_effective_robustness_cells_against_a_logit_fit(board_and_truth, tmp_path):
    """The same three models with effective robustness on: each row's cell is its relabelled accuracy minus
    the logit-space least-squares line's prediction (numpy.polyfit), in points."""
    from scipy.special import expit, logit

    board, correct, store = board_and_truth
    text = (LEADERBOARD_DIR / "real.toml").read_text().replace('samples = "full"', 'samples = "common"')
    text = text.replace("bootstrap_resamples = 10000", "bootstrap_resamples = 200")
    text = text.replace("alpha = 0.05", "alpha = 0.05\neffective_robustness = true")
    text = text.replace('"provenance"]', '"effective_robustness", "effective_robustness_bootstrap"]')
    robust = build(store, parse_spec(text, "robust", tmp_path / "robust.toml"))
    rows = table_after(render_markdown(robust).decode(), "Leaderboard")
    ref = np.array([correct[r[1]]["reference"].mean() for r in rows])
    rel = np.array([correct[r[1]]["relabelled"].mean() for r in rows])
    slope, intercept = np.polyfit(logit(ref), logit(rel), 1)
    expected = rel - expit(intercept + slope * logit(ref))
    assert [r[-2] for r in rows] == [f"{100 * e:+.2f}" for e in expected]
    for r in rows:
        low, high = (float(v) for v in r[-1].strip("[]").split(", "))
        assert low <= high
