"""One-coin Dawid–Skene (Zhang, Chen, Zhou & Jordan 2016): one accuracy per rater.

A rater answers the true class with probability ``s`` (their skill) and each of the other
K − 1 classes with probability ``(1 − s) / (K − 1)``: Dawid–Skene with every confusion
matrix tied to one number, so it needs answers that are classes (``n_answers == n_classes``)
and far fewer answers per rater than the full model's K × K matrix.

EM on the marginal log-likelihood, from the soft majority vote, as crowd-kit's
``OneCoinDawidSkene`` (same start, same update order, so the two agree iteration by
iteration; crowd-kit clips each confusion cell to [1e-10, 1 − 1e-10], we floor logs at the
smallest float):

- M-step: a rater's skill is the posterior mass of the class they answered, averaged over
  their answers (the exact maximiser of the expected complete log-likelihood, so the
  objective cannot fall): the diagonal of Dawid–Skene's expected counts over their total;
  the class prior is the mean posterior;
- E-step: Dawid–Skene's, with the tied confusion matrices.
"""
from __future__ import annotations

import numpy as np

from harness.errors import HarnessError

from .aggregation import TINY, AggregationResult, Aggregator, Answers


def one_coin_confusion(skill: np.ndarray, n_classes: int) -> np.ndarray:
    """raters × classes × classes: ``skill`` on the diagonal, the rest spread evenly."""
    confusion = np.repeat(((1.0 - skill) / (n_classes - 1))[:, None, None], n_classes, 1).repeat(n_classes, 2)
    confusion[:, np.arange(n_classes), np.arange(n_classes)] = skill[:, None]
    return confusion


class OneCoinDawidSkene(Aggregator):
    """One skill per rater; stops when the log-likelihood rises by less than ``tol × |it|``,
    or after exactly ``fixed_iterations`` iterations."""

    name = "one-coin"

    def __init__(self, *, max_iter: int = 500, tol: float = 1e-10, fixed_iterations: int | None = None):
        if fixed_iterations is not None and fixed_iterations < 1:
            raise HarnessError(f"fixed_iterations must be >= 1, got {fixed_iterations}")
        self.max_iter, self.tol, self.fixed_iterations = max_iter, tol, fixed_iterations

    def fit(self, answers: Answers) -> AggregationResult:
        if not answers.answers_are_classes:
            raise HarnessError(f"the one-coin model needs answers that are the classes; got {answers.n_answers} "
                               f"answers for {answers.n_classes} classes (use dawid-skene)")
        n_q, n_r, K = answers.n_questions, answers.n_raters, answers.n_classes
        per_rater = np.maximum(answers.cell_totals.reshape(n_r, K).sum(1), 1.0)
        post = answers.majority_posterior()             # classes × questions
        result = AggregationResult(post, np.empty((n_r, K, K)), np.empty(K))
        limit = self.fixed_iterations or self.max_iter
        for it in range(1, limit + 1):
            skill = np.trace(answers.expected_counts(post), axis1=1, axis2=2) / per_rater
            confusion = one_coin_confusion(skill, K)
            prior = np.maximum(post.sum(1) / n_q, TINY)
            prior /= prior.sum()
            post, objective = answers.posterior(confusion, prior)
            result.objective.append(objective)
            result.iterations = it
            if self.fixed_iterations is None and it > 1:
                if objective - result.objective[-2] <= self.tol * abs(objective):
                    result.converged = True
                    break
        result.posterior, result.confusion, result.prior = post.T.copy(), confusion, prior
        return result
