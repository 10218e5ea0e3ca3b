"""Build a leaderboard from the store alone: rows, intervals, significance ranks, correlations, regimes.

Per-sample rows (own runs, imported predictions) are scored with ``harness.score.per_sample``'s
query (version ``harness.score.METRIC_VERSION``) on both axes' label sets and aligned by sample key; external tables contribute
aggregate-only rows (no bootstrap, no paired tests: their samples are not stored).
Everything here is deterministic given the store and the spec: bootstraps are seeded
per row and rows are ordered by (relabelled accuracy, reference accuracy, name).
"""
from __future__ import annotations

import fnmatch
import re
import zlib
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.metrics import classes_kept, get_metric
from harness.score import PER_SAMPLE_SQL
from harness.store import Store

from . import stats
from .external import EXTERNAL_KIND, load_aggregates
from .spec import Axis, Spec

DASH = "–"
SOURCE_OWN = "own run"
SOURCE_IMPORT = "imported predictions"
SOURCE_EXTERNAL = "external table"
_IMPORT_KINDS = ("import",)
# Run metadata a reader needs to reproduce a row, as (label, path into run.json). Timings, run ids,
# absolute paths and the code's commit are left out on purpose: they differ between machines, rebuilds and
# commits, and would make regenerated leaderboards differ without any change in what was measured (the
# store keeps them all in run.json).
_PROVENANCE_FIELDS = (
    ("model", ("model",)), ("timm", ("timm_name",)), ("weights", ("weights_source",)),
    ("weights sha256", ("weights_sha256",)), ("input", ("preprocessing", "input_size")),
    ("crop", ("preprocessing", "crop_pct")), ("interpolation", ("preprocessing", "interpolation")),
    ("precision", ("precision",)), ("batch", ("batch_size",)), ("images", ("n_images",)),
    ("image set", ("data_manifest", "dataset")), ("device", ("environment", "device_name")),
    ("torch", ("environment", "libraries", "torch")), ("timm version", ("environment", "libraries", "timm")),
    ("file", ("source_file",)), ("file sha256", ("source_sha256",)),
)


@dataclass
class AxisScore:
    accuracy: float
    n: int
    wilson: stats.Interval
    bootstrap: stats.Interval | None
    # The spec's further metrics (top-5): None where the row cannot give one (harness.metrics' rule)
    metrics: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Row:
    name: str
    source: str
    provenance: str
    relabelled: AxisScore
    reference: AxisScore
    img_size: int | None = None
    params_m: float | None = None
    rank: int | None = None
    gap_interval: stats.Difference | None = None  # bootstrap of relabelled - reference accuracy
    effective: stats.Interval | None = None  # effective robustness (spec.effective_robustness)
    rank_change: int | None = None  # places gained from the reference to the relabelled label set
    correct: np.ndarray | None = field(default=None, repr=False)  # relabelled correctness, aligned by key

    @property
    def gap(self) -> float:
        return self.relabelled.accuracy - self.reference.accuracy


@dataclass
class Pair:
    a: str
    b: str
    difference: stats.Difference
    mcnemar: stats.McNemar
    holm_pvalue: float


@dataclass
class AxisInfo:
    axis: Axis
    description: str
    n_labelled: int  # samples the label set keeps (non-empty label lists)
    n_samples: int  # samples the per-sample rows are scored on
    source: str


@dataclass
class Board:
    spec: Spec
    rows: list[Row]
    reference: AxisInfo
    relabelled: AxisInfo
    pairs: list[Pair]
    correlation: tuple[stats.Correlation, stats.Correlation, stats.Line] | None
    regimes: list[stats.TwoRegimes]
    notes: list[str]
    sources: list[tuple[str, str]]  # (run name, description) of every input
    # Runs the spec's patterns select but the board cannot show (a subset of the samples, no run of the
    # same name on the other axis's dataset). Reported by the CLI, not written into the files: the files
    # state the rule instead, so a store with extra runs (an own run on the 1,300-image subset) gives
    # the same files as one rebuilt by `python -m reports build-store`.
    left_out: list[str] = field(default_factory=list)
    robustness: stats.EffectiveRobustness | None = None


def _row_seed(spec: Spec, name: str, axis: str) -> int:
    return spec.seed + zlib.crc32(f"{name}\0{axis}".encode())


