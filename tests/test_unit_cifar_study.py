"""The CIFAR study page in the quick run: leaderboards/cifar-study.md is, byte for byte, the rendering of
leaderboards/cifar-study.csv (every statistic recomputed from the per-model numbers) with the threshold
sweep and the label facts the page states. The slow test_cifar.py rebuilds both files from a store; this
one checks the page's arithmetic and formatting in seconds, so a wrong correlation, line, z-test, regime
or mover is caught between commits."""
from __future__ import annotations

import re

import pandas as pd

from reports.cifar_study import movers, render_markdown, statistics
from reports.spec import LEADERBOARD_DIR
from reports.stats import Line

SWEEP_ROW = re.compile(r"^\| (0\.\d) \| ([\d,]+) \| ([\d,]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", re.M)


def committed():
    md = (LEADERBOARD_DIR / "cifar-study.md").read_text()
    table = pd.read_csv(LEADERBOARD_DIR / "cifar-study.csv")
    number = (lambda text: int(text.replace(",", "")))
    sweep = pd.DataFrame([{"min_share": float(a), "images_kept": number(b), "multi_label": number(c),
                           "original_labels": float(d), "models_mean": float(e), "models_min": float(f),
                           "models_max": float(g)} for a, b, c, d, e, f, g in SWEEP_ROW.findall(md)])
    facts = {"real_multi": int(re.search(r"; ([\d,]+) images have two or more valid classes", md).group(1).replace(",", "")),
             "corrected": re.search(r"crowd-corrected: `cifar10-corrected`, (.*)", md).group(1)}
    return md, table, sweep, facts


def test_the_committed_page_is_the_rendering_of_the_committed_numbers():
    md, table, sweep, facts = committed()
    assert len(sweep) == 5 and facts["real_multi"] == 382 and len(table) == 36
    assert render_markdown(table, statistics(table), sweep, facts).decode() == md


def test_movers_rank_changes_and_residuals_by_hand():
    table = pd.DataFrame({"model": ["a", "b", "c", "labels"], "source": ["published"] * 3 + ["labels"],
                          "original": [90.0, 80.0, 70.0, 100.0], "v6": [70.0, 75.0, 55.0, 90.0]})
    moved = movers(table, "v6", Line(slope=1.0, slope_se=0.0, intercept=-10.0, intercept_se=0.0, r2=1.0, n=3))
    # residuals from v6 = original - 10: a -10, b +5, c -5; the labels row is not a model
    assert moved["model"].tolist() == ["b", "c", "a"] and moved["residual"].tolist() == [5.0, -5.0, -10.0]
    # b overtakes a: ranks 2 -> 1 and 1 -> 2
    assert moved.set_index("model")["rank_change"].to_dict() == {"a": -1, "b": 1, "c": 0}
