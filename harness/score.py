"""Classification metrics as functions of stored rows joined to a label set by key.

A label set row holds a list of acceptable classes per sample (one class for original labels,
several for ReaL, an empty list for a sample the label set excludes). A prediction is correct
at top-k when any of its k highest classes is in that list; a stored error row (an image that
could not be read) is a prediction that is wrong, counted in ``n_errors``.

A label set of a test set labelled by its class folders (ImageNetV2, -Sketch, -A, -R: images realbench
does not ship) holds no row per image: its ``class_folders`` table gives the classes of each folder, a
key ``<folder>/<file>`` takes its folder's, and its meta declares the dataset's published size
(``n_samples``), against which a run's coverage is judged.
"""
from __future__ import annotations

import pandas as pd

from .errors import HarnessError
from .metrics import CLASSIFICATION_VERSION, classes_kept, metrics_for
from .multilabel import class_average
from .store import Store

METRIC_VERSION = CLASSIFICATION_VERSION

# The label rows of label set $labels for the samples of run $run: its rows, or the classes of a key's folder.
LABEL_ROWS_SQL = """SELECT key, labels FROM labels WHERE label_set = $labels
     UNION ALL
     SELECT r.key, f.labels FROM predictions_all r JOIN class_folders f ON f.folder = split_part(r.key, '/', 1)
     WHERE r.run_id = $run AND f.label_set = $labels"""

PER_SAMPLE_SQL = f"""
WITH p AS (SELECT key, top_classes, error FROM predictions WHERE run_id = $run),
     l AS (SELECT key, labels FROM ({LABEL_ROWS_SQL}) WHERE len(labels) > 0)
SELECT l.key,
       coalesce(list_contains(l.labels, p.top_classes[1]), false) AS correct_top1,
       coalesce(len(list_intersect(p.top_classes[1:5], l.labels)) > 0, false) AS correct_top5,
       coalesce(list_contains(l.labels, p.top_classes[2]), false) AS pred2_in_labels,
       coalesce(list_contains(l.labels, p.top_classes[3]), false) AS pred3_in_labels,
       coalesce(len(p.top_classes) >= len(list_distinct(l.labels)) AND list_sort(list_distinct(
           p.top_classes[1:len(list_distinct(l.labels))])) = list_sort(list_distinct(l.labels)), false)
           AS variable_topk_correct,
       l.labels,
       p.error IS NOT NULL AS is_error,
       len(p.top_classes) AS k,
       len(l.labels) AS n_labels
FROM l JOIN p USING (key)
ORDER BY l.key
"""


def _check(store: Store, run_id: str, label_set: str) -> tuple[dict, dict]:
    run = store.complete_run(run_id)
    labels = store.label_set_meta(label_set)
    if labels.get("kind") == "label-errors":
        raise HarnessError(
            f"{label_set!r} is a ranking of suspected label errors of {labels.get('label_set')!r} (relabel errors), "
            f"not a label set; score against {labels.get('label_set')!r} or a relabelled version of it")
    if run.get("dataset") != labels.get("dataset"):
        raise HarnessError(
            f"run {run_id} is on dataset {run.get('dataset')!r} but label set {label_set!r} labels "
            f"{labels.get('dataset')!r}; choose a label set of the same dataset")
    return run, labels


def per_sample(store: Store, run_id: str, label_set: str, query: str = PER_SAMPLE_SQL) -> pd.DataFrame:
    """One row per sample that the run predicted and the label set labels (non-empty), keyed by ``key``.

    ``query`` computes other per-sample metrics from the same parameters (``$run``, ``$labels``)."""
    _check(store, run_id, label_set)
    con = store.connect(runs=[run_id])
    try:
        return con.execute(query, {"run": run_id, "labels": label_set}).df()
    finally:
        con.close()


def score_run(store: Store, run_id: str, label_set: str) -> dict:
    """Accuracy of a stored run against a stored label set, with the counts that qualify it."""
    run, labels = _check(store, run_id, label_set)
    con = store.connect(runs=[run_id])
    try:
        rows = con.execute(PER_SAMPLE_SQL, {"run": run_id, "labels": label_set}).df()
        totals = con.execute(
            """SELECT
                 (SELECT count(*) FROM labels WHERE label_set = $labels) AS dataset_size,
                 (SELECT count(*) FROM labels WHERE label_set = $labels AND len(labels) > 0) AS labelled,
                 (SELECT count(*) FROM predictions WHERE run_id = $run) AS predicted""",
            {"run": run_id, "labels": label_set}).fetchone()
    finally:
        con.close()
    dataset_size, labelled, predicted = totals
    if labels.get("n_samples"):  # labelled by class folder: every image of the published dataset
        dataset_size = labelled = int(labels["n_samples"])
    n = len(rows)
    if n == 0:
        raise HarnessError(f"run {run_id} predicts no sample that label set {label_set!r} labels "
                           f"({int(predicted):,} predictions, {int(labelled):,} labelled samples); nothing to score")
    result = {
        "run_id": run_id, "name": run.get("name"), "suite": run.get("suite"), "label_set": label_set,
        "dataset": labels.get("dataset"), "metric_version": METRIC_VERSION,
        "n": n, "n_labelled_in_label_set": int(labelled), "n_samples_in_dataset": int(dataset_size),
        "n_predicted": int(predicted), "n_errors": int(rows["is_error"].sum()),
        "top1": float(rows["correct_top1"].mean()),
        # Labelled samples without a prediction are not counted wrong: such a score is not the label set's.
        "partial": n < int(labelled),
    }
    # Each further metric when the run can give it (harness.metrics' one rule). The 2nd/3rd-in-labels metrics
    # only on multi-label sets (ReaL): what top-1 misses on images with several correct answers; on
    # single-label sets they are only top-k detail, left out.
    classes, multi_label = classes_kept(rows["k"]), bool(n) and rows["n_labels"].max() > 1
    for metric in metrics_for("classification"):
        if metric.column and metric.name != "top1" and metric.available(classes, multi_label):
            result[metric.name] = float(rows[metric.column].mean()) if metric.average == "samples" else \
                class_average(rows[metric.column].to_numpy(), rows["labels"])
    return result


def describe(result: dict) -> str:
    """One line a person reads: accuracy, label set, n, and coverage (a partial run says so first)."""
    partial = ", PARTIAL run" if result.get("partial") else ""
    parts = [f"{result['name']} on {result['label_set']}{partial}: top-1 {100 * result['top1']:.2f}%"]
    if "human_agreement" in result:
        parts.append(f"human agreement {100 * result['human_agreement']:.2f}%")
    if "top5" in result:
        parts.append(f"top-5 {100 * result['top5']:.2f}%")
    if "pred2_in_labels" in result:
        parts.append(f"2nd prediction also a label {100 * result['pred2_in_labels']:.2f}%, "
                     f"3rd {100 * result['pred3_in_labels']:.2f}%")
    parts.append(f"n={result['n']:,} of {result['n_labelled_in_label_set']:,} labelled "
                 f"({result['n_predicted']:,} of {result['n_samples_in_dataset']:,} images predicted)")
    if result["n_errors"]:
        parts.append(f"{result['n_errors']} unreadable images counted wrong")
    if partial:
        parts.append(f"{result['n_labelled_in_label_set'] - result['n']:,} labelled images without a prediction "
                     "are left out, so this is not the accuracy on the whole label set")
    return ", ".join(parts)
