"""Leaderboard specs: ``leaderboards/<name>.toml``, validated at the door.

A spec names two axes, each a label set scored under a suite: the *reference*
(x, usually the original labels) and the *relabelled* one (y, the ranking), which
rows to show (per-sample runs by name pattern, external tables by name), how the
rows' samples are aligned, the statistics' settings and the columns. Example::

    title = "ReaL leaderboard"
    dataset = "imagenet-val"  # the samples both axes label
    metrics = ["top1"]        # or ["top1", "top5"]: top-1 ranks the rows and drives the statistics;
                              # top-5 adds the columns relabelled_top5 and reference_top5 (after relabelled
                              # and reference unless [table] columns places them), "–" where a row has no
                              # top-5 (e.g. an imported file of top-1 classes). A single metric = "top1" also works.
    [reference]
    suite = "imagenet"
    label_set = "imagenet-original"
    [relabelled]
    suite = "real"
    label_set = "real"
    # dataset = "..."         # an axis on other samples (e.g. CIFAR-10 vs CIFAR-10.1): its own dataset;
                              # rows then pair each model's run on one with its run of the same name on the other
    [rows]
    runs = ["*"]          # fnmatch patterns over run names; per name the complete run covering the most
                          # labelled samples (the latest of equals)
    external = []         # external tables (one per axis), e.g. ["timm-imagenet", "timm-imagenet-real"]
    samples = "full"      # "full": runs must predict every labelled sample; "common": shared samples only
    [statistics]
    confidence = 0.95
    bootstrap_resamples = 10000
    seed = 0
    alpha = 0.05          # for significance ranks (McNemar, Holm-adjusted)
    breakpoints = []      # regime splits of the reference accuracy: "fit" and/or numbers in percent
    min_side = 20         # models per side for a fitted breakpoint
    effective_robustness = false  # relabelled (a shifted test set) vs reference fitted in logit space over
                          # the rows (Taori et al. 2020): each row's distance above/below the line, with
                          # bootstrap_resamples resamples of models and of each model's samples
    [table]
    columns = ["rank", "model", "source", "relabelled", "relabelled_wilson", ...]
    markdown_rows = 0     # 0 = all rows in the markdown (the HTML always has all)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.metrics import leaderboard_metrics

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

LEADERBOARD_DIR = Path(__file__).resolve().parent.parent / "leaderboards"

# The metrics a leaderboard row can show come from harness.metrics: the first (top-1) ranks the rows; each
# further one adds a column per axis, "<axis>_<metric>".
METRICS = tuple(m.name for m in leaderboard_metrics())
COLUMNS = (
    "rank", "model", "source", "relabelled", "relabelled_wilson", "relabelled_bootstrap", "reference",
    "reference_wilson", "reference_bootstrap", "gap", "gap_bootstrap", "rank_change", "n_relabelled", "n_reference", "img_size", "params_m",
    "provenance", *(f"{axis}_{metric}" for metric in METRICS[1:] for axis in ("relabelled", "reference")),
    "effective_robustness", "effective_robustness_bootstrap",
)
SAMPLE_POLICIES = ("full", "common")


@dataclass(frozen=True)
class Axis:
    suite: str
    label_set: str
    dataset: str


@dataclass(frozen=True)
class Spec:
    name: str
    path: Path
    title: str
    description: str
    metrics: tuple[str, ...]  # the first (top1) ranks the rows and drives the statistics
    reference: Axis
    relabelled: Axis
    runs: tuple[str, ...]
    external: tuple[str, ...]
    samples: str
    confidence: float
    bootstrap_resamples: int
    seed: int
    alpha: float
    breakpoints: tuple  # of "fit" or float (percent)
    min_side: int
    columns: tuple[str, ...]
    markdown_rows: int
    effective_robustness: bool = False  # fit relabelled vs reference in logit space (Taori et al. 2020)

    @property
    def metric(self) -> str:
        return self.metrics[0]


class _Section:
    """A TOML table whose keys are read one by one; left-over keys are typos and refused."""

    def __init__(self, data, where: str):
        if not isinstance(data, dict):
            raise HarnessError(f"{where} must be a table")
        self.data, self.where, self.seen = data, where, set()

    def get(self, key: str, kind, default=..., check=None, expected: str = ""):
        self.seen.add(key)
        if key not in self.data:
            if default is ...:
                raise HarnessError(f"{self.where} lacks {key!r}; expected {expected or kind.__name__}")
            return default
        value = self.data[key]
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if not ok or (check is not None and not check(value)):
            raise HarnessError(f"{self.where}.{key} is {value!r}; expected {expected or kind.__name__}")
        return value

    def section(self, key: str, required: bool = True) -> "_Section":
        self.seen.add(key)
        if key not in self.data and not required:
            return _Section({}, f"{self.where} [{key}]")
        if key not in self.data:
            raise HarnessError(f"{self.where} lacks the table [{key}]")
        return _Section(self.data[key], f"{self.where} [{key}]")

    def done(self) -> None:
        extra = sorted(set(self.data) - self.seen)
        if extra:
            raise HarnessError(f"{self.where} has unknown key(s) {', '.join(extra)}")


def _string_list(section: _Section, key: str, default=()) -> tuple[str, ...]:
    value = section.get(key, list, list(default), lambda v: all(isinstance(s, str) and s for s in v),
                        "a list of non-empty strings")
    return tuple(value)


def _axis(root: _Section, key: str, dataset: str | None) -> Axis:
    sec = root.section(key)
    axis = Axis(sec.get("suite", str), sec.get("label_set", str),
                sec.get("dataset", str, dataset, expected="a dataset name (or a top-level dataset)"))
    if axis.dataset is None:
        raise HarnessError(f"{sec.where} lacks 'dataset' and the spec has no top-level dataset")
    sec.done()
    return axis


def _breakpoints(section: _Section) -> tuple:
    raw = section.get("breakpoints", list, [], expected='a list of "fit" and/or numbers (percent)')
    out = []
    for value in raw:
        if value == "fit":
            out.append("fit")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                and 0 < value < 100:
            out.append(float(value))
        else:
            raise HarnessError(f"{section.where}.breakpoints holds {value!r}; expected \"fit\" or a percentage "
                               "between 0 and 100")
    return tuple(out)


def _metrics(root: _Section) -> tuple[str, ...]:
    expected = f'a list of distinct metrics from {", ".join(METRICS)}, starting with "top1" (it ranks the rows)'
    if "metric" in root.data and "metrics" in root.data:
        raise HarnessError(f"{root.where} gives both 'metric' and 'metrics'; keep one (metrics = [\"top1\", ...])")
    if "metrics" in root.data:
        return tuple(root.get("metrics", list, check=lambda v: bool(v) and v[0] == "top1" and len(set(v)) == len(v)
                              and all(m in METRICS for m in v), expected=expected))
    return (root.get("metric", str, "top1", lambda m: m == "top1", '"top1" (metrics = [...] adds top5)'),)


def _metric_columns(columns: tuple[str, ...], metrics: tuple[str, ...], where: str) -> tuple[str, ...]:
    """Each metric beyond top-1 gets its column after each axis's top-1 column, unless placed explicitly."""
    out = list(columns)
    for axis in ("relabelled", "reference"):
        for metric in METRICS[1:]:
            column = f"{axis}_{metric}"
            if column in out and metric not in metrics:
                raise HarnessError(f"{where}: column {column} needs {metric!r} in metrics "
                                   f"(metrics = [\"top1\", \"{metric}\"])")
            if metric in metrics and column not in out and axis in out:
                out.insert(out.index(axis) + 1, column)
    return tuple(out)


