"""Candidate classes: a representation of the zoo's answers that scales with answers, not classes.

A sample's candidates are its given label plus every class some rater put in its top-k: a handful,
not the dataset's 1,000 classes. Everything downstream (the rater model's posterior, the features
of the suspicion) lives on these (sample, candidate) entries, so 50,000 samples × 1,000 classes ×
dozens of raters fit in seconds and tens of megabytes, where a dense classes × samples posterior
needs 400 MB per copy and a sparse product per class per iteration.

What a run carries counts for what it is: a top-1 file is one vote per sample; a top-k list adds
the classes below the first; scores (probabilities, or softmaxed logits stored as top-k scores)
say how sure the vote was. A run that covers only some samples answers only those.

:class:`CandidateAnswers` holds the answers (one row per sample, rater and rank), the candidate
entries and, per entry, what each rater said about it. :func:`fit_candidates` is the rater model
on them: one-coin Dawid–Skene (one skill per rater) with per-class skills shrunk toward it
(``shrinkage`` pseudo-answers at the rater's own skill; infinity is plain one-coin), by EM on the
candidates' posterior, deterministic (fixed order, no random start).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.errors import HarnessError

from .aggregation import TINY


@dataclass(eq=False)
class CandidateAnswers:
    """The zoo's answers on the candidate classes of each sample.

    ``keys`` / ``given`` (n samples), ``raters`` (R names); ``top1`` (R × n): each rater's first
    class, −1 where it did not answer; ``entry_sample`` / ``entry_class`` (E entries, sorted by
    sample then class, the given label always among them); ``entry_rank`` / ``entry_score``
    (R × E): the rank (0 = first) at which each rater put the entry's class in its list, −1 if
    not at all, and the score it gave it (NaN if none stored; 1 for a top-1 answer without
    score).
    """

    keys: np.ndarray
    given: np.ndarray
    raters: list[str]
    n_classes: int
    top1: np.ndarray
    entry_sample: np.ndarray
    entry_class: np.ndarray
    entry_rank: np.ndarray
    entry_score: np.ndarray
    entry_is_given: np.ndarray = field(init=False)
    sample_start: np.ndarray = field(init=False)

    def __post_init__(self):
        self.entry_is_given = self.entry_class == self.given[self.entry_sample]
        self.sample_start = np.searchsorted(self.entry_sample, np.arange(len(self.keys) + 1))

    @property
    def n_samples(self) -> int:
        return len(self.keys)

    @classmethod
    def build(cls, keys, given, raters: list[str], sample, rater, klass, rank, score,
              n_classes: int) -> "CandidateAnswers":
        """From long answers: ``sample`` (index into ``keys``), ``rater``, ``klass``, ``rank`` and
        ``score`` (NaN when the run stores none) per answer."""
        keys, given = np.asarray(keys), np.asarray(given, np.int64)
        sample, rater, klass, rank = (np.asarray(a, np.int64) for a in (sample, rater, klass, rank))
        score = np.asarray(score, float)
        n, R = len(keys), len(raters)
        if not (len(sample) == len(rater) == len(klass) == len(rank) == len(score)):
            raise HarnessError("sample, rater, class, rank and score must have one value per answer")
        for name, values, size in (("given label", given, n_classes), ("answered class", klass, n_classes),
                                   ("sample", sample, n), ("rater", rater, R)):
            if len(values) and (values.min() < 0 or values.max() >= size):
                bad = int(np.flatnonzero((values < 0) | (values >= size))[0])
                raise HarnessError(f"{name} {int(values[bad])} at position {bad} is outside 0..{size - 1}")
        # Candidates: the given label of every sample and every answered class, once each.
        codes = np.unique(np.concatenate([np.arange(n) * n_classes + given, sample * n_classes + klass]))
        entry_sample, entry_class = codes // n_classes, codes % n_classes
        entry = np.searchsorted(codes, sample * n_classes + klass)
        entry_rank = np.full((R, len(codes)), -1, np.int64)
        entry_score = np.full((R, len(codes)), np.nan)
        # A class listed twice by one rater keeps its best rank (the last write of a sorted order).
        order = np.lexsort((-rank, entry, rater))
        entry_rank[rater[order], entry[order]] = rank[order]
        entry_score[rater[order], entry[order]] = score[order]
        top1 = np.full((R, n), -1, np.int64)
        first = rank == 0
        top1[rater[first], sample[first]] = klass[first]
        no_score = (entry_rank == 0) & np.isnan(entry_score)
        entry_score[no_score] = 1.0
        return cls(keys, given, list(raters), int(n_classes), top1, entry_sample, entry_class,
                   entry_rank, entry_score)

    def answered(self) -> np.ndarray:
        """R × E: whether the rater answered the entry's sample at all."""
        return self.top1[:, self.entry_sample] >= 0

    def votes(self) -> np.ndarray:
        """E: how many raters put the entry's class first."""
        return (self.entry_rank == 0).sum(0)

    def segment_sum(self, values: np.ndarray) -> np.ndarray:
        """Per sample, the sum of ``values`` over its entries (entries are grouped by sample)."""
        return np.add.reduceat(values, self.sample_start[:-1]) if len(values) else np.zeros(self.n_samples)

    def segment_max(self, values: np.ndarray) -> np.ndarray:
        return np.maximum.reduceat(values, self.sample_start[:-1])


