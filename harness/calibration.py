"""Per-class accuracy, confusion matrix and calibration of a classification run, as pure functions.

Each function takes plain arrays (one entry per sample) and returns numbers or a small table, so it
can be registered as a metric over stored rows (:func:`run_arrays` reads them): class ids ``y_true``
and ``y_pred``; ``confidence``, the probability the model gave its top-1 class (stored as
``top_scores[1]``); ``probabilities``, a samples x classes matrix, which only a run stored with its
full outputs (``--save-logits``, softmaxed here) has. scikit-learn computes what it already has
(confusion matrix, per-class recall, log loss); expected calibration error is the binned definition
of Guo et al. (2017), with equal-width confidence bins.
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd

from .errors import HarnessError
from .metrics import CALIBRATION_VERSION, calibration_metrics
from .registry import load_object

METRIC_VERSION = CALIBRATION_VERSION
N_BINS = 15


def _check(n: int, **arrays) -> None:
    for name, a in arrays.items():
        if len(a) != n:
            raise HarnessError(f"{name} has {len(a)} entries for {n} samples; expected one per sample")


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """[true class, predicted class] counts (rows: the labels)."""
    from sklearn.metrics import confusion_matrix

    _check(len(y_true), y_pred=y_pred)
    return confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))


def per_class_accuracy(y_true, y_pred, n_classes: int) -> pd.DataFrame:
    """For each class: its samples ``n``, how many were predicted right, and the accuracy (NaN without samples)."""
    matrix = confusion(y_true, y_pred, n_classes)
    n = matrix.sum(axis=1)
    correct = np.diag(matrix)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(n > 0, correct / np.maximum(n, 1), np.nan)
    return pd.DataFrame({"class_index": np.arange(n_classes), "n": n, "correct": correct, "accuracy": accuracy})


def reliability(confidence, correct, n_bins: int = N_BINS) -> pd.DataFrame:
    """Equal-width confidence bins on [0, 1] (the last one closed): samples, mean confidence and accuracy."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    _check(len(confidence), correct=correct)
    if len(confidence) and (np.nanmin(confidence) < 0 or np.nanmax(confidence) > 1 or np.isnan(confidence).any()):
        raise HarnessError("confidences must be probabilities in [0, 1]; stored top-1 scores that are logits or "
                           "missing cannot be calibrated")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    n = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        conf = np.bincount(index, weights=confidence, minlength=n_bins) / n
        acc = np.bincount(index, weights=correct, minlength=n_bins) / n
    return pd.DataFrame({"low": edges[:-1], "high": edges[1:], "n": n, "confidence": conf, "accuracy": acc})


def expected_calibration_error(confidence, correct, n_bins: int = N_BINS) -> float:
    """sum over bins of (share of samples) x |accuracy - mean confidence|."""
    bins = reliability(confidence, correct, n_bins)
    used = bins["n"] > 0
    weights = bins.loc[used, "n"] / bins["n"].sum()
    return float((weights * (bins.loc[used, "accuracy"] - bins.loc[used, "confidence"]).abs()).sum())


def negative_log_likelihood(y_true, probabilities) -> float:
    """Mean -log p(true class) (scikit-learn's log loss over all classes)."""
    from sklearn.metrics import log_loss

    probabilities = np.asarray(probabilities, dtype=np.float64)
    _check(len(y_true), probabilities=probabilities)
    return float(log_loss(y_true, probabilities, labels=np.arange(probabilities.shape[1])))


def brier_score(y_true, probabilities) -> float:
    """Mean over samples of sum over classes of (p - one-hot)^2 (Brier's original multi-class form)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    _check(len(y_true), probabilities=probabilities)
    onehot = np.zeros_like(probabilities)
    onehot[np.arange(len(y_true)), np.asarray(y_true)] = 1.0
    return float(((probabilities - onehot) ** 2).sum(axis=1).mean())


def reliability_diagram(bins: pd.DataFrame, title: str = "") -> bytes:
    """PNG: accuracy per confidence bin against the diagonal, with the share of samples per bin below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(4.5, 5.5), sharex=True, height_ratios=[3, 1])
    width = bins["high"] - bins["low"]
    used = bins["n"] > 0
    top.bar(bins.loc[used, "low"], bins.loc[used, "accuracy"], width=width[used], align="edge",
            edgecolor="black", color="#4C72B0", label="accuracy")
    top.plot([0, 1], [0, 1], "--", color="grey", label="calibrated")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.legend(loc="upper left")
    top.set_title(title)
    bottom.bar(bins["low"], bins["n"] / max(bins["n"].sum(), 1), width=width, align="edge", color="grey")
    bottom.set_xlabel("confidence (top-1 probability)")
    bottom.set_ylabel("share")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def run_arrays(store, run_id: str, label_set: str) -> dict:
    """A run's rows on the single-label samples of a label set, as the arrays above: ``key``, ``y_true``,
    ``y_pred``, ``confidence`` (NaN where no score is stored) and ``probabilities`` (None without logits)."""
    from .score import LABEL_ROWS_SQL, per_sample

    query = f"""
    WITH p AS (SELECT key, top_classes, top_scores, logits FROM predictions_all WHERE run_id = $run AND error IS NULL),
         l AS (SELECT key, labels FROM ({LABEL_ROWS_SQL}) WHERE len(labels) = 1)
    SELECT l.key, l.labels[1] AS y_true, p.top_classes[1] AS y_pred, p.top_scores[1] AS confidence, p.logits
    FROM l JOIN p USING (key) ORDER BY l.key"""
    rows = per_sample(store, run_id, label_set, query)
    probabilities = None
    if len(rows) and rows["logits"].notna().all():
        logits = np.stack(rows["logits"].to_numpy()).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
    return {"key": rows["key"].to_numpy(), "y_true": rows["y_true"].to_numpy(dtype=np.int64),
            "y_pred": rows["y_pred"].to_numpy(dtype=np.int64),
            "confidence": rows["confidence"].to_numpy(dtype=np.float64, na_value=np.nan),
            "probabilities": probabilities}


