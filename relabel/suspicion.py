"""How suspect a given label is: evidence from the zoo on each sample and from the whole population.

On ImageNet five models agreeing on another class are right about the label only about half the
time: the rest are ambiguous class pairs (laptop / notebook) and images holding several objects,
where people keep the given label. What tells them apart is in the population's own confusion
statistics: how often the zoo moves images of class g to class b, and b to g; how well the zoo
agrees with class g's labels at all; how often b is predicted beyond its share of labels.

:func:`sample_features` turns a :class:`~relabel.candidates.CandidateAnswers` and its rater fit
into one row of numbers per sample (the given label ``g``, the most probable other class ``b``):

- the rater model's posterior on g and b, the top-1 votes for each, how many raters answered;
- per rater, the score it gave g and b where they are in its list (a run with scores is more than
  a vote; a top-k list says where g fell below the first);
- the pair's and the classes' population statistics (each sample's own answers left out of the
  pair counts).

:func:`reference_outcomes` reads a reference label set (ReaL) into three outcomes per sample:
the given label is wrong (not among the reference labels); it holds but the image has other
classes too (multi-label); it holds alone. A suspicion model fitted on such a reference
(:mod:`relabel.error_model`) is only ever applied to samples it was not fitted on.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .candidates import CandidateAnswers, CandidateFit

WRONG, MULTI, HOLDS = 0, 1, 2
OUTCOMES = ("label wrong", "multi-label", "models wrong")


def alternative(c: CandidateAnswers, posterior: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(entry of the given label, entry of the most probable other class or −1, posterior of the
    given label) per sample; ties go to the lower class."""
    n = c.n_samples
    given_entry = np.flatnonzero(c.entry_is_given)
    other = ~c.entry_is_given
    order = np.lexsort((c.entry_class, -posterior, ~other, c.entry_sample))  # per sample: others first, best first
    first = order[np.searchsorted(c.entry_sample[order], np.arange(n))]
    alt_entry = np.where(other[first], first, -1)
    return given_entry, alt_entry, posterior[given_entry]


def pair_codes(given: np.ndarray, alt_class: np.ndarray, K: int) -> np.ndarray:
    return given * K + np.maximum(alt_class, 0)


def sample_features(c: CandidateAnswers, fit: CandidateFit) -> pd.DataFrame:
    """One row per sample of the evidence above; columns named for what they measure."""
    K, n = c.n_classes, c.n_samples
    given_entry, alt_entry, p_given = alternative(c, fit.posterior)
    has_alt = alt_entry >= 0
    alt_safe = np.where(has_alt, alt_entry, given_entry)
    b = np.where(has_alt, c.entry_class[alt_safe], -1)
    g = c.given
    votes = c.votes()
    v_g, v_b = votes[given_entry], np.where(has_alt, votes[alt_safe], 0)
    answered = (c.top1 >= 0).sum(0)
    columns = {
        "logit_p_wrong": logit(1.0 - p_given),
        "p_alt": np.where(has_alt, fit.posterior[alt_safe], 0.0),
        "votes_given": v_g, "votes_alt": v_b, "raters": answered,
        "share_given": v_g / np.maximum(answered, 1), "share_alt": v_b / np.maximum(answered, 1),
        "candidates": np.diff(c.sample_start),
    }
    for r, name in enumerate(c.raters):
        for what, entry, ok in (("given", given_entry, np.ones(n, bool)), ("alt", alt_safe, has_alt)):
            listed = (c.entry_rank[r, entry] >= 0) & ok
            columns[f"score_{what}[{name}]"] = np.where(listed, np.nan_to_num(c.entry_score[r, entry], nan=0.5), 0.0)
            columns[f"top1_{what}[{name}]"] = ((c.entry_rank[r, entry] == 0) & ok).astype(float)

    # Population statistics of the (given, alternative) pair and of both classes.
    label_count = np.bincount(g, minlength=K).astype(float)
    mean_raters = max(answered.mean(), 1.0)
    answered_votes = np.bincount(g, weights=v_g, minlength=K)
    class_agreement = answered_votes / np.maximum(np.bincount(g, weights=answered, minlength=K), 1.0)
    predicted = np.bincount(c.top1[c.top1 >= 0], minlength=K) / mean_raters
    codes = pair_codes(g, b, K)
    strong = has_alt & (v_b * 2 >= answered) & (v_b > 0)
    # Votes for b on every sample labelled g (answers of this sample left out), and the reverse.
    entry_pairs = c.given[c.entry_sample] * K + c.entry_class
    pair_keys = np.unique(entry_pairs[~c.entry_is_given])
    vote_sum = np.bincount(np.searchsorted(pair_keys, entry_pairs[~c.entry_is_given]),
                           weights=votes[~c.entry_is_given], minlength=len(pair_keys))
    strong_keys, strong_counts = np.unique(codes[strong], return_counts=True)

    def lookup(keys, values, query):
        pos = np.clip(np.searchsorted(keys, query), 0, max(len(keys) - 1, 0))
        return np.where((len(keys) > 0) & (keys[pos] == query), values[pos], 0.0) if len(keys) else np.zeros(len(query))

    reverse = pair_codes(np.maximum(b, 0), g, K)
    pair_votes = lookup(pair_keys, vote_sum, codes) - v_b
    reverse_votes = lookup(pair_keys, vote_sum, reverse)
    b_safe = np.maximum(b, 0)
    columns.update({
        "log_pair_rate": np.log((pair_votes + 1) / (label_count[g] * mean_raters + 1)) * has_alt,
        "log_reverse_rate": np.log((reverse_votes + 1) / (label_count[b_safe] * mean_raters + 1)) * has_alt,
        "log_pair_strong": np.log1p(lookup(strong_keys, strong_counts.astype(float), codes) - strong) * has_alt,
        "log_reverse_strong": np.log1p(lookup(strong_keys, strong_counts.astype(float), reverse)) * has_alt,
        "class_agreement_given": class_agreement[g],
        "class_agreement_alt": np.where(has_alt, class_agreement[b_safe], 0.0),
        "log_alt_predicted_per_label": np.where(has_alt, np.log((predicted[b_safe] + 1) / (label_count[b_safe] + 1)), 0.0),
        "skill_given": (fit.class_skill[:, g] * (c.top1 >= 0)).sum(0) / np.maximum(answered, 1),
        "skill_alt": np.where(has_alt, (fit.class_skill[:, b_safe] * (c.top1 >= 0)).sum(0) / np.maximum(answered, 1), 0.0),
    })
    frame = pd.DataFrame(columns)
    frame.insert(0, "alt", b)
    return frame