def parse_spec(text: str, name: str, path: Path) -> Spec:
    where = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"{where} is not valid TOML: {exc}") from None
    root = _Section(data, where)
    title = root.get("title", str)
    description = root.get("description", str, "")
    dataset = root.get("dataset", str, None)
    metrics = _metrics(root)
    reference, relabelled = _axis(root, "reference", dataset), _axis(root, "relabelled", dataset)
    rows = root.section("rows")
    runs = _string_list(rows, "runs")
    external = _string_list(rows, "external")
    samples = rows.get("samples", str, "full", lambda s: s in SAMPLE_POLICIES, f"one of {', '.join(SAMPLE_POLICIES)}")
    rows.done()
    if not runs and not external:
        raise HarnessError(f"{where} selects no rows: give [rows] runs patterns and/or external tables")
    if external and len(external) != 2:
        raise HarnessError(f"{where}: [rows] external names {len(external)} tables; expected two, "
                           "one measured on each axis's label set")
    st = root.section("statistics", required=False)
    confidence = st.get("confidence", float, 0.95, lambda c: 0 < c < 1, "a number between 0 and 1")
    resamples = st.get("bootstrap_resamples", int, 10_000, lambda n: n >= 100, "an integer of at least 100")
    seed = st.get("seed", int, 0, lambda s: s >= 0, "a non-negative integer")
    alpha = st.get("alpha", float, 0.05, lambda a: 0 < a < 1, "a number between 0 and 1")
    breakpoints = _breakpoints(st)
    min_side = st.get("min_side", int, 20, lambda n: n >= 4, "an integer of at least 4")
    robustness = st.get("effective_robustness", bool, False, expected="true or false")
    st.done()
    tb = root.section("table", required=False)
    columns = _string_list(tb, "columns", ("rank", "model", "source", "relabelled", "relabelled_wilson",
                                           "reference", "gap", "n_relabelled", "n_reference"))
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise HarnessError(f"{where}: unknown column(s) {', '.join(unknown)}; known: {', '.join(COLUMNS)}")
    columns = _metric_columns(columns, metrics, where)
    markdown_rows = tb.get("markdown_rows", int, 0, lambda n: n >= 0, "a non-negative integer")
    tb.done()
    root.done()
    return Spec(name, path, title, description, metrics, reference, relabelled, runs, external, samples,
                confidence, resamples, seed, alpha, breakpoints, min_side, columns, markdown_rows, robustness)


def spec_names(directory: Path = LEADERBOARD_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.toml"))


def load_spec(name: str, directory: Path = LEADERBOARD_DIR) -> Spec:
    path = directory / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(spec_names(directory)) or "none"
        raise HarnessError(f"no leaderboard spec {path}; known leaderboards: {known}")
    return parse_spec(path.read_text(), name, path)
