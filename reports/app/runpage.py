"""The run page: headline top-1 on every label set of the run's dataset with Wilson intervals; per-class
accuracy with class names; the most-confused class pairs, each a link to its images; calibration (ECE with
a reliability diagram, NLL and Brier where the stored outputs allow) from the metrics registered in
``harness.metrics`` (``harness.calibration.run_report``); provenance, folded. The same numbers print in the
terminal with ``python -m reports run-report RUN [--json]`` (:func:`run_summary`)."""
from __future__ import annotations

import json
import threading

from starlette.requests import Request
from starlette.responses import Response

from harness import calibration
from harness.errors import HarnessError
from harness.score import per_sample
from harness.store import Store
from harness.suites import get_suite

from .. import stats
from ..external import EXTERNAL_KIND
from .classes import class_names
from .context import Context, NotFound
from .pages import esc, page, table, url
from .samples import gallery

CONFIDENCE = 0.95
_reports: dict[tuple, dict] = {}
_reports_lock = threading.Lock()


def label_sets_of(store: Store, dataset: str) -> list[str]:
    """The label sets of a dataset that label samples with classes (a ``labels`` table), by name."""
    return sorted(m["name"] for m in store.list_label_sets()
                  if m.get("dataset") == dataset and "labels" in (m.get("n_rows") or {}))


def resolve(store: Store, ref: str, dataset: str | None = None) -> dict:
    try:
        run = store.resolve_run(ref, dataset)
    except HarnessError as exc:
        raise NotFound(str(exc)) from None
    if run.get("status") != "complete":
        raise NotFound(f"run {run['run_id']} is {run.get('status')}; only complete runs have a page")
    return run


def chosen_label_set(store: Store, run: dict, requested: str | None) -> str:
    """``requested`` (checked to label the run's dataset), else the run's suite's default label set. Only a
    classification run has per-class accuracy and calibration; another is refused in one sentence."""
    try:
        task = get_suite(run.get("suite")).task
    except HarnessError:
        task = None
    if task != "classification":
        raise HarnessError(f"run {run['run_id']} is a {task or 'non-classification'} run (suite {run.get('suite')}); "
                           f"the run page and run-report show classification runs; its scores: python -m harness "
                           f"score --run {run['run_id']}")
    options = label_sets_of(store, run.get("dataset"))
    if requested is None:
        try:
            requested = get_suite(run["suite"]).default_label_set
        except HarnessError:
            requested = None
        if requested not in options:
            requested = options[0] if options else None
    if requested not in options:
        raise HarnessError(f"label set {requested!r} does not label dataset {run.get('dataset')!r} of run "
                           f"{run['run_id']}; expected one of {', '.join(options) or 'none (no label set stored)'}")
    return requested


def headline(store: Store, run: dict) -> list[dict]:
    """Top-1 with its Wilson interval on every label set of the run's dataset."""
    out = []
    for label_set in label_sets_of(store, run["dataset"]):
        rows = per_sample(store, run["run_id"], label_set)
        if not len(rows):
            continue
        wilson = stats.accuracy_wilson(rows["correct_top1"].to_numpy(dtype=bool), CONFIDENCE)
        out.append({"label_set": label_set, "n": int(len(rows)), "top1": wilson.estimate, "low": wilson.low,
                    "high": wilson.high})
    return out


def report(store: Store, run: dict, label_set: str) -> dict:
    """``harness.calibration.run_report`` with class names, kept while the run and label set stay the same
    (a complete run never changes; a replaced label set has a new creation time)."""
    names = class_names(store, run["dataset"])
    key = (str(store.root), run["run_id"], label_set, store.label_set_meta(label_set).get("created_at"))
    with _reports_lock:
        cached = _reports.get(key)
    if cached is None:
        cached = calibration.run_report(store, run["run_id"], label_set, len(names) or None)
        for row in cached["per_class_accuracy"]:
            row["name"] = names.get(row["class_index"], "")
        for pair in cached["confused_pairs"]:
            pair["true_name"], pair["predicted_name"] = names.get(pair["true"], ""), names.get(pair["predicted"], "")
        with _reports_lock:
            _reports[key] = cached
    return cached