# ----- as registered metrics (harness.metrics): functions of run_arrays' dict ------------------------------
def _correct(arrays: dict) -> np.ndarray:
    return arrays["y_true"] == arrays["y_pred"]


def ece_metric(arrays: dict) -> float | None:
    """Expected calibration error of the top-1 probability; None where a sample has no stored probability."""
    if not len(arrays["confidence"]) or np.isnan(arrays["confidence"]).any():
        return None
    return expected_calibration_error(arrays["confidence"], _correct(arrays))


def nll_metric(arrays: dict) -> float | None:
    if arrays["probabilities"] is None:
        return None
    return negative_log_likelihood(arrays["y_true"], arrays["probabilities"])


def brier_metric(arrays: dict) -> float | None:
    if arrays["probabilities"] is None:
        return None
    return brier_score(arrays["y_true"], arrays["probabilities"])


def n_classes_of(arrays: dict, n_classes: int | None = None) -> int:
    seen = max(int(arrays["y_true"].max(initial=-1)), int(arrays["y_pred"].max(initial=-1))) + 1
    return max(seen, n_classes or 0)


def per_class_metric(arrays: dict, n_classes: int | None = None) -> list[dict]:
    """Per class (every class up to the highest seen, or ``n_classes``): n, correct, accuracy (None without
    samples)."""
    table = per_class_accuracy(arrays["y_true"], arrays["y_pred"], n_classes_of(arrays, n_classes))
    return [{"class_index": int(r.class_index), "n": int(r.n), "correct": int(r.correct),
             "accuracy": None if np.isnan(r.accuracy) else float(r.accuracy)} for r in table.itertuples()]


def confused_pairs_metric(arrays: dict, n_classes: int | None = None, top: int = 20) -> list[dict]:
    """The ``top`` off-diagonal cells of the confusion matrix (true class, predicted class, samples), most
    samples first; ties by true class, then predicted class."""
    matrix = confusion(arrays["y_true"], arrays["y_pred"], n_classes_of(arrays, n_classes))
    np.fill_diagonal(matrix, 0)
    true, pred = np.nonzero(matrix)
    counts = matrix[true, pred]
    order = np.lexsort((pred, true, -counts))[:top]
    return [{"true": int(true[i]), "predicted": int(pred[i]), "n": int(counts[i])} for i in order]


def run_report(store, run_id: str, label_set: str, n_classes: int | None = None) -> dict:
    """Every calibration-family metric registered in ``harness.metrics`` of a run on a label set's
    single-label samples, computed by its registered function; a metric the run cannot give is None with
    the reason in ``unavailable``."""
    arrays = run_arrays(store, run_id, label_set)
    report: dict = {"run_id": run_id, "label_set": label_set, "metric_version": METRIC_VERSION,
                    "n": int(len(arrays["key"])), "top1": float(_correct(arrays).mean()) if len(arrays["key"]) else None,
                    "unavailable": {}}
    for metric in calibration_metrics():
        function = load_object(metric.compute)
        value = function(arrays, n_classes) if metric.name in ("per_class_accuracy", "confused_pairs") \
            else function(arrays)
        report[metric.name] = value
        if value is None:
            report["unavailable"][metric.name] = metric.unavailable
    if report.get("ece") is not None:
        bins = reliability(arrays["confidence"], _correct(arrays))
        report["reliability"] = [{"low": float(b.low), "high": float(b.high), "n": int(b.n),
                                  "confidence": None if np.isnan(b.confidence) else float(b.confidence),
                                  "accuracy": None if np.isnan(b.accuracy) else float(b.accuracy)}
                                 for b in bins.itertuples()]
    return report


def cell_keys(store, run_id: str, label_set: str, true: int, predicted: int) -> list[str]:
    """Sample keys of one confusion cell (true class, predicted class), sorted."""
    arrays = run_arrays(store, run_id, label_set)
    hit = (arrays["y_true"] == true) & (arrays["y_pred"] == predicted)
    return [str(k) for k in arrays["key"][hit]]
