"""Metrics: named, versioned functions of a stored run and a label set, in one registry for every task.

A :class:`Metric` says what it is called in a score result (``name``) and in a report (``label``),
which task it belongs to, its ``version`` (changing a definition bumps it, so results stored under
the old version are stale rather than mixed with new ones: ``metric_versions``), whether higher is
better, what a run must hold to give it (``needs``, in words, and for classification the checks
behind :meth:`Metric.available`) and where its function lives (``compute``, ``"module:attribute"``).

There is one rule for "this run cannot give this metric": :meth:`Metric.available`, from the
classes every scored sample keeps (:func:`classes_kept`) and what the label set holds. Scoring
(``harness.score``) leaves such a metric out; reports show a dash and say why
(:attr:`Metric.unavailable`). Report columns for extra leaderboard metrics come from
:func:`leaderboard_metrics`.

This module imports nothing heavy: listing metrics and their versions is free.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .registry import Registry

CLASSIFICATION_VERSION = "classification-1"
HUMAN_AGREEMENT_VERSION = "human-agreement-1"
MULTILABEL_VERSION = "multilabel-1"
COCO_VERSION = "coco-1"
LVIS_VERSION = "lvis-1"
DENSEVID_VERSION = "densevid_eval-9d4045a/1"
TEMPORAL_VERSION = "activitynet-v1.3-eval/1"
CALIBRATION_VERSION = "calibration-1"  # = harness.calibration.METRIC_VERSION
CAPTION_METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


@dataclass(frozen=True)
class Metric:
    name: str  # its key in a score result
    task: str
    version: str
    label: str  # how a report names it
    needs: str  # what a run (and label set) must hold to give it, in words
    compute: str  # "module:attribute" of the function that computes it
    higher_is_better: bool = True
    min_classes: int = 1  # classification: classes each scored sample must keep
    multi_label: bool = False  # only on a label set where some sample has several labels (ReaL)
    soft_labels: bool = False  # only on a label set with weights (CIFAR-10H)
    column: str | None = None  # classification: the per-sample column of harness.score it is the mean of
    average: str = "samples"  # "samples": the column's mean; "classes": its mean per class, averaged over classes
    unavailable: str = ""  # why a run cannot give it, as a report says it

    def available(self, classes: int, multi_label: bool = False, soft_labels: bool = False) -> bool:
        """The one rule: can a run whose scored samples each keep ``classes`` classes give this metric on a
        label set that is (or is not) multi-label and soft?"""
        return classes >= self.min_classes and (multi_label or not self.multi_label) and \
            (soft_labels or not self.soft_labels)


def classes_kept(counts: Iterable) -> int:
    """The classes every scored sample keeps (the fewest stored top classes); 0 when there is no sample or
    a count is unknown, so that no metric beyond what every sample shows is claimed."""
    values = [c for c in counts]
    if not values or any(unknown_count(c) for c in values):
        return 0
    return int(min(values))


def unknown_count(value) -> bool:
    """None, NaN or pandas' NA (the count of an error row read into a nullable integer column)."""
    if value is None:
        return True
    try:
        return bool(value != value)
    except TypeError:  # pandas' NA: its truth value is undefined
        return True


METRICS: Registry[Metric] = Registry("metric")


def register_metric(metric: Metric) -> Metric:
    return METRICS.add(metric.name, metric)


def get_metric(name: str) -> Metric:
    return METRICS.get(name)


def metrics_for(task: str) -> list[Metric]:
    return [m for m in METRICS if m.task == task]


def metric_versions(names: Iterable[str]) -> dict[str, str]:
    """``{name: version}``: what a stored score was computed with, to tell a stale one."""
    return {n: METRICS.get(n).version for n in names}


def calibration_metrics() -> list[Metric]:
    """Per-class, confusion and calibration metrics of a classification run (``harness.calibration.run_report``)."""
    return [m for m in metrics_for("classification") if m.version == CALIBRATION_VERSION]


def leaderboard_metrics() -> list[Metric]:
    """Classification metrics a leaderboard can show per row: a per-sample correct/wrong column on any label
    set (top-1 first: it ranks rows and drives the statistics)."""
    return [m for m in metrics_for("classification") if m.column and not (m.multi_label or m.soft_labels)]