def _latest_by_name(runs: list[dict]) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for meta in runs:  # list_runs is ordered by creation time
        latest[meta["name"]] = meta
    return latest


def _widest_by_name(con, runs: list[dict], label_set: str) -> dict[str, dict]:
    """Of each name's runs, the one that predicts the most samples ``label_set`` labels; the latest of
    those that predict as many. A run on part of the images (a check run on 24 images, say) never
    replaces a run on all of them, whichever is newer. ``runs`` are complete runs in creation order."""
    if not runs:
        return {}
    counts = dict(con.execute(
        "SELECT p.run_id, count(*) FROM predictions p JOIN labels l USING (key) "
        "WHERE l.label_set = $labels AND len(l.labels) > 0 AND p.run_id IN (SELECT unnest($runs)) "
        "GROUP BY p.run_id", {"labels": label_set, "runs": [m["run_id"] for m in runs]}).fetchall())
    chosen: dict[str, dict] = {}
    for meta in runs:
        best = chosen.get(meta["name"])
        if best is None or counts.get(meta["run_id"], 0) >= counts.get(best["run_id"], 0):
            chosen[meta["name"]] = meta
    return chosen


def _axis_info(store: Store, axis: Axis) -> AxisInfo:
    # A test set realbench does not ship (ImageNetV2, -Sketch): its published size, which its label set (made
    # from the manifest, harness.shift) declares; own runs on part of it change nothing here.
    if not store.has_label_set(axis.label_set) or store.label_set_meta(axis.label_set).get("n_samples"):
        suite = _published_suite(axis)
        if suite is not None:
            return AxisInfo(axis, suite.description, suite.size, suite.size, f"data manifest {suite.manifest}")
    meta = store.label_set_meta(axis.label_set)
    if meta.get("dataset") != axis.dataset:
        raise HarnessError(f"label set {axis.label_set!r} labels dataset {meta.get('dataset')!r}, but the "
                           f"leaderboard's axis is on {axis.dataset!r}")
    n = int(store.sql("SELECT count(*) AS n FROM labels WHERE label_set = ? AND len(labels) > 0",
                      [axis.label_set])["n"][0])
    if n == 0:
        raise HarnessError(f"label set {axis.label_set!r} in store {store.root} labels no sample (every list "
                           "is empty); a leaderboard needs labelled samples")
    return AxisInfo(axis, meta.get("description", ""), n, n, meta.get("source", ""))


def _published_suite(axis: Axis):
    """The axis's suite when its label set is the folders of a published test set not in the store."""
    from harness.suites import get_suite

    suite = get_suite(axis.suite)
    if suite.size and suite.dataset == axis.dataset and suite.default_label_set == axis.label_set:
        return suite
    return None


def _provenance(meta: dict) -> str:
    parts = []
    for label, path in _PROVENANCE_FIELDS:
        value = meta
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value in (None, "", [], {}, False):
            continue
        if label.endswith("sha256"):
            value = str(value)[:12]
        elif label == "file":
            value = str(value).replace("\\", "/").rsplit("/", 1)[-1]
        elif isinstance(value, list):
            value = "x".join(map(str, value))
        parts.append(f"{label}: {value}")
    return "; ".join(parts)


def _source_of(meta: dict) -> str:
    if meta.get("kind") == EXTERNAL_KIND:
        return SOURCE_EXTERNAL
    return SOURCE_IMPORT if meta.get("kind") in _IMPORT_KINDS else SOURCE_OWN


def _score_axis(spec: Spec, name: str, axis_name: str, scored: pd.DataFrame) -> AxisScore:
    correct = scored["correct_top1"].to_numpy()
    classes = classes_kept(scored["k"])
    further = {}
    for metric in map(get_metric, spec.metrics[1:]):
        further[metric.name] = float(scored[metric.column].mean()) if metric.available(classes) else None
    return AxisScore(float(correct.mean()), int(correct.size), stats.accuracy_wilson(correct, spec.confidence),
                     stats.bootstrap_accuracy(correct, spec.confidence, spec.bootstrap_resamples,
                                              _row_seed(spec, name, axis_name)), further)


