"""reports.spec: the defaults of a minimal leaderboard spec, each setting read, and each bad value refused
naming where and what was expected (a table of cases)."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from reports.spec import parse_spec

MINIMAL = '''title = "t"
dataset = "imagenet-val"

[reference]
suite = "imagenet"
label_set = "imagenet-original"

[relabelled]
suite = "real"
label_set = "real"

[rows]
runs = ["*"]
'''


def parse(text: str):
    return parse_spec(text, "t", Path("t.toml"))


def test_a_minimal_spec_takes_the_documented_defaults():
    s = parse(MINIMAL)
    assert (s.metric, s.metrics, s.samples, s.runs, s.external) == ("top1", ("top1",), "full", ("*",), ())
    assert (s.confidence, s.bootstrap_resamples, s.seed, s.alpha, s.min_side) == (0.95, 10_000, 0, 0.05, 20)
    assert (s.breakpoints, s.markdown_rows, s.effective_robustness) == ((), 0, False)
    assert s.columns == ("rank", "model", "source", "relabelled", "relabelled_wilson", "reference", "gap",
                         "n_relabelled", "n_reference")
    assert (s.reference.suite, s.reference.label_set, s.relabelled.label_set) == ("imagenet", "imagenet-original",
                                                                                    "real")
    assert s.reference.dataset == s.relabelled.dataset == "imagenet-val"


@pytest.mark.parametrize("section,setting,field,value", [
    ("statistics", "confidence = 0.9", "confidence", 0.9),
    ("statistics", "bootstrap_resamples = 100", "bootstrap_resamples", 100),
    ("statistics", "seed = 7", "seed", 7),
    ("statistics", "alpha = 0.01", "alpha", 0.01),
    ("statistics", "min_side = 4", "min_side", 4),
    ("statistics", "breakpoints = [\"fit\", 81.0]", "breakpoints", ("fit", 81.0)),
    ("statistics", "effective_robustness = true", "effective_robustness", True),
    ("table", "markdown_rows = 5", "markdown_rows", 5),
    ("table", "columns = [\"model\", \"gap\"]", "columns", ("model", "gap")),
])
def test_each_setting_is_read(section, setting, field, value):
    assert getattr(parse(MINIMAL + f"\n[{section}]\n{setting}\n"), field) == value


@pytest.mark.parametrize("extra,message", [
    ("[statistics]\nconfidence = 1.0\n", "confidence.*a number between 0 and 1"),
    ("[statistics]\nbootstrap_resamples = 99\n", "bootstrap_resamples.*an integer of at least 100"),
    ("[statistics]\nseed = -1\n", "seed.*a non-negative integer"),
    ("[statistics]\nmin_side = 3\n", "min_side.*an integer of at least 4"),
    ("[statistics]\nthreads = 2\n", "threads"),
    ("[table]\ncolumns = [\"model\", \"speed\"]\n", "unknown column\\(s\\) speed"),
    ("[table]\nmarkdown_rows = -1\n", "markdown_rows.*a non-negative integer"),
])
def test_bad_settings_are_refused(extra, message):
    with pytest.raises(HarnessError, match=message):
        parse(MINIMAL + "\n" + extra)


def test_rows_must_select_something():
    with pytest.raises(HarnessError, match="selects no rows"):
        parse(MINIMAL.replace('runs = ["*"]', "runs = []"))
    with pytest.raises(HarnessError, match="external names 1 tables; expected two"):
        parse(MINIMAL.replace('runs = ["*"]', 'external = ["timm-imagenet"]'))
