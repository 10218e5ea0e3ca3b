"""Aggregation models behind one interface, chosen by name from one registry.

Every model takes the same input, :class:`Answers` (long-form integer codes: which rater gave
which answer to which question, plus the sizes), and returns the same result,
:class:`AggregationResult`: per-question posteriors over the true classes, per-rater confusion
matrices (classes × answers), the class prior, the marginal log-likelihood after each iteration
and the iteration count. So models are interchangeable and comparable (crowd-kit's
``BaseClassificationAggregator`` is the model for this), and code that aggregates —
:meth:`relabel.ratings.Ratings.fit`, the CLI's ``--aggregator`` — never names one.

Registered models (``list_aggregators()``):

- ``dawid-skene``: Dawid & Skene (1979), a full confusion matrix per rater; binary
  (ReaL's 2 × 3: truth no/yes, answers no/maybe/yes) and multi-class (K × K);
- ``one-coin``: one-coin Dawid–Skene (Zhang et al. 2016), one accuracy per rater, its errors
  spread evenly over the other classes;
- ``majority-vote``: the (soft) vote share, with the confusions and log-likelihood that one
  M-step and one E-step give for it, so it is scored on the same scale as the others.

A new model is one file with an :class:`Aggregator` subclass plus one line in
:data:`AGGREGATORS` (``docs/extending.md``, "Adding an aggregation model").
"""
from __future__ import annotations

import importlib
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from harness.errors import HarnessError

TINY = np.finfo(np.float64).tiny

# name -> "module:class"; imported only when asked for, so listing them imports nothing.
AGGREGATORS: dict[str, str] = {
    "dawid-skene": "relabel.dawid_skene:DawidSkene",
    "one-coin": "relabel.one_coin:OneCoinDawidSkene",
    "majority-vote": "relabel.majority_vote:MajorityVote",
}


def list_aggregators() -> list[str]:
    return sorted(AGGREGATORS)


def get_aggregator(name: str, **options) -> "Aggregator":
    """The registered model ``name`` built with ``options`` (its keyword arguments)."""
    if name not in AGGREGATORS:
        raise HarnessError(f"unknown aggregation model {name!r}; registered: {', '.join(list_aggregators())}")
    module, attr = AGGREGATORS[name].split(":")
    cls = getattr(importlib.import_module(module), attr)
    takes = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise HarnessError(f"aggregation model {name!r} takes no option(s) {', '.join(unknown)}; "
                           f"it takes: {', '.join(takes) or 'none'}")
    return cls(**options)