def _per_sample_rows(store: Store, spec: Spec, ref: AxisInfo, rel: AxisInfo, left_out: list[str],
                     sources: list[tuple[str, str]]) -> list[Row]:
    infos = {"reference": ref, "relabelled": rel}
    # harness.score.per_sample's own query (one definition of correctness), on one connection: opening
    # the catalog once per run dominated the build time of leaderboards with many runs.
    con = store.connect()
    try:
        runs_by_axis = {
            axis_name: _widest_by_name(con, [
                m for m in store.list_runs("complete")
                if m.get("dataset") == info.axis.dataset and m.get("kind") != EXTERNAL_KIND
                and any(fnmatch.fnmatchcase(m.get("name", ""), p) for p in spec.runs)], info.axis.label_set)
            for axis_name, info in infos.items()}
        return _score_rows(con, spec, ref, rel, runs_by_axis, left_out, sources)
    finally:
        con.close()


def _score_rows(con, spec: Spec, ref: AxisInfo, rel: AxisInfo, runs_by_axis: dict[str, dict[str, dict]],
                left_out: list[str], sources: list[tuple[str, str]]) -> list[Row]:
    infos = {"reference": ref, "relabelled": rel}
    # Axes on different datasets pair a model's runs by run name (one run per dataset).
    names = sorted(set(runs_by_axis["reference"]) & set(runs_by_axis["relabelled"]))
    for axis_name, other in (("reference", "relabelled"), ("relabelled", "reference")):
        for name in sorted(set(runs_by_axis[axis_name]) - set(names)):
            left_out.append(f"{name} is left out: it has a run on {infos[axis_name].axis.dataset} but none of "
                         f"that name on {infos[other].axis.dataset}")
    scored: dict[str, dict[str, pd.DataFrame]] = {}
    for name in names:
        scored[name] = {}
        for axis_name, info in infos.items():
            table = con.execute(PER_SAMPLE_SQL, {"run": runs_by_axis[axis_name][name]["run_id"],
                                                 "labels": info.axis.label_set}).df()
            columns = [get_metric(m).column for m in spec.metrics]
            table = table.set_index("key")[[*columns, "k"]]
            scored[name][axis_name] = table.astype(dict.fromkeys(columns, bool))
    for axis_name, info in infos.items():
        if spec.samples == "full":
            partial = sorted(n for n in scored if len(scored[n][axis_name]) < info.n_labelled)
            for n in partial:
                left_out.append(f"{n} is left out: it predicts {len(scored[n][axis_name]):,} of the "
                             f"{info.n_labelled:,} samples labelled by {info.axis.label_set} "
                             "(a leaderboard with samples = \"common\" compares it on shared samples)")
                del scored[n]
        elif scored:
            common = set.intersection(*(set(s[axis_name].index) for s in scored.values()))
            if not common:
                raise HarnessError(f"the runs selected by {spec.path} share no sample labelled by "
                                   f"{info.axis.label_set}")
            keys = sorted(common)
            for s in scored.values():
                s[axis_name] = s[axis_name].loc[keys]
            info.n_samples = len(keys)
    rows = []
    same_samples = ref.axis.dataset == rel.axis.dataset
    for name, by_axis in scored.items():
        meta = runs_by_axis["relabelled"][name]
        by_axis = {a: s.sort_index() for a, s in by_axis.items()}
        row = Row(name, _source_of(meta), _provenance(meta),
                  _score_axis(spec, name, "relabelled", by_axis["relabelled"]),
                  _score_axis(spec, name, "reference", by_axis["reference"]),
                  gap_interval=_gap(spec, name, by_axis["reference"]["correct_top1"],
                                    by_axis["relabelled"]["correct_top1"], same_samples),
                  correct=by_axis["relabelled"]["correct_top1"].to_numpy())
        rows.append(row)
        sources.append((name, f"{row.source}; {row.provenance}"))
    if spec.samples == "full" and rows:
        ref.n_samples, rel.n_samples = ref.n_labelled, rel.n_labelled
    return rows


def _gap(spec: Spec, name: str, reference: pd.Series, relabelled: pd.Series, same_samples: bool):
    if same_samples:  # one image is resampled for both label sets; NaN where a label set drops it
        keys = reference.index.union(relabelled.index)
        reference, relabelled = reference.reindex(keys), relabelled.reindex(keys)
    return stats.bootstrap_gap(reference.to_numpy(dtype=float), relabelled.to_numpy(dtype=float), same_samples,
                               spec.confidence, spec.bootstrap_resamples, _row_seed(spec, name, "gap"))


