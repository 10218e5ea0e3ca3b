"""An own model's effective robustness on a shifted test set, against the published population's line.

``python -m reports robustness --run R --shift imagenetv2-matched-frequency`` fits the line
logit(shifted) = intercept + slope * logit(original) over timm's published rows (the external tables
``python -m reports import-timm`` stores, on the full test sets) and places one model on it: its run on
the shifted dataset and its run on the ImageNet validation set (``--reference-run``, default the same
name), each named by run id. A point on that line is only comparable when both runs cover their whole
test set (the population's numbers do): a run on part of a test set is refused, or with
``--allow-subset`` shown and marked SUBSET on every line.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.errors import HarnessError
from harness.store import Store

from . import stats
from .external import EXTERNAL_KIND, load_aggregates

REFERENCE_SUITE = "imagenet"


@dataclass(frozen=True)
class Placement:
    model: str
    shift_suite: str
    reference: dict  # score results of the two runs
    shifted: dict
    population: tuple[str, str]  # the external runs (names) the line is fitted on
    n_models: int
    slope: float
    intercept: float
    predicted: float  # the line's shifted accuracy at the model's reference accuracy
    effective: float  # shifted - predicted (fraction)
    subset: bool


def _population(store: Store, label_set: str) -> dict:
    """The one external table measured on ``label_set`` (newest if re-imported under one name)."""
    tables = {m["name"]: m for m in store.list_runs("complete")
              if m.get("kind") == EXTERNAL_KIND and m.get("label_set") == label_set}
    if len(tables) != 1:
        found = f"found {', '.join(sorted(tables))}" if tables else "found none"
        raise HarnessError(f"expected one published table measured on label set {label_set!r} in store {store.root}, "
                           f"{found}; import timm's tables first (python -m reports import-timm)")
    return next(iter(tables.values()))


def place(store: Store, run: str, shift: str, reference_run: str | None = None, allow_subset: bool = False,
          confidence: float = 0.95, resamples: int = 1000, seed: int = 0) -> Placement:
    from harness.suites import get_suite

    shift_suite, reference_suite = get_suite(shift), get_suite(REFERENCE_SUITE)
    if shift_suite.dataset == reference_suite.dataset:
        raise HarnessError(f"--shift {shift} is the ImageNet validation set itself; expected a shifted test set "
                           "(imagenetv2-matched-frequency, imagenet-sketch, imagenet-a, imagenet-r)")
    shifted_meta = store.resolve_run(run, shift_suite.dataset)
    reference_meta = store.resolve_run(reference_run or shifted_meta["name"], reference_suite.dataset)
    shifted = shift_suite.score(store, shifted_meta["run_id"])
    reference = reference_suite.score(store, reference_meta["run_id"])
    partial = [r for r in (reference, shifted) if r["partial"]]
    if partial and not allow_subset:
        raise HarnessError("; ".join(f"run {r['run_id']} predicts {r['n']:,} of the {r['n_labelled_in_label_set']:,} "
                                     f"images of {r['label_set']}" for r in partial)
                           + ": the published line is fitted on whole test sets, so a subset's point is not "
                             "comparable (--allow-subset shows it, marked SUBSET)")
    ref_table, shift_table = (_population(store, ls) for ls in (reference_suite.default_label_set,
                                                                 shift_suite.default_label_set))
    merged = load_aggregates(store, ref_table["run_id"]).merge(
        load_aggregates(store, shift_table["run_id"]), on=["model", "img_size"], suffixes=("_ref", "_shift"))
    fit = stats.effective_robustness(merged["top1_ref"], merged["top1_shift"], int(ref_table["n_samples_per_model"]),
                                     int(shift_table["n_samples_per_model"]), confidence, resamples, seed)
    slope, intercept = fit.slope.estimate, fit.intercept.estimate
    x = np.clip(reference["top1"], 0.5 / reference["n"], 1 - 0.5 / reference["n"])
    predicted = float(stats.expit(intercept + slope * stats.logit(x)))
    return Placement(shifted_meta["name"], shift, reference, shifted, (ref_table["name"], shift_table["name"]),
                     fit.n, float(slope), float(intercept), predicted, float(shifted["top1"] - predicted),
                     bool(partial))


def describe(p: Placement) -> list[str]:
    mark = "SUBSET " if p.subset else ""

    def run_line(what: str, r: dict) -> str:
        part = (f", SUBSET: {r['n']:,} of {r['n_labelled_in_label_set']:,} images, not the published test set"
                if r["partial"] else f", all {r['n']:,} images")
        return f"  {what}: run {r['run_id']} on {r['label_set']}: top-1 {100 * r['top1']:.2f}%{part}"

    lines = [f"{mark}effective robustness of {p.model} on {p.shift_suite} (Taori et al. 2020): line fitted on "
             f"{p.n_models:,} published models ({p.population[0]} + {p.population[1]})",
             run_line("reference", p.reference), run_line("shifted", p.shifted),
             f"  line: logit(shifted) = {p.intercept:+.4f} {p.slope:+.4f} * logit(reference); at "
             f"{100 * p.reference['top1']:.2f}% it predicts {100 * p.predicted:.2f}%",
             f"  {mark}effective robustness: {100 * p.effective:+.2f} points"]
    if p.subset:
        lines.append("  SUBSET runs: these images are not the test sets the line was fitted on; the point is not "
                     "comparable to the published models'")
    return lines
