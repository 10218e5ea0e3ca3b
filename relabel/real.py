"""Rebuild ImageNet-ReaL (Beyer et al. 2020) from the released raw ratings.

Files (through the ``imagenet-real`` and ``imagenet-val-labels`` manifests): ``raters.npz``
(85 raters × 184,962 (image, label) questions, 5 answers each on no/maybe/yes),
``golden.npz`` (the 5 experts on 1,135 golden questions), ``raters_golden.npz`` (78 of the
raters on the same golden questions), ``scores.npz`` (the released posterior),
``real.json`` (the released label sets) and the original labels.

Two recipes (``method``):

- ``em``: plain Dawid–Skene EM from the soft majority vote; every rater's 2×3 confusion
  matrix and the prior are learnt from the 924,810 answers.
- ``golden`` (default): each rater's confusion matrix is measured on the golden questions
  against the experts' majority, with add-one smoothing; raters without golden answers get
  the average golden rater; the prior is the experts' yes-share. These stay fixed, and so,
  by default, does the virtual rater's matrix, measured the same way (``virtual_fit="em"``
  learns it by EM instead). This is what reproduces the release
  (see ``benchmarks/results/relabel.md``).

In both, the original label acts as a virtual rater on the animal classes (0–397).
Decisions: a label is kept when its posterior is ``>= threshold`` (0.8). Images that were not
rated keep the labels they arrive with (real.json's, from the models' unanimous agreement).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import pandas as pd

from harness import imagenet
from harness.data import resolve_file
from harness.errors import HarnessError

from .aggregation import AggregationResult
from .ratings import YES_NO_MAYBE, Ratings, VirtualRater

REAL_DATASET = "imagenet-real"
N_VAL = 50_000
ANIMAL_CLASSES = frozenset(range(398))
DEFAULT_THRESHOLD = 0.8
METHODS = ("golden", "em")
VIRTUAL_FITS = ("golden", "golden-classes", "em")
MAYBE_HANDLING = ("maybe", "no", "yes", "drop")


def val_file_name(index: int) -> str:
    """The file name of validation image ``index`` (0-based), as the rating files name it.
    (The store's sample key is the stem, ``harness.imagenet.val_key``.)"""
    return f"ILSVRC2012_val_{index + 1:08d}.JPEG"


def val_indices(keys) -> np.ndarray:
    """0-based indices of many validation file names at once."""
    digits = pd.Series(keys, dtype=str).str.slice(15, 23)
    if not digits.str.fullmatch(r"\d{8}").all():
        bad = pd.Series(keys)[~digits.str.fullmatch(r"\d{8}")].iloc[0]
        raise HarnessError(f"{bad!r} is not an ILSVRC2012 validation file name")
    return digits.astype(np.int64).to_numpy() - 1


def _load_npz(name: str) -> Ratings:
    z = np.load(resolve_file(REAL_DATASET, f"imagenet/{name}"))
    return Ratings.from_onehot(z["tensor"], z["info"], z["ids"], YES_NO_MAYBE)


def load_class_names() -> tuple[str, ...]:
    """The first WordNet lemma of each class, in index order."""
    return tuple(name.split(",")[0].strip() for name in imagenet.class_names())


@lru_cache(maxsize=1)
def load_original_labels() -> np.ndarray:
    """Original label (class index) of each of the 50,000 validation images, in file order."""
    _meta, table = imagenet.original_labels()  # sorted by key, which is file order
    labels = np.array([c[0] for c in table["labels"]], np.int64)
    labels.setflags(write=False)
    return labels


def load_released_real() -> list[list[int]]:
    """real.json: a label list per validation image in file order."""
    return [list(map(int, x)) for x in imagenet.real_labels()[1]["labels"]]


@dataclass
class RealData:
    ratings: Ratings            # raters.npz
    golden: Ratings             # golden.npz: the experts
    raters_golden: Ratings      # raters_golden.npz: the raters on the golden questions
    released_scores: np.ndarray  # scores.npz, aligned with ratings.questions
    released_real: list          # real.json
    original: np.ndarray        # original label per validation image


def load_golden() -> Ratings:
    """The 5 experts' answers on the golden questions."""
    return _load_npz("golden.npz")


def load_real_data() -> RealData:
    ratings = _load_npz("raters.npz")
    scores = np.load(resolve_file(REAL_DATASET, "imagenet/scores.npz"))
    info = scores["info"]
    if not (np.array_equal(info[:, 0], ratings.questions["key"].to_numpy())
            and np.array_equal(info[:, 1].astype(np.int64), ratings.questions["label"].to_numpy())):
        raise HarnessError("scores.npz and raters.npz list different questions")
    return RealData(ratings, load_golden(), _load_npz("raters_golden.npz"),
                    scores["tensor"].astype(float), load_released_real(), load_original_labels())


def original_label_rater(original: np.ndarray, classes=ANIMAL_CLASSES,
                         name: str = "original-label") -> VirtualRater:
    """The paper's virtual rater: the original ImageNet label answers questions on ``classes``."""
    reference = {val_file_name(i): int(c) for i, c in enumerate(original)}
    return VirtualRater(name, reference, None if classes is None else frozenset(classes))


# ----- golden questions -----------------------------------------------------------------
def expert_truth(golden: Ratings) -> np.ndarray:
    """Per golden question, 1 when more than half of the experts who answered said yes."""
    votes = golden.majority()
    yes = votes[:, golden.scale.index("yes")]
    return (yes * 2 > votes.sum(1)).astype(np.int64)


def golden_confusion(raters_golden: Ratings, truth: np.ndarray, rater_ids, smoothing: float = 1.0):
    """Confusion matrices (len(rater_ids) × 2 × 3) measured on golden questions.

    Counts of each rater's answers by the experts' truth, plus ``smoothing`` per cell, then
    normalised. Raters with no golden answers get the average of the golden raters' matrices.
    Returns (confusion, has_golden mask).
    """
    n_r, A = len(raters_golden.raters), len(raters_golden.scale)
    counts = np.zeros((n_r, 2, A))
    np.add.at(counts, (raters_golden.rater, truth[raters_golden.question], raters_golden.answer), 1)
    counts += smoothing
    measured = counts / counts.sum(2, keepdims=True)
    pos = raters_golden.rater_codes(rater_ids)
    confusion = np.where((pos >= 0)[:, None, None], measured[np.maximum(pos, 0)], measured.mean(0))
    return confusion, pos >= 0


def golden_virtual_confusion(data: RealData, truth: np.ndarray, classes=None,
                             smoothing: float = 1.0) -> np.ndarray:
    """The original-label rater's 2×3 matrix measured on the golden questions (those of
    ``classes`` only, when given), as :func:`golden_confusion` measures the humans'."""
    rater = original_label_rater(data.original, classes)
    qidx, names = rater.answers(data.golden.questions)
    codes = {s: i for i, s in enumerate(data.golden.scale)}
    answers = Ratings(data.golden.questions, np.array([rater.name], dtype=object), data.golden.scale,
                      qidx.astype(np.int64), np.zeros(len(qidx), np.int64),
                      np.array([codes[n] for n in names], np.int64))
    confusion, _ = golden_confusion(answers, truth, [rater.name], smoothing)
    return confusion[0]


def _keep_answers(ratings: Ratings, keep: np.ndarray) -> Ratings:
    return Ratings(ratings.questions, ratings.raters, ratings.scale, ratings.question[keep],
                   ratings.rater[keep], ratings.answer[keep])


def recode_maybe(data: RealData, maybe: str) -> RealData:
    """The raters' "maybe" answers (main and golden) kept (``maybe``), counted as ``no`` or
    ``yes``, or dropped (``drop``). The scale stays no/maybe/yes, so a recoded "maybe" is
    simply never given. The experts' answers, the reference, are left as they are."""
    if maybe not in MAYBE_HANDLING:
        raise HarnessError(f"unknown maybe handling {maybe!r}; choose one of {', '.join(MAYBE_HANDLING)}")
    if maybe == "maybe":
        return data

    def recode(ratings: Ratings) -> Ratings:
        is_maybe = ratings.answer == ratings.scale.index("maybe")
        if maybe == "drop":
            return _keep_answers(ratings, ~is_maybe)
        answer = np.where(is_maybe, ratings.scale.index(maybe), ratings.answer)
        return Ratings(ratings.questions, ratings.raters, ratings.scale, ratings.question,
                       ratings.rater, answer)

    return replace(data, ratings=recode(data.ratings), raters_golden=recode(data.raters_golden))


def golden_question_index(ratings: Ratings, golden: Ratings) -> np.ndarray:
    """Position in ``ratings.questions`` of each golden question (−1 if absent)."""
    index = pd.MultiIndex.from_frame(ratings.questions[["key", "label"]])
    return index.get_indexer(pd.MultiIndex.from_frame(golden.questions[["key", "label"]]))


# ----- the rebuild ----------------------------------------------------------------------
@dataclass
class Rebuild:
    ratings: Ratings             # with the virtual rater, if any
    fit: AggregationResult
    p_yes: np.ndarray            # per question of ratings.questions
    threshold: float
    labels: list                 # per validation image, sorted; [] = dropped
    config: dict = field(default_factory=dict)


def rebuild_real(data: RealData, method: str = "golden", threshold: float = DEFAULT_THRESHOLD,
                 virtual_classes=ANIMAL_CLASSES, golden_smoothing: float = 1.0,
                 max_iter: int = 500, tol: float = 1e-10, fixed_iterations: int | None = None,
                 smoothing: float = 0.0, virtual_fit: str = "golden",
                 virtual_confusion: np.ndarray | None = None, init: np.ndarray | None = None) -> Rebuild:
    """Aggregate the raw ratings into ReaL label sets.

    ``virtual_classes=None``: no virtual rater. With ``method="golden"``, ``virtual_fit``
    says how the virtual rater's matrix is found: ``golden`` measured like the humans' on
    all golden questions (it answers each: yes iff the label is the original one),
    ``golden-classes`` on the golden questions of its classes only, ``em`` learnt by EM on
    the main answers. ``virtual_confusion`` (2×3) fixes it outright. ``init``: EM's starting
    posterior (questions × 2), instead of the soft majority vote ("maybe" = half a vote).
    """
    if method not in METHODS:
        raise HarnessError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if virtual_fit not in VIRTUAL_FITS:
        raise HarnessError(f"unknown virtual_fit {virtual_fit!r}; choose one of {', '.join(VIRTUAL_FITS)}")
    if not 0 < threshold <= 1:
        raise HarnessError(f"threshold must be in (0, 1], got {threshold}")
    ratings = data.ratings
    if virtual_classes is not None:
        ratings = ratings.with_virtual(original_label_rater(data.original, virtual_classes))
    options: dict = {"max_iter": max_iter, "tol": tol, "fixed_iterations": fixed_iterations,
                     "smoothing": smoothing}
    if init is not None:
        options.update(init=init)
    fixed = np.full((len(ratings.raters), 2, len(ratings.scale)), np.nan)
    if virtual_confusion is not None:
        if virtual_classes is None:
            raise HarnessError("virtual_confusion needs a virtual rater (virtual_classes)")
        fixed[-1] = virtual_confusion
    if method == "golden":
        truth = expert_truth(data.golden)
        human = data.ratings.raters  # the virtual rater, if any, comes after them
        confusion, _ = golden_confusion(data.raters_golden, truth, human, golden_smoothing)
        fixed[:len(human)] = confusion
        if virtual_classes is not None and virtual_confusion is None and virtual_fit != "em":
            fixed[-1] = golden_virtual_confusion(
                data, truth, None if virtual_fit == "golden" else virtual_classes, golden_smoothing)
        share = truth.mean()
        options.update(prior=np.array([1 - share, share]))
    if not np.isnan(fixed).all():
        options.update(fixed_confusion=fixed)
    fit = ratings.fit(**options)
    p_yes = fit.posterior[:, 1]
    labels = label_lists(ratings.questions, p_yes, threshold, data.released_real)
    config = {"method": method, "threshold": threshold,
              "virtual_classes": None if virtual_classes is None else _ranges(virtual_classes),
              "golden_smoothing": golden_smoothing if method == "golden" else None,
              "virtual_fit": (None if virtual_classes is None or virtual_confusion is not None
                              else virtual_fit if method == "golden" else "em"),
              "smoothing": smoothing, "fixed_iterations": fixed_iterations,
              "init": "majority vote" if init is None else "given",
              "virtual_confusion": None if virtual_confusion is None else np.asarray(virtual_confusion).tolist(),
              "iterations": fit.iterations, "converged": fit.converged,
              "log_likelihood": fit.log_likelihood}
    return Rebuild(ratings, fit, p_yes, threshold, labels, config)


def label_lists(questions: pd.DataFrame, p_yes: np.ndarray, threshold: float,
                given: list) -> list[list[int]]:
    """real.json's format: per image the labels with ``p_yes >= threshold``, sorted; images
    without a rated question keep their ``given`` labels."""
    if len(given) != N_VAL:
        raise HarnessError(f"given label lists must cover {N_VAL} images, got {len(given)}")
    images = val_indices(questions["key"])
    labels_of = [list(map(int, g)) for g in given]
    rated = np.unique(images)
    for i in rated:
        labels_of[i] = []
    keep = p_yes >= threshold
    for i, label in sorted(zip(images[keep], questions["label"].to_numpy()[keep])):
        labels_of[i].append(int(label))
    return labels_of


def _ranges(values) -> str:
    """Compact text for a set of class ids: '0-397'."""
    vals = sorted(values)
    parts, start = [], None
    for a, b in zip(vals, vals[1:] + [None]):
        start = a if start is None else start
        if b != a + 1:
            parts.append(f"{start}-{a}" if a != start else f"{a}")
            start = None
    return ",".join(parts)


def parse_ranges(text: str) -> frozenset:
    """'0-397' or '0-9,15' as a set of class ids."""
    out = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise HarnessError(f"class ranges {text!r} are not like '0-397' or '0-9,15'") from None
    return frozenset(out)


# ----- comparison with the release ------------------------------------------------------
def label_set_table(rebuild: Rebuild) -> pd.DataFrame:
    """The rebuild as a store label set: harness keys, labels, posterior weights (1.0 for the
    labels of unrated images, which are taken as given)."""
    from harness.imagenet import val_key

    from .labelsets import label_set_frame, posterior_lookup, weights_for

    q = rebuild.ratings.questions
    score = posterior_lookup(val_indices(q["key"]), q["label"].to_numpy(), rebuild.p_yes)
    return label_set_frame([val_key(i) for i in range(N_VAL)], rebuild.labels,
                           weights_for(rebuild.labels, score))


def compare_with_release(rebuild: Rebuild, data: RealData) -> dict:
    """Pearson r of the posteriors and the share of equal decisions on the rated questions."""
    q = rebuild.ratings.questions
    images = val_indices(q["key"])
    labels = q["label"].to_numpy()
    released = np.array([lab in data.released_real[i] for i, lab in zip(images, labels)])
    ours = rebuild.p_yes >= rebuild.threshold
    same_sets = sum(set(a) == set(b) for a, b in zip(rebuild.labels, data.released_real))
    rated = np.unique(images)
    same_rated = sum(set(rebuild.labels[i]) == set(data.released_real[i]) for i in rated)
    return {
        "questions": int(len(q)),
        "equal_decisions": float(np.mean(ours == released)),
        "pearson_r": float(np.corrcoef(rebuild.p_yes, data.released_scores)[0, 1]),
        "max_abs_posterior_difference": float(np.abs(rebuild.p_yes - data.released_scores).max()),
        "yes_both": int(np.sum(ours & released)),
        "yes_only_rebuilt": int(np.sum(ours & ~released)),
        "yes_only_released": int(np.sum(~ours & released)),
        "images_with_equal_label_sets": int(same_sets),
        "rated_images": int(len(rated)),
        "rated_images_with_equal_label_sets": int(same_rated),
    }


# ----- rater quality on golden questions ------------------------------------------------
def rater_quality(data: RealData) -> pd.DataFrame:
    """Per rater: answers on the golden questions against the experts' majority."""
    rg = data.raters_golden
    truth = expert_truth(data.golden)[rg.question]
    yes, maybe = rg.scale.index("yes"), rg.scale.index("maybe")
    said_yes = rg.answer == yes
    decisive = rg.answer != maybe
    frame = pd.DataFrame({"rater": rg.raters[rg.rater], "correct": said_yes == (truth == 1),
                          "decisive": decisive, "decisive_correct": decisive & (said_yes == (truth == 1)),
                          "maybe": ~decisive, "tp": said_yes & (truth == 1), "yes": said_yes,
                          "pos": truth == 1})
    g = frame.groupby("rater", sort=False).sum()
    n = frame.groupby("rater", sort=False).size()
    main_answers = pd.Series(np.bincount(data.ratings.rater, minlength=len(data.ratings.raters)),
                             index=data.ratings.raters)
    out = pd.DataFrame({
        "rater": g.index.astype(str),
        "golden_answers": n.to_numpy(),
        "accuracy": (g["correct"] / n).to_numpy(),            # maybe counts as "not yes"
        "decisive_accuracy": (g["decisive_correct"] / g["decisive"].clip(lower=1)).to_numpy(),
        "maybe_rate": (g["maybe"] / n).to_numpy(),
        "yes_precision": (g["tp"] / g["yes"].clip(lower=1)).to_numpy(),
        "yes_recall": (g["tp"] / g["pos"].clip(lower=1)).to_numpy(),
        "answers_in_raters_npz": main_answers.reindex(g.index).fillna(0).astype(int).to_numpy(),
    })
    return out.sort_values("accuracy", ascending=False).reset_index(drop=True)


def golden_precision_recall(decisions: np.ndarray, data: RealData) -> dict:
    """Precision/recall of yes-decisions (one per rated question) against the experts."""
    idx = golden_question_index(data.ratings, data.golden)
    if (idx < 0).any():
        raise HarnessError(f"{(idx < 0).sum()} golden questions are not among the rated questions")
    truth = expert_truth(data.golden).astype(bool)
    ours = np.asarray(decisions, bool)[idx]
    tp = int(np.sum(ours & truth))
    return {"golden_questions": int(len(idx)), "expert_yes": int(truth.sum()),
            "decided_yes": int(ours.sum()), "true_positives": tp,
            "precision": tp / max(int(ours.sum()), 1), "recall": tp / max(int(truth.sum()), 1),
            "accuracy": float(np.mean(ours == truth))}


def _keep_questions(ratings: Ratings, keep: np.ndarray) -> Ratings:
    """The ratings of the questions where ``keep`` is true, renumbered."""
    code = np.cumsum(keep) - 1
    on = keep[ratings.question]
    return Ratings(ratings.questions[keep].reset_index(drop=True), ratings.raters, ratings.scale,
                   code[ratings.question[on]], ratings.rater[on], ratings.answer[on])


def golden_cross_validation(data: RealData, folds: int = 5, **options) -> dict:
    """Out-of-sample precision/recall of the golden recipe on the golden questions.

    The golden recipe measures its confusions and prior on the very questions
    :func:`golden_precision_recall` scores it on. Here the golden images are split into
    ``folds`` groups (sorted by file name, the i-th image into group i mod ``folds``; all
    questions of an image stay together); for each group the recipe is measured on the
    other groups' questions only (``rebuild_real(method="golden", **options)``) and its
    decisions on this group's questions are scored against the experts. Counts are pooled.
    """
    if not 2 <= folds <= 155:
        raise HarnessError(f"folds must be between 2 and the number of golden images, got {folds}")
    if options.get("method", "golden") != "golden":
        raise HarnessError("cross-validation is for the golden recipe (method='golden')")
    if not np.array_equal(data.golden.questions.to_numpy(), data.raters_golden.questions.to_numpy()):
        raise HarnessError("golden.npz and raters_golden.npz list different questions")
    position = golden_question_index(data.ratings, data.golden)
    if (position < 0).any():
        raise HarnessError(f"{(position < 0).sum()} golden questions are not among the rated questions")
    _, image_rank = np.unique(data.golden.questions["key"].to_numpy(), return_inverse=True)
    fold = image_rank % folds
    truth = expert_truth(data.golden).astype(bool)
    decided = np.zeros(len(truth), bool)
    for f in range(folds):
        train = fold != f
        train_data = replace(data, golden=_keep_questions(data.golden, train),
                             raters_golden=_keep_questions(data.raters_golden, train))
        rebuild = rebuild_real(train_data, method="golden", **options)
        decided[~train] = (rebuild.p_yes >= rebuild.threshold)[position[~train]]
    tp = int(np.sum(decided & truth))
    return {"folds": folds, "golden_questions": int(len(truth)), "expert_yes": int(truth.sum()),
            "decided_yes": int(decided.sum()), "true_positives": tp,
            "precision": tp / max(int(decided.sum()), 1), "recall": tp / max(int(truth.sum()), 1),
            "accuracy": float(np.mean(decided == truth))}