# ----- the registry ------------------------------------------------------------------------
_SCORE = "harness.score:score_run"
register_metric(Metric(
    "top1", "classification", CLASSIFICATION_VERSION, "top-1", "a top class per sample", _SCORE,
    column="correct_top1"))
register_metric(Metric(
    "top5", "classification", CLASSIFICATION_VERSION, "top-5", "five top classes per sample", _SCORE,
    min_classes=5, column="correct_top5",
    unavailable="the stored predictions keep fewer than five classes per sample (an imported file of top-1 "
                "classes), so top-5 cannot be scored"))
for _rank, _word in ((2, "2nd"), (3, "3rd")):
    register_metric(Metric(
        f"pred{_rank}_in_labels", "classification", CLASSIFICATION_VERSION, f"{_word} prediction also a label",
        "three top classes per sample, and a label set with several labels for some sample", _SCORE,
        min_classes=3, multi_label=True, column=f"pred{_rank}_in_labels",
        unavailable="the stored predictions keep fewer than three classes per sample, or the label set has one "
                    "label per sample"))
register_metric(Metric(
    "variable_topk", "classification", MULTILABEL_VERSION, "variable top-k",
    "five top classes per sample, and a label set with several labels for some sample (a sample counts when "
    "its k best classes are exactly its k labels; Anzaku et al. 2024)", _SCORE,
    min_classes=5, multi_label=True, column="variable_topk_correct",
    unavailable="the stored predictions keep fewer than five classes per sample, or the label set has one label "
                "per sample (where variable top-k is top-1)"))
register_metric(Metric(
    "per_class_top1", "classification", MULTILABEL_VERSION, "top-1 averaged over classes",
    "a top class per sample and a label set with several labels for some sample (top-1 among the samples "
    "holding each class, averaged over the classes)", _SCORE,
    multi_label=True, column="correct_top1", average="classes",
    unavailable="the label set has one label per sample"))
register_metric(Metric(
    "human_agreement", "classification", HUMAN_AGREEMENT_VERSION, "human agreement",
    "a top class per sample and a soft label set (weights per label, e.g. CIFAR-10H)",
    "harness.cifar:human_agreement_summary", soft_labels=True,
    unavailable="the label set has no weights (it is not a soft label set)"))
register_metric(Metric(
    "coco_ap", "detection", COCO_VERSION, "COCO AP", "detections (boxes, masks or keypoints) and COCO ground truth",
    "harness.detection.evaluate:evaluate"))
register_metric(Metric(
    "lvis_ap", "detection", LVIS_VERSION, "LVIS AP", "detections (boxes or masks) and LVIS ground truth",
    "harness.detection.evaluate:evaluate"))
for _name in CAPTION_METRICS:
    register_metric(Metric(
        _name, "dense-captioning", DENSEVID_VERSION, _name.replace("_", "-"),
        "captioned segments per video and ActivityNet Captions references", "harness.activitynet.densevid:evaluate"))
register_metric(Metric(
    "average_mAP", "temporal-detection", TEMPORAL_VERSION, "average mAP",
    "labelled segments with scores per video (a detection submission)",
    "harness.activitynet.temporal:evaluate_detection"))
register_metric(Metric(
    "AUC", "temporal-detection", TEMPORAL_VERSION, "AR@AN AUC", "scored segments per video (a proposal submission)",
    "harness.activitynet.temporal:evaluate_proposals"))
_CALIBRATION = "harness.calibration:"
_NO_SCORE = ("the stored predictions carry no probability for the top-1 class (an imported file of classes only), "
             "so calibration cannot be measured")
_NO_LOGITS = "the run was stored without its full outputs (run with --save-logits)"
for _name, _label, _needs, _function, _higher, _why in (
        ("per_class_accuracy", "per-class accuracy", "a top class per sample", "per_class_metric", True, ""),
        ("confused_pairs", "most-confused class pairs", "a top class per sample", "confused_pairs_metric", False, ""),
        ("ece", "ECE (15 bins)", "the top-1 probability per sample", "ece_metric", False, _NO_SCORE),
        ("nll", "NLL", "full outputs per sample (--save-logits)", "nll_metric", False, _NO_LOGITS),
        ("brier", "Brier score", "full outputs per sample (--save-logits)", "brier_metric", False, _NO_LOGITS)):
    register_metric(Metric(_name, "classification", CALIBRATION_VERSION, _label, _needs, _CALIBRATION + _function,
                           higher_is_better=_higher, unavailable=_why))