@dataclass
class CandidateFit:
    posterior: np.ndarray        # (E,) over each sample's candidates, sums to 1 per sample
    skill: np.ndarray            # (R,) one-coin accuracy
    class_skill: np.ndarray      # (R, K) per true class, shrunk toward skill
    prior: np.ndarray            # (K,)
    objective: list[float] = field(default_factory=list)
    iterations: int = 0
    converged: bool = False


def majority_posterior(c: CandidateAnswers) -> np.ndarray:
    """Each sample's top-1 vote shares over its candidates (uniform where nobody answered)."""
    votes = c.votes().astype(float)
    total = c.segment_sum(votes)[c.entry_sample]
    sizes = np.diff(c.sample_start)[c.entry_sample]
    return np.where(total > 0, votes / np.where(total > 0, total, 1.0), 1.0 / sizes)


def normalise_per_sample(c: CandidateAnswers, log_joint: np.ndarray) -> tuple[np.ndarray, float]:
    top = c.segment_max(log_joint)
    post = np.exp(log_joint - top[c.entry_sample])
    norm = c.segment_sum(post)
    return post / norm[c.entry_sample], float(top.sum() + np.log(norm).sum())


def fit_candidates(c: CandidateAnswers, *, shrinkage: float = 50.0, prior_smoothing: float = 1.0,
                   max_iter: int = 200, tol: float = 1e-9) -> CandidateFit:
    """One-coin Dawid–Skene with per-class skills shrunk toward each rater's skill, on candidates.

    A rater whose true class is k answers k with probability ``s[r, k]`` and each other class
    with ``(1 − s[r, k]) / (K − 1)``. M-step: ``s[r, k] = (hits + shrinkage · s[r]) / (mass +
    shrinkage)``, the posterior mass of class k on the samples r answered (``mass``) and on those
    it answered k (``hits``); ``s[r]`` is the pooled one-coin skill. E-step on the candidates
    only (a class no rater named and that is not the given label has posterior 0). The given
    label is not a rater: it is what is under test. Starts from the vote shares.
    """
    if shrinkage < 0:
        raise HarnessError(f"shrinkage must be >= 0, got {shrinkage}")
    K, R = c.n_classes, len(c.raters)
    answered = c.answered()
    hit = c.entry_rank == 0
    post = majority_posterior(c)
    fit = CandidateFit(post, np.zeros(R), np.zeros((R, K)), np.full(K, 1.0 / K))
    for it in range(1, max_iter + 1):
        skill = np.empty(R)
        class_skill = np.empty((R, K))
        for r in range(R):
            mass = np.bincount(c.entry_class, weights=post * answered[r], minlength=K)
            hits = np.bincount(c.entry_class, weights=post * hit[r], minlength=K)
            skill[r] = np.clip(hits.sum() / max(mass.sum(), TINY), 1e-6, 1 - 1e-6)
            if np.isinf(shrinkage):      # plain one-coin
                class_skill[r] = skill[r]
            elif shrinkage > 0:
                class_skill[r] = (hits + shrinkage * skill[r]) / (mass + shrinkage)
            else:
                class_skill[r] = np.where(mass > 0, hits / np.maximum(mass, TINY), skill[r])
        class_skill = np.clip(class_skill, 1e-6, 1 - 1e-6)
        prior = np.bincount(c.entry_class, weights=post, minlength=K) + prior_smoothing
        prior /= prior.sum()
        log_joint = np.log(prior[c.entry_class])
        for r in range(R):
            s = class_skill[r, c.entry_class]
            log_joint += np.where(answered[r], np.where(hit[r], np.log(s), np.log((1 - s) / (K - 1))), 0.0)
        post, objective = normalise_per_sample(c, log_joint)
        fit.objective.append(objective)
        fit.iterations = it
        if it > 1 and objective - fit.objective[-2] <= tol * abs(objective):
            fit.converged = True
            break
    fit.posterior, fit.skill, fit.class_skill, fit.prior = post, skill, class_skill, prior
    return fit