def check_codes(values, name: str, size: int | None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise HarnessError(f"{name} must be a 1-d array of integer codes, got dtype {arr.dtype} "
                           f"and shape {arr.shape}")
    if arr.size and arr.min() < 0:
        raise HarnessError(f"{name} has negative codes (first at position {int(np.argmax(arr < 0))})")
    if size is not None and arr.size and arr.max() >= size:
        raise HarnessError(f"{name} has code {int(arr.max())} but only {size} are declared")
    return arr.astype(np.int64, copy=False)


@dataclass(eq=False)
class Answers:
    """Who answered what, as integer codes (one entry per answer), and how many of each there are.

    ``answer_votes`` (answers × classes) says how each answer votes for the true classes in a
    majority vote; the identity when answers are classes, which is the default, else None
    until given (then only models started from a given posterior can fit).
    """

    question: np.ndarray
    rater: np.ndarray
    answer: np.ndarray
    n_questions: int
    n_raters: int
    n_classes: int
    n_answers: int
    answer_votes: np.ndarray | None

    @classmethod
    def from_codes(cls, question, rater, answer, *, n_classes: int, n_answers: int,
                   n_questions: int | None = None, n_raters: int | None = None,
                   answer_votes=None) -> "Answers":
        question = check_codes(question, "question", n_questions)
        rater = check_codes(rater, "rater", n_raters)
        answer = check_codes(answer, "answer", n_answers)
        if not (len(question) == len(rater) == len(answer)):
            raise HarnessError(f"question, rater and answer must have equal lengths, got "
                               f"{len(question)}, {len(rater)}, {len(answer)}")
        if len(question) == 0:
            raise HarnessError("no answers to aggregate")
        if n_classes < 2:
            raise HarnessError(f"n_classes must be at least 2, got {n_classes}")
        if answer_votes is None and n_answers == n_classes:
            answer_votes = np.eye(n_classes)
        if answer_votes is not None:
            answer_votes = np.asarray(answer_votes, float)
            if answer_votes.shape != (n_answers, n_classes):
                raise HarnessError(f"answer_votes must have shape {(n_answers, n_classes)} (answers, classes), "
                                   f"got {answer_votes.shape}")
        n_q = int(n_questions if n_questions is not None else question.max() + 1)
        n_r = int(n_raters if n_raters is not None else rater.max() + 1)
        return cls(question, rater, answer, n_q, n_r, int(n_classes), int(n_answers), answer_votes)

    @property
    def answers_are_classes(self) -> bool:
        return self.n_answers == self.n_classes

    @cached_property
    def by_question(self):
        """questions × (rater, answer) cells (scipy CSR): how often each cell answered each question."""
        import scipy.sparse as sp

        cells = self.rater * self.n_answers + self.answer
        return sp.csr_matrix((np.ones(len(cells)), (self.question, cells)),
                             shape=(self.n_questions, self.n_raters * self.n_answers))

    @cached_property
    def by_cell(self):
        """The transpose of :attr:`by_question`, stored by rows for the M-step's product."""
        return self.by_question.T.tocsr()

    def majority_posterior(self) -> np.ndarray:
        """classes × questions: each answer's vote for the classes, normalised per question
        (uniform where unanswered)."""
        if self.answer_votes is None:
            raise HarnessError(f"with {self.n_answers} answers for {self.n_classes} classes, give answer_votes "
                               "(how each answer votes) or an init posterior")
        cell_votes = np.tile(self.answer_votes.T, (1, self.n_raters))      # classes × cells
        counts = np.stack([self.by_question @ v for v in cell_votes])
        total = counts.sum(0)
        counts /= np.where(total > 0, total, 1.0)
        counts[:, total == 0] = 1.0 / self.n_classes
        return counts

    @cached_property
    def cell_totals(self) -> np.ndarray:
        """Answers per (rater, answer) cell."""
        return np.bincount(self.rater * self.n_answers + self.answer,
                           minlength=self.n_raters * self.n_answers).astype(float)

    # Posteriors are class-major (classes × questions) inside the fits: one contiguous row per
    # class keeps every step a vector operation (question-major is 2-3× slower here).
    def expected_counts(self, posterior: np.ndarray) -> np.ndarray:
        """raters × classes × answers: the posterior mass (classes × questions) of each class on
        each rater's answers. The last class gets what the others leave of each cell's total
        (one sparse product fewer)."""
        K = self.n_classes
        counts = np.empty((K, self.n_raters * self.n_answers))
        for k in range(K - 1):
            counts[k] = self.by_cell @ posterior[k]
        counts[K - 1] = self.cell_totals - counts[:K - 1].sum(0)
        np.maximum(counts, 0.0, out=counts)
        return counts.reshape(K, self.n_raters, self.n_answers).transpose(1, 0, 2)

    def log_joint(self, confusion: np.ndarray, prior: np.ndarray) -> np.ndarray:
        """classes × questions: log P(class) + the log-probability of the question's answers given
        the class, under these confusions (raters × classes × answers) and class prior."""
        log_conf = np.log(np.maximum(confusion, TINY))
        cell_logs = log_conf.transpose(1, 0, 2).reshape(self.n_classes, -1)   # classes × cells
        joint = np.empty((self.n_classes, self.n_questions))
        for k in range(self.n_classes):
            joint[k] = self.by_question @ cell_logs[k]
            joint[k] += np.log(max(prior[k], TINY))
        return joint

    def posterior(self, confusion: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, float]:
        """E-step: the posterior (classes × questions) and the marginal log-likelihood of every
        answer under these confusions and class prior.

        Computed against the last class: the log-odds of each other class (K − 1 sparse
        products, K − 1 exponentials per question), the last class's summed log joint from the
        cell totals (a dot product), and Σ log(1 + Σ odds) through :func:`sum_of_logs`.
        Questions whose odds would overflow are shifted by their largest log-odds first.
        """
        K, n_q = self.n_classes, self.n_questions
        cell_logs = np.log(np.maximum(confusion, TINY)).transpose(1, 0, 2).reshape(K, -1)
        log_prior = np.log(np.maximum(prior, TINY))
        odds = np.empty((K - 1, n_q))
        for k in range(K - 1):
            odds[k] = self.by_question @ (cell_logs[k] - cell_logs[K - 1])
            odds[k] += log_prior[k] - log_prior[K - 1]
        log_likelihood = float(self.cell_totals @ cell_logs[K - 1]) + n_q * log_prior[K - 1]
        last = np.ones(n_q)
        top = odds.max(0)
        big = np.flatnonzero(top > 700.0)
        if len(big):
            shift = top[big]
            odds[:, big] -= shift
            last[big] = np.exp(-shift)
            log_likelihood += float(shift.sum())
        np.exp(odds, out=odds)
        norm = odds.sum(0)
        norm += last
        post = np.empty((K, n_q))
        np.divide(odds, norm, out=post[:K - 1])
        np.divide(last, norm, out=post[K - 1])
        return post, log_likelihood + sum_of_logs(norm)


def sum_of_logs(values: np.ndarray) -> float:
    """Σ log(values) with one logarithm per 256 values: the mantissas (in [0.5, 1), so a block's
    product stays above 1e-77) are multiplied in blocks of 256 and the binary exponents summed.
    Each block loses at most ~256 ulp, so the sum is good to ~1e-13 per block; a logarithm per
    value costs more than the sparse products of an EM iteration here."""
    mantissa, exponent = np.frexp(np.asarray(values, float).ravel())
    whole = len(mantissa) - len(mantissa) % 256
    blocks = mantissa[:whole].reshape(-1, 256).prod(1)
    return float(np.log(blocks).sum() + np.log(mantissa[whole:]).sum() + np.log(2.0) * exponent.sum())


def normalise_log_joint(joint: np.ndarray) -> tuple[np.ndarray, float]:
    """(posterior, log-likelihood) from a classes × questions log joint; ``joint`` is overwritten."""
    top = joint.max(0)
    joint -= top
    np.exp(joint, out=joint)
    norm = joint.sum(0)
    joint /= norm
    return joint, float(top.sum()) + sum_of_logs(norm)


@dataclass
class AggregationResult:
    posterior: np.ndarray        # (questions, classes)
    confusion: np.ndarray        # (raters, classes, answers), rows sum to 1
    prior: np.ndarray            # (classes,)
    objective: list[float] = field(default_factory=list)  # per iteration; EM's must not fall
    iterations: int = 0
    converged: bool = False

    @property
    def log_likelihood(self) -> float:
        return self.objective[-1] if self.objective else float("nan")


class Aggregator(ABC):
    """An aggregation model: options in the constructor, the data in :meth:`fit`.

    ``fit`` returns an :class:`AggregationResult` whose ``objective`` holds the marginal
    log-likelihood of the answers after each iteration (one entry for a closed-form model).
    """

    name: str = ""

    @abstractmethod
    def fit(self, answers: Answers) -> AggregationResult:
        ...

    def fit_predict_proba(self, answers: Answers) -> np.ndarray:
        return self.fit(answers).posterior