def run_summary(store: Store, ref: str, label_set: str | None = None) -> dict:
    """What the run page shows, as one JSON-ready dict (``python -m reports run-report``)."""
    run = store.resolve_run(ref)
    chosen = chosen_label_set(store, run, label_set)
    return {"run": {k: run.get(k) for k in ("run_id", "name", "suite", "dataset")},
            "headline": headline(store, run), **report(store, run, chosen)}


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def run_page(context: Context, request: Request) -> Response:
    store = context.store
    run = resolve(store, request.path_params["run"], request.query_params.get("dataset"))
    run_id = run["run_id"]
    label_set = chosen_label_set(store, run, request.query_params.get("labels"))
    rep = report(store, run, label_set)
    head = table(["label set", "n", "top-1 %", f"{round(100 * CONFIDENCE)}% Wilson"],
                 [(f'<a href="{url("/runs/" + run_id, labels=h["label_set"])}">{esc(h["label_set"])}</a>',
                   (f'{h["n"]:,}', h["n"]), (_pct(h["top1"]), h["top1"]), f'{_pct(h["low"])}–{_pct(h["high"])}')
                  for h in headline(store, run)], numeric=(1, 2), raw=True, table_id="headline")
    cal = [f'<p>On label set <b>{esc(label_set)}</b>, {rep["n"]:,} single-label samples, top-1 '
           f'{_pct(rep["top1"])}%.</p><dl class="metrics">']
    for name, label, digits in (("ece", "ECE (15 bins)", 4), ("nll", "NLL", 4), ("brier", "Brier score", 4)):
        value = rep.get(name)
        shown = f"{value:.{digits}f}" if value is not None else f'– <span class="note">{esc(rep["unavailable"][name])}</span>'
        cal.append(f'<dt>{esc(label)}</dt><dd id="{name}" data-v="{"" if value is None else repr(value)}">{shown}</dd>')
    cal.append("</dl>")
    if rep.get("ece") is not None:
        cal.append(f'<img class="diagram" alt="reliability diagram" src="{url(f"/runs/{run_id}/reliability.png", labels=label_set)}">')
    pairs = table(["true class", "predicted class", "samples"],
                  [(esc(f'{p["true"]} {p["true_name"]}'), esc(f'{p["predicted"]} {p["predicted_name"]}'),
                    (f'<a class="pair" href="{url(f"/runs/{run_id}/confusion", labels=label_set, true=p["true"], pred=p["predicted"])}">'
                     f'{p["n"]:,}</a>', p["n"])) for p in rep["confused_pairs"]],
                  numeric=(2,), raw=True, table_id="pairs")
    classes = table(["class", "name", "n", "correct", "accuracy %"],
                    [((str(c["class_index"]), c["class_index"]), c["name"], (f'{c["n"]:,}', c["n"]),
                      (f'{c["correct"]:,}', c["correct"]), (_pct(c["accuracy"]), c["accuracy"]))
                     for c in rep["per_class_accuracy"] if c["n"]],
                    numeric=(0, 2, 3, 4), table_id="per-class")
    others = [m for m in store.list_runs("complete") if m.get("dataset") == run["dataset"] and m["run_id"] != run_id
              and m.get("kind") != EXTERNAL_KIND]  # an external table holds no per-sample rows to pair
    compare = ""
    if others:
        options = "".join(f'<option value="{esc(m["run_id"])}">{esc(m.get("name"))}</option>' for m in others)
        compare = (f'<form action="/compare" class="filters"><input type="hidden" name="a" value="{esc(run_id)}">'
                   f'<input type="hidden" name="labels" value="{esc(label_set)}"><label>compare with '
                   f'<select name="b">{options}</select></label> <button>compare</button></form>')
    provenance = esc(json.dumps(run, indent=2, sort_keys=True, default=str))
    body = (f'<p>Run <code>{esc(run_id)}</code>: {esc(run.get("name"))}, suite {esc(run.get("suite"))}, dataset '
            f'{esc(run.get("dataset"))}. <a href="{url(f"/runs/{run_id}", labels=label_set)}">link</a></p>'
            f"<h2>Top-1 on each label set</h2>{head}{compare}<h2>Calibration</h2>{''.join(cal)}"
            f"<h2>Most-confused class pairs</h2>{pairs}<h2>Per-class accuracy</h2>{classes}"
            f"<details><summary>provenance</summary><pre>{provenance}</pre></details>")
    return page(f"{run.get('name')} on {label_set}", body, script="sortable")


def reliability_png(context: Context, request: Request) -> Response:
    store = context.store
    run = resolve(store, request.path_params["run"])
    label_set = chosen_label_set(store, run, request.query_params.get("labels"))
    arrays = calibration.run_arrays(store, run["run_id"], label_set)
    if calibration.ece_metric(arrays) is None:
        raise NotFound(f"run {run['run_id']} has no reliability diagram: the stored predictions carry no top-1 "
                       "probability")
    bins = calibration.reliability(arrays["confidence"], arrays["y_true"] == arrays["y_pred"])
    png = calibration.reliability_diagram(bins, f"{run.get('name')} on {label_set}")
    return Response(png, media_type="image/png")


def _int_param(request: Request, name: str) -> int:
    value = request.query_params.get(name)
    if value is None or not value.lstrip("-").isdigit():
        raise HarnessError(f"query parameter {name}={value!r} must be a class index (an integer)")
    return int(value)


def confusion_page(context: Context, request: Request) -> Response:
    store = context.store
    run = resolve(store, request.path_params["run"])
    label_set = chosen_label_set(store, run, request.query_params.get("labels"))
    true, pred = _int_param(request, "true"), _int_param(request, "pred")
    names = class_names(store, run["dataset"])
    keys = calibration.cell_keys(store, run["run_id"], label_set, true, pred)
    title = f"{run.get('name')}: {names.get(true, true)} predicted as {names.get(pred, pred)}"
    body = (f'<p>{len(keys):,} samples of class {true} ({esc(names.get(true, ""))}) in label set {esc(label_set)} '
            f'that run <a href="{url("/runs/" + run["run_id"], labels=label_set)}">{esc(run.get("name"))}</a> '
            f'predicts as class {pred} ({esc(names.get(pred, ""))}).</p>'
            + gallery(store, run["dataset"], keys, request))
    return page(title, body)