def logit(p: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    p = np.clip(p, eps, 1 - eps)
    return np.log(p / (1 - p))


def reference_outcomes(given: np.ndarray, reference: list) -> np.ndarray:
    """Per sample: WRONG (given label not among the reference labels), MULTI (among them, with
    others), HOLDS (the only one), −1 where the reference has no labels (left out, as ReaL does)."""
    out = np.full(len(given), -1, np.int64)
    for i, (g, labels) in enumerate(zip(given, reference)):
        if labels is None or len(labels) == 0:
            continue
        labels = set(int(x) for x in labels)
        out[i] = WRONG if int(g) not in labels else (MULTI if len(labels) > 1 else HOLDS)
    return out


def kinds_from_votes(disputed: np.ndarray, votes_given: np.ndarray, votes_likely: np.ndarray) -> np.ndarray:
    """The kind of each suspect when no reference was learnt from: ``label wrong`` where no rater
    kept the given label, ``multi-label`` where the raters split and more of them left it than
    kept it, ``models wrong`` where at least as many kept it as named the likely class; ``none``
    where no rater disputes the label."""
    kind = np.where(votes_given == 0, OUTCOMES[WRONG],
                    np.where(votes_likely > votes_given, OUTCOMES[MULTI], OUTCOMES[HOLDS]))
    return np.where(disputed, kind, "none").astype(object)


def kinds_from_probabilities(disputed: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """The most probable of the three outcomes (columns WRONG, MULTI, HOLDS) for each disputed
    sample, ``none`` for the others."""
    return np.where(disputed, np.asarray(OUTCOMES, object)[np.argmax(proba, 1)], "none").astype(object)


def rank_within_kind(kind: np.ndarray, strength: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """1, 2, ... within each kind, strongest first (ties by key)."""
    order = np.lexsort((keys, -strength, kind.astype(str)))
    out = np.empty(len(kind), np.int64)
    sorted_kind = kind.astype(str)[order]
    starts = np.r_[0, np.flatnonzero(sorted_kind[1:] != sorted_kind[:-1]) + 1]
    position = np.arange(len(kind)) - np.repeat(starts, np.diff(np.r_[starts, len(kind)]))
    out[order] = position + 1
    return out