def _external_rows(store: Store, spec: Spec, ref: AxisInfo, rel: AxisInfo, notes: list[str],
                   sources: list[tuple[str, str]]) -> list[Row]:
    if not spec.external:
        return []
    runs = _latest_by_name([m for m in store.list_runs("complete") if m.get("kind") == EXTERNAL_KIND])
    missing = [n for n in spec.external if n not in runs]
    if missing:
        raise HarnessError(f"{spec.path} names external table(s) {', '.join(missing)} that the store "
                           f"{store.root} lacks; import them first (python -m reports import-timm)")
    tables = {}
    for axis_name, info in (("reference", ref), ("relabelled", rel)):
        match = [n for n in spec.external if runs[n].get("label_set") == info.axis.label_set]
        if len(match) != 1:
            raise HarnessError(f"{spec.path}: expected one external table measured on label set "
                               f"{info.axis.label_set!r}, found {len(match)} among {', '.join(spec.external)}")
        meta = runs[match[0]]
        tables[axis_name] = (meta, load_aggregates(store, meta["run_id"]))
        sources.append((meta["name"], f"{SOURCE_EXTERNAL}: {int(meta['n_samples_per_model']):,} samples per "
                                      f"model on {info.axis.label_set}; {_provenance(meta)}"
                                      + (f"; {meta['source_url']}" if meta.get("source_url") else "")))
    ref_meta, ref_table = tables["reference"]
    rel_meta, rel_table = tables["relabelled"]
    merged = ref_table.merge(rel_table, on=["model", "img_size"], suffixes=("_ref", "_rel"), validate="1:1")
    unmatched = len(ref_table) + len(rel_table) - 2 * len(merged)
    if unmatched:
        notes.append(f"{unmatched} external rows appear in only one of {ref_meta['name']} and "
                     f"{rel_meta['name']} and are left out")
    rows = []
    multi_size = set(merged.model[merged.model.duplicated()])
    n_ref, n_rel = int(ref_meta["n_samples_per_model"]), int(rel_meta["n_samples_per_model"])
    for rec in merged.itertuples(index=False):
        name = f"{rec.model} @{rec.img_size}" if rec.model in multi_size else rec.model
        rows.append(Row(
            name, SOURCE_EXTERNAL, f"{ref_meta['name']} + {rel_meta['name']}",
            _aggregate_axis(spec, rec, "rel", n_rel), _aggregate_axis(spec, rec, "ref", n_ref),
            img_size=int(rec.img_size), params_m=float(rec.param_count_m_ref)))
    return rows


def _aggregate_axis(spec: Spec, rec, axis: str, n: int) -> AxisScore:
    """An external row's axis: its published metrics (columns ``<metric>_<axis>``, e.g. ``top5_rel``)."""
    accuracy = getattr(rec, f"top1_{axis}")
    # A published percentage with three decimals and its n give back the count of correct samples.
    k = int(round(accuracy * n))
    further = {}
    for metric in spec.metrics[1:]:
        value = getattr(rec, f"{metric}_{axis}", float("nan"))
        further[metric] = float(value) if np.isfinite(value) else None
    return AxisScore(float(accuracy), n, stats.wilson_interval(k, n, spec.confidence), None, further)


def _pairs_and_ranks(spec: Spec, rows: list[Row]) -> list[Pair]:
    sampled = [r for r in rows if r.correct is not None]
    if len(sampled) < 2:
        for r in sampled:
            r.rank = 1
        return []
    m = len(sampled)
    pvalues = np.ones((m, m))
    tests = {}
    for i, j in combinations(range(m), 2):
        a, b = sampled[i], sampled[j]
        test = stats.mcnemar_test(a.correct, b.correct)
        pvalues[i, j] = pvalues[j, i] = test.pvalue
        tests[i, j] = test
    ranks = stats.significance_ranks([r.relabelled.accuracy for r in sampled], pvalues, spec.alpha)
    for r, rank in zip(sampled, ranks.ranks):
        r.rank = rank
    pairs = []
    for (i, j), test in tests.items():
        a, b = sampled[i], sampled[j]
        diff = stats.paired_bootstrap_difference(a.correct, b.correct, spec.confidence, spec.bootstrap_resamples,
                                                 _row_seed(spec, f"{a.name}\0{b.name}", "pair"))
        pairs.append(Pair(a.name, b.name, diff, test, ranks.adjusted_pvalues[i][j]))
    return pairs


