"""The label-error ranking on candidate classes (:mod:`relabel.candidates`), for any number of classes.

Two suspicions, one table:

- without a reference, the rater model's posterior that the given label is wrong
  (:func:`relabel.candidates.fit_candidates`); the samples are ranked by it (rounded to 6 digits:
  on 1,000 classes it is near 1 for every sample the zoo disputes), then by how few raters kept
  the given label, then by how much score the others gave their class, then by key. Its kind comes
  from the votes (:func:`relabel.suspicion.kinds_from_votes`);
- with a reference label set on the same samples (``learn_from``), the cross-fitted model of
  :mod:`relabel.error_model`: probabilities of the three kinds, each sample scored by a model
  fitted on the other half of the samples; ranked by ``p_wrong``, then key.

Columns: ``rank``, ``key``, ``given``, ``kind`` (label wrong / multi-label / models wrong / none),
``kind_rank`` (1 = the strongest of its kind), ``p_wrong`` (the suspicion), ``p_multi`` and
``p_models_wrong`` (with a reference; else NaN), ``likely`` / ``p_likely`` and ``second`` /
``p_second`` (the rater model's two most probable candidates), ``models_likely`` / ``models_given`` (top-1 votes), ``raters``, ``agreeing`` (names of
the raters whose first class is ``likely``), ``fold`` (the half a cross-fitted sample was scored
in; −1 without a reference).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .candidates import CandidateAnswers, CandidateFit
from .suspicion import (MULTI, HOLDS, WRONG, kinds_from_probabilities, kinds_from_votes, rank_within_kind,
                        sample_features)


def top_two(c: CandidateAnswers, posterior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entries of each sample's most and second most probable candidate (−1 if it has only one)."""
    order = np.lexsort((c.entry_class, -posterior, c.entry_sample))
    start = c.sample_start[:-1]
    first = order[start]
    has_second = np.diff(c.sample_start) > 1
    second = np.where(has_second, order[np.minimum(start + 1, len(order) - 1)], -1)
    return first, second


def rank_candidates(c: CandidateAnswers, fit: CandidateFit, outcome: np.ndarray | None = None) -> pd.DataFrame:
    """The ranked table above; ``outcome`` (per sample WRONG / MULTI / HOLDS / −1, from
    :func:`relabel.suspicion.reference_outcomes`) switches on the cross-fitted suspicion."""
    from .error_model import cross_fitted

    features = sample_features(c, fit)
    first, second = top_two(c, fit.posterior)
    given_entry = np.flatnonzero(c.entry_is_given)
    votes = c.votes()
    keep = votes[given_entry]
    likely_votes = votes[first]
    answered = (c.top1 >= 0).sum(0)
    disputed = keep < answered
    agreeing = [[c.raters[r] for r in np.flatnonzero(c.top1[:, i] == c.entry_class[first[i]])]
                for i in range(c.n_samples)]
    table = pd.DataFrame({
        "key": c.keys, "given": c.given,
        "likely": c.entry_class[first], "p_likely": fit.posterior[first],
        "second": np.where(second >= 0, c.entry_class[np.maximum(second, 0)], -1),
        "p_second": np.where(second >= 0, fit.posterior[np.maximum(second, 0)], 0.0),
        "models_likely": likely_votes, "models_given": keep, "raters": answered, "agreeing": agreeing,
    })
    if outcome is None:
        p_wrong = np.round(1.0 - fit.posterior[given_entry], 6)
        dissent = features[[col for col in features if col.startswith("score_alt[")]].sum(axis=1).to_numpy()
        table.insert(2, "kind", kinds_from_votes(disputed, keep, likely_votes))
        table.insert(3, "p_wrong", p_wrong)
        table.insert(4, "p_multi", np.nan)
        table.insert(5, "p_models_wrong", np.nan)
        table["fold"] = -1
        order = np.lexsort((c.keys, -np.round(dissent, 6), keep, -p_wrong))
        strength = np.empty(c.n_samples)
        strength[order] = -np.arange(c.n_samples)  # within a kind, the table's own order
    else:
        fitted = cross_fitted(features, c.given, outcome, c.n_classes)
        proba = fitted[["p_wrong", "p_multi", "p_models_wrong"]].to_numpy()
        proba = np.round(proba, 9)
        table.insert(2, "kind", kinds_from_probabilities(disputed, proba[:, [WRONG, MULTI, HOLDS]]))
        table.insert(3, "p_wrong", proba[:, 0])
        table.insert(4, "p_multi", proba[:, 1])
        table.insert(5, "p_models_wrong", proba[:, 2])
        table["fold"] = fitted["fold"].to_numpy()
        order = np.lexsort((c.keys, -proba[:, 0]))
        strength = proba[np.arange(c.n_samples), np.select(
            [table["kind"] == "multi-label", table["kind"] == "models wrong"], [1, 2], 0)]
    table.insert(3, "kind_rank", rank_within_kind(table["kind"].to_numpy(), strength, c.keys))
    table = table.iloc[order].reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table
