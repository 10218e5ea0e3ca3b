"""Dawid–Skene (1979): each rater has a confusion matrix over the answers given the true class.

One implementation serves both settings of the relabeling work:

- ReaL: a question is an (image, label) pair whose truth is no/yes (``n_classes=2``) and
  the answers are no/maybe/yes (``n_answers=3``): a 2×3 confusion matrix per rater;
- multi-class: a question is an image whose truth is one of K classes and the answers are
  those K classes (``n_classes == n_answers``): a K×K confusion matrix per rater.

The fit is EM on the marginal log-likelihood of the answers, computed with two sparse
products per iteration (questions × rater-answer cells, against all classes at once), so the
full ImageNet ratings (924,810 answers) converge in a fraction of a second. It is
deterministic: no random start, and every sum runs in a fixed order.

Options that keep EM an EM (the objective cannot fall):

- ``fixed_confusion``: raters whose matrices are given and kept (e.g. measured on golden
  questions); only the others are re-estimated;
- ``prior``: a fixed class prior instead of a learnt one;
- ``smoothing``: Dirichlet pseudo-counts on the confusion cells, one number or a
  classes × answers array (e.g. more on the diagonal); a MAP fit whose objective then
  includes the log prior density, up to a constant;
- ``known``: questions whose truth is known (golden questions), clamped in every E-step.

:class:`DawidSkene` is the model behind the aggregation interface (``relabel.aggregation``);
:func:`dawid_skene` is the same fit on bare integer codes.
"""
from __future__ import annotations

import numpy as np

from harness.errors import HarnessError

from .aggregation import TINY, AggregationResult, Aggregator, Answers, check_codes, normalise_log_joint


class DawidSkene(Aggregator):
    """Dawid–Skene by EM; ``n_classes`` × ``n_answers`` confusion matrices (binary or multi-class).

    ``init``: a starting posterior (questions × classes); by default the soft majority vote
    (``Answers.answer_votes`` says how each answer votes). ``fixed_confusion`` (raters ×
    classes × answers) holds the matrices to keep, NaN for raters to learn. Stops when the
    objective rises by less than ``tol × |objective|``, or after exactly ``fixed_iterations``
    iterations.
    """

    name = "dawid-skene"

    def __init__(self, *, init: np.ndarray | None = None, fixed_confusion: np.ndarray | None = None,
                 prior: np.ndarray | None = None, smoothing: float | np.ndarray = 0.0,
                 known: tuple[np.ndarray, np.ndarray] | None = None, max_iter: int = 500,
                 tol: float = 1e-10, fixed_iterations: int | None = None):
        smoothing = np.asarray(smoothing, float)
        if smoothing.ndim not in (0, 2) or np.any(smoothing < 0):
            raise HarnessError("smoothing must be a pseudo-count >= 0, or a classes × answers array of them")
        if fixed_iterations is not None and fixed_iterations < 1:
            raise HarnessError(f"fixed_iterations must be >= 1, got {fixed_iterations}")
        self.init, self.fixed_confusion, self.prior, self.smoothing = init, fixed_confusion, prior, smoothing
        self.known, self.max_iter, self.tol, self.fixed_iterations = known, max_iter, tol, fixed_iterations

    def fit(self, answers: Answers) -> AggregationResult:
        n_q, n_r, K, A = answers.n_questions, answers.n_raters, answers.n_classes, answers.n_answers
        smoothing = self.smoothing
        if smoothing.ndim == 2 and smoothing.shape != (K, A):
            raise HarnessError(f"smoothing must have shape {(K, A)} (classes, answers), got {smoothing.shape}")
        fixed_mask = np.zeros(n_r, bool)
        fixed_confusion = self.fixed_confusion
        if fixed_confusion is not None:
            fixed_confusion = np.asarray(fixed_confusion, float)
            if fixed_confusion.shape != (n_r, K, A):
                raise HarnessError(f"fixed_confusion must have shape {(n_r, K, A)} (raters, classes, "
                                   f"answers), got {fixed_confusion.shape}")
            fixed_mask = ~np.isnan(fixed_confusion).any(axis=(1, 2))
        prior = self.prior
        if prior is not None:
            prior = np.asarray(prior, float)
            if prior.shape != (K,) or np.any(prior <= 0) or not np.isclose(prior.sum(), 1):
                raise HarnessError(f"prior must be {K} positive probabilities summing to 1, got {prior}")
        clamp = None
        if self.known is not None:
            known_q = check_codes(self.known[0], "known questions", n_q)
            known_class = check_codes(self.known[1], "known classes", K)
            if len(known_class) != len(known_q):
                raise HarnessError("known questions and known classes must have equal lengths")
            clamp = np.full((K, len(known_q)), -np.inf)
            clamp[known_class, np.arange(len(known_q))] = 0.0

        if self.init is None:
            post = answers.majority_posterior()
        else:
            post = np.array(self.init, float)
            if post.shape != (n_q, K):
                raise HarnessError(f"init must have shape {(n_q, K)}, got {post.shape}")
            post = np.ascontiguousarray(post.T)
        if clamp is not None:
            post[:, known_q] = np.exp(clamp)

        result = AggregationResult(post, np.empty((n_r, K, A)), np.empty(K))
        limit = self.fixed_iterations or self.max_iter
        smoothed = bool(np.any(smoothing > 0))
        for it in range(1, limit + 1):
            # M-step: expected answer counts per (rater, class, answer), plus the pseudo-counts.
            counts = answers.expected_counts(post) + smoothing
            totals = counts.sum(2, keepdims=True)
            confusion = np.divide(counts, totals, out=np.full_like(counts, 1.0 / A), where=totals > 0)
            if fixed_mask.any():
                confusion[fixed_mask] = fixed_confusion[fixed_mask]
            class_prior = prior if prior is not None else np.maximum(post.sum(1) / n_q, TINY)
            class_prior = class_prior / class_prior.sum()

            # E-step: the posterior and the marginal log-likelihood.
            if clamp is None:
                post, objective = answers.posterior(confusion, class_prior)
            else:
                joint = answers.log_joint(confusion, class_prior)
                joint[:, known_q] += clamp
                post, objective = normalise_log_joint(joint)
            if smoothed:
                objective += float((smoothing * np.log(np.maximum(confusion[~fixed_mask], TINY))).sum())
            result.objective.append(objective)
            result.iterations = it
            if self.fixed_iterations is None and it > 1:
                gain = objective - result.objective[-2]
                if gain <= self.tol * abs(objective):
                    result.converged = True
                    break
        result.posterior, result.confusion, result.prior = post.T.copy(), confusion, class_prior
        return result


def dawid_skene(question, rater, answer, *, n_classes: int, n_answers: int,
                n_questions: int | None = None, n_raters: int | None = None,
                answer_votes: np.ndarray | None = None, **options) -> AggregationResult:
    """:class:`DawidSkene` on integer codes in long form; ``options`` are its keyword arguments."""
    answers = Answers.from_codes(question, rater, answer, n_classes=n_classes, n_answers=n_answers,
                                 n_questions=n_questions, n_raters=n_raters, answer_votes=answer_votes)
    return DawidSkene(**options).fit(answers)


def binary_log_likelihood_ratio(confusion: np.ndarray) -> np.ndarray:
    """log P(answer | yes) − log P(answer | no) per rater and answer, for 2-class fits."""
    return np.log(np.maximum(confusion[:, 1], TINY)) - np.log(np.maximum(confusion[:, 0], TINY))
