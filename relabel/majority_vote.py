"""Majority vote behind the aggregation interface: the posterior is each question's vote share.

Answers vote for the classes as ``Answers.answer_votes`` says (ReaL's "maybe" is half a vote
for no and for yes). So that a vote is scored on the same scale as the EM models, the result
also holds what one M-step makes of the vote shares — each rater's confusion matrix (their
answers counted against the vote shares) and the class prior (the mean share) — and the
marginal log-likelihood of the answers under them; no iteration (``iterations == 0``).
"""
from __future__ import annotations

import numpy as np

from .aggregation import TINY, AggregationResult, Aggregator, Answers


class MajorityVote(Aggregator):
    name = "majority-vote"

    def fit(self, answers: Answers) -> AggregationResult:
        shares = answers.majority_posterior()            # classes × questions
        counts = answers.expected_counts(shares)
        totals = counts.sum(2, keepdims=True)
        confusion = np.divide(counts, totals, out=np.full_like(counts, 1.0 / answers.n_answers),
                              where=totals > 0)
        prior = np.maximum(shares.mean(1), TINY)
        prior /= prior.sum()
        _, log_likelihood = answers.posterior(confusion, prior)
        return AggregationResult(shares.T.copy(), confusion, prior, [log_likelihood], 0, True)