def _check_label_sets(store: Store, spec: Spec) -> None:
    """A label set the spec needs and the store lacks: made here when a suite ships it; otherwise one sentence
    saying what makes it (the relabel command the spec's description names)."""
    from harness.suites import get_suite

    for axis in (spec.reference, spec.relabelled):
        if store.has_label_set(axis.label_set) or _published_suite(axis) is not None:
            continue
        suite = get_suite(axis.suite)
        if axis.label_set in suite.label_sets:
            suite.ensure_label_sets(store, [axis.label_set])
            continue
        made = re.search(r"`(python -m relabel [^`]*--register " + re.escape(axis.label_set) + r"\b[^`]*)`",
                         spec.description)
        how = f"run `{made.group(1)}` first" if made else "make it first (python -m relabel ... --register NAME)"
        raise HarnessError(f"{spec.path} needs label set {axis.label_set!r}, which store {store.root} does not hold; "
                           f"{how}")


def position_changes(before, after) -> list[int]:
    """Places each row gains from ``before`` to ``after`` (accuracies; position 1 = the highest,
    equal accuracies share the best position), e.g. +2 when 5th becomes 3rd."""
    def positions(values):
        values = np.asarray(values, float)
        return [1 + int((values > v).sum()) for v in values]

    return [b - a for b, a in zip(positions(before), positions(after))]


def build(store: Store, spec: Spec) -> Board:
    _check_label_sets(store, spec)
    ref = _axis_info(store, spec.reference)
    rel = _axis_info(store, spec.relabelled)
    notes: list[str] = []
    left_out: list[str] = []
    sources: list[tuple[str, str]] = []
    rows = _per_sample_rows(store, spec, ref, rel, left_out, sources) if spec.runs else []
    rows += _external_rows(store, spec, ref, rel, notes, sources)
    if not rows:
        raise HarnessError(f"{spec.path} selects no complete run in store {store.root}; import or run models "
                           "first (python -m reports build-store rebuilds it from the shipped data)")
    rows.sort(key=lambda r: (-r.relabelled.accuracy, -r.reference.accuracy, r.name))
    for metric in map(get_metric, spec.metrics[1:]):
        lacking = [r.name for r in rows if r.relabelled.metrics[metric.name] is None
                   or r.reference.metrics[metric.name] is None]
        if lacking:
            notes.append(f"{metric.label} shows {DASH} for {', '.join(lacking)}: {metric.unavailable}")
    pairs = _pairs_and_ranks(spec, rows)
    for row, change in zip(rows, position_changes([r.reference.accuracy for r in rows],
                                                  [r.relabelled.accuracy for r in rows])):
        row.rank_change = change
    x = np.array([r.reference.accuracy for r in rows]) * 100
    y = np.array([r.relabelled.accuracy for r in rows]) * 100
    correlation = None
    if len(rows) >= 4 and np.ptp(x) > 0 and np.ptp(y) > 0:
        correlation = (stats.pearson(x, y, spec.confidence), stats.spearman(x, y, spec.confidence),
                       stats.fit_line(x, y))
    elif len(rows) > 1:
        notes.append(f"no correlation across models: {len(rows)} rows (at least 4 are needed)")
    regimes = []
    for bp in spec.breakpoints:
        regimes.append(stats.two_regimes(x, y, None if bp == "fit" else bp, spec.confidence, spec.min_side))
    robustness = None
    if spec.effective_robustness:
        robustness = stats.effective_robustness(
            [r.reference.accuracy for r in rows], [r.relabelled.accuracy for r in rows],
            [r.reference.n for r in rows], [r.relabelled.n for r in rows], spec.confidence,
            spec.bootstrap_resamples, spec.seed)
        for row, effective in zip(rows, robustness.effective):
            row.effective = effective
    return Board(spec, rows, ref, rel, pairs, correlation, regimes, notes, sources, left_out, robustness)
