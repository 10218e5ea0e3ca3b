"""Human labels for the CIFAR-10 test set: CIFAR-10S raw answers and CIFAR-10H counts.

- CIFAR-10S (Collins et al. 2022): 248 annotators, 1,000 test images, at least 6 answers
  each. An answer's class is the annotator's "most probable" choice. An image shown to the
  same annotator again (``rerun_spec_conf``, a consistency check) counts once, at its first
  showing; how often the re-run repeats the first answer is reported as rater consistency.
  Multi-class Dawid–Skene (10×10 confusion per annotator) aggregates them. With ~25 answers
  per annotator for 100 confusion cells, plain maximum likelihood overfits (it agrees with
  the majority vote on only 92.8% of images); a Dirichlet pseudo-count of 2 on the diagonal
  (``DEFAULT_SMOOTHING``) is the prior that "annotators are mostly right".
- CIFAR-10H (Peterson et al. 2019): about 51 labels per image as counts (10,000 × 10), with no
  annotator ids, so soft labels are the normalised counts and ReaL-style label sets keep the
  classes chosen by at least ``min_share`` of the annotators. Its plurality over ~51 people is
  also the reference that tells whether an aggregate of CIFAR-10S's ~6 answers is closer to
  the crowd than the plain majority vote.

Sample keys are the CIFAR-10 test index as text (``"0"`` … ``"9999"``), the index that
CIFAR-10H and CIFAR-10S use.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from harness.data import resolve_file
from harness.errors import HarnessError

from .ratings import Ratings

DATASET = "cifar10-human"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
DEFAULT_SMOOTHING = 2.0 * np.eye(len(CIFAR10_CLASSES))


def _file(name: str):
    return resolve_file(DATASET, f"cifar/{name}")


def _cifar10s_trials(path=None) -> pd.DataFrame:
    """The rating trials in showing order, each with its top class name (``answer``)."""
    raw = pd.read_csv(path or _file("cifar10s_raw_human_data.csv"))
    raw["line"] = raw.index + 2  # in the CSV, after its header
    trials = raw[raw["task"].isin(["spec_conf", "rerun_spec_conf"])].copy()
    if trials.empty:
        raise HarnessError("the CIFAR-10S file has no rating trials (task spec_conf)")
    # One session is exported twice (same subject, image and trial index): keep one copy.
    trials = trials.drop_duplicates(["subject", "img_id", "trial_index"])
    trials["rerun"] = trials["task"].eq("rerun_spec_conf")
    trials = trials.sort_values(["rerun", "trial_index"], kind="stable")
    top = trials["response"].map(lambda r: json.loads(r).get("classSelect", ""))
    trials["answer"] = top.str.replace("mostProb", "", regex=False).str.lower()
    unknown = ~trials["answer"].isin(CIFAR10_CLASSES)
    if unknown.any():
        lines = sorted(trials["line"][unknown].tolist())[:10]
        raise HarnessError(f"{int(unknown.sum())} CIFAR-10S answers name no CIFAR-10 class (CSV lines {lines}, "
                           f"first {trials['answer'][unknown].iloc[0]!r}); expected one of {CIFAR10_CLASSES}")
    return trials


def cifar10s_answers(path=None) -> pd.DataFrame:
    """One row per (annotator, image), its first showing: ``rater, key, answer, original``."""
    trials = _cifar10s_trials(path).drop_duplicates(["subject", "img_id"], keep="first")
    return pd.DataFrame({"rater": trials["subject"].astype(str).to_numpy(),
                         "key": trials["img_id"].astype(int).astype(str).to_numpy(),
                         "answer": trials["answer"].to_numpy(),
                         "original": trials["label"].str.lower().to_numpy()})


def rerun_consistency(path=None) -> dict:
    """How often an annotator shown an image again repeats the first top class."""
    trials = _cifar10s_trials(path)
    shown = ["subject", "img_id", "answer"]
    first = trials.loc[~trials["rerun"], shown].drop_duplicates(["subject", "img_id"])
    again = trials.loc[trials["rerun"], shown].drop_duplicates(["subject", "img_id"])
    pairs = again.merge(first, on=["subject", "img_id"], suffixes=("", "_first"))
    same = pairs["answer"] == pairs["answer_first"]
    return {"reruns": int(len(pairs)), "same_answer": float(same.mean()),
            "annotators": int(pairs["subject"].nunique())}


def cifar10s_ratings(path=None) -> tuple[Ratings, pd.Series]:
    """(multi-class ratings, original label name per key)."""
    answers = cifar10s_answers(path)
    ratings = Ratings.from_long(answers, CIFAR10_CLASSES, label_col=None, where="CIFAR-10S answers")
    original = answers.drop_duplicates("key").set_index("key")["original"]
    return ratings, original


def cifar10s_report(ratings: Ratings, original: pd.Series, reference_counts: np.ndarray | None = None,
                    **options) -> tuple[dict, pd.DataFrame]:
    """Dawid–Skene against the majority vote, the original labels and, when given, the
    plurality of a larger crowd (``reference_counts``: CIFAR-10H, images × classes, indexed
    by the integer key).

    The majority vote breaks ties by the lowest class index, so on tied images it is
    compared to the reference both as is and as the expected share of a uniform tie-break.
    """
    options.setdefault("smoothing", DEFAULT_SMOOTHING)
    fit = ratings.fit(**options)
    ds = fit.posterior.argmax(1)
    votes = ratings.majority()
    mv = votes.argmax(1)
    top_votes = votes == votes.max(1, keepdims=True)
    tied = top_votes.sum(1) > 1
    orig = original.reindex(ratings.questions["key"]).map(CIFAR10_CLASSES.index).to_numpy()
    table = pd.DataFrame({"key": ratings.questions["key"], "answers": votes.sum(1).astype(int),
                          "majority": [CIFAR10_CLASSES[i] for i in mv], "majority_tied": tied,
                          "dawid_skene": [CIFAR10_CLASSES[i] for i in ds],
                          "posterior": fit.posterior.max(1),
                          "original": [CIFAR10_CLASSES[i] for i in orig]})
    steps = np.diff(fit.objective)
    summary = {"images": len(ds), "answers": ratings.n_answers, "annotators": len(ratings.raters),
               "iterations": fit.iterations, "converged": fit.converged,
               "log_likelihood": fit.log_likelihood,
               "log_likelihood_never_fell": bool(np.all(steps >= -1e-9 * abs(fit.objective[-1]))),
               "ds_equals_majority": float(np.mean(ds == mv)),
               "ds_equals_majority_untied": float(np.mean((ds == mv)[~tied])),
               "majority_ties": int(tied.sum()),
               "ds_equals_original": float(np.mean(ds == orig)),
               "majority_equals_original": float(np.mean(mv == orig)),
               "mean_annotator_accuracy_vs_ds": float(np.mean(ratings.answer == ds[ratings.question]))}
    if reference_counts is not None:
        ref = np.asarray(reference_counts)[ratings.questions["key"].astype(int).to_numpy()].argmax(1)
        table["reference"] = [CIFAR10_CLASSES[i] for i in ref]
        summary.update({
            "ds_equals_reference": float(np.mean(ds == ref)),
            "majority_equals_reference": float(np.mean(mv == ref)),
            "ds_equals_reference_tied": float(np.mean((ds == ref)[tied])) if tied.any() else float("nan"),
            "majority_equals_reference_tied": float(np.mean((mv == ref)[tied])) if tied.any() else float("nan"),
            "uniform_tie_break_equals_reference_tied": float(np.mean(
                top_votes[tied, ref[tied]] / top_votes[tied].sum(1))) if tied.any() else float("nan"),
        })
    return summary, table


def cifar10h_counts(path=None) -> np.ndarray:
    counts = np.load(path or _file("cifar10h-counts.npy"))
    if counts.ndim != 2 or counts.shape[1] != len(CIFAR10_CLASSES):
        raise HarnessError(f"CIFAR-10H counts must be images × {len(CIFAR10_CLASSES)} classes, got shape "
                           f"{counts.shape}")
    return counts


def soft_labels(counts: np.ndarray) -> np.ndarray:
    """Normalised counts (images × classes)."""
    counts = np.asarray(counts)
    bad = np.flatnonzero((counts < 0).any(1) | (counts.sum(1) == 0))
    if len(bad):
        raise HarnessError(f"{len(bad)} image rows of the label counts have a negative count or no label at "
                           f"all (rows {bad[:10].tolist()}); expected non-negative counts with at least one "
                           "label per image")
    return counts / counts.sum(1, keepdims=True)


def label_sets_description(min_share: float) -> str:
    """How a label set from :func:`label_sets` is described in the store, wherever it is registered."""
    return (f"CIFAR-10H, ReaL-style: every class chosen by at least {min_share:.0%} of the annotators "
            "(relabel.cifar.label_sets); weights are the shares")


def label_sets(counts: np.ndarray, min_share: float = 0.2) -> tuple[list, list]:
    """ReaL-style sets: the classes chosen by at least ``min_share`` of the annotators, with
    their shares as weights (an image with no such class gets an empty set: left out)."""
    if not 0 < min_share <= 1:
        raise HarnessError(f"min_share must be in (0, 1], got {min_share}")
    soft = soft_labels(counts)
    labels, weights = [], []
    for row in soft:
        keep = np.nonzero(row >= min_share)[0]
        labels.append([int(k) for k in keep])
        weights.append([float(row[k]) for k in keep])
    return labels, weights
