"""Properties of reports.stats on random inputs (hypothesis): agreement with scipy / statsmodels / numpy,
and invariants (a seed reproduces, permuting models permutes results, intervals contain the estimate).
Derandomized, so every run draws the same examples."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from reports import stats as rs

PROPS = settings(max_examples=30, deadline=None, database=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])

confidences = st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99])
outcomes = st.lists(st.booleans(), min_size=1, max_size=60)


@st.composite
def paired_outcomes(draw):
    a = draw(outcomes)
    b = draw(st.lists(st.booleans(), min_size=len(a), max_size=len(a)))
    return np.array(a), np.array(b)


@st.composite
def xy(draw, min_size=4, max_size=30):
    n = draw(st.integers(min_size, max_size))
    floats = st.floats(-100, 100, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 3))
    x = np.array(draw(st.lists(floats, min_size=n, max_size=n)))
    y = np.array(draw(st.lists(floats, min_size=n, max_size=n)))
    assume(np.ptp(x) > 1e-3 and np.ptp(y) > 1e-3)
    return x, y


@PROPS
@given(n=st.integers(1, 5000), data=st.data(), confidence=confidences)
def test_wilson_is_statsmodels_and_contains_the_estimate(n, data, confidence):
    k = data.draw(st.integers(0, n))
    iv = rs.wilson_interval(k, n, confidence)
    low, high = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    assert iv.low == pytest.approx(low, abs=1e-9) and iv.high == pytest.approx(high, abs=1e-9)
    assert 0.0 <= iv.low <= iv.estimate <= iv.high <= 1.0


@PROPS
@given(pair=paired_outcomes(), exact=st.booleans())
def test_mcnemar_is_statsmodels_and_symmetric(pair, exact):
    a, b = pair
    c = rs.paired_counts(a, b)
    assert c.n == len(a) and c.both + c.only_a == a.sum() and c.both + c.only_b == b.sum()
    test = rs.mcnemar_test(a, b, exact=exact)
    swapped = rs.mcnemar_test(b, a, exact=exact)
    assert (swapped.only_a, swapped.only_b, swapped.n) == (c.only_b, c.only_a, c.n)
    assert (swapped.statistic, swapped.pvalue) == pytest.approx((test.statistic, test.pvalue))
    if c.only_a + c.only_b:
        ref = mcnemar([[c.both, c.only_a], [c.only_b, c.neither]], exact=exact, correction=True)
        assert test.pvalue == pytest.approx(min(1.0, ref.pvalue), abs=1e-9)
    assert 0.0 <= test.pvalue <= 1.0


@PROPS
@given(pair=paired_outcomes(), seed=st.integers(0, 2**32 - 1), confidence=confidences)
def test_paired_bootstrap_reproduces_and_mirrors_in_its_estimate(pair, seed, confidence):
    a, b = pair
    d = rs.paired_bootstrap_difference(a, b, confidence, n_resamples=200, seed=seed)
    assert d == rs.paired_bootstrap_difference(a, b, confidence, n_resamples=200, seed=seed)
    assert d.estimate == pytest.approx(a.mean() - b.mean())
    assert rs.paired_bootstrap_difference(b, a, confidence, n_resamples=200, seed=seed).estimate == \
        pytest.approx(-d.estimate)
    assert -1.0 <= d.low <= d.high <= 1.0


@PROPS
@given(pair=paired_outcomes(), seed=st.integers(0, 1000))
def test_bootstrap_gap_without_exclusions_is_the_paired_difference(pair, seed):
    """No NaN: the gap of b over a is the paired difference of b and a (same estimate, same n)."""
    a, b = pair
    g = rs.bootstrap_gap(a.astype(float), b.astype(float), n_resamples=200, seed=seed)
    assert g.estimate == pytest.approx(b.mean() - a.mean()) and g.n == len(a)
    assert -1.0 <= g.low <= g.high <= 1.0


@PROPS
@given(data=xy(), confidence=confidences)
def test_correlations_are_scipys_and_symmetric_in_x_and_y(data, confidence):
    x, y = data
    for fn, ref in ((rs.pearson, stats.pearsonr), (rs.spearman, stats.spearmanr)):
        c = fn(x, y, confidence)
        r, p = ref(x, y)
        assume(np.isfinite(r))
        assert c.r == pytest.approx(r, abs=1e-9) and c.pvalue == pytest.approx(p, abs=1e-9)
        assert c.low - 1e-9 <= c.r <= c.high + 1e-9 and -1 <= c.low and c.high <= 1
        swapped = fn(y, x, confidence)
        assert swapped.r == pytest.approx(c.r, abs=1e-9) and swapped.low == pytest.approx(c.low, abs=1e-9)
        negated = fn(-x, y, confidence)
        assert negated.r == pytest.approx(-c.r, abs=1e-9) and negated.low == pytest.approx(-c.high, abs=1e-6)


@PROPS
@given(data=xy())
def test_fit_line_is_numpy_polyfit(data):
    x, y = data
    line = rs.fit_line(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    assert line.slope == pytest.approx(slope, rel=1e-6, abs=1e-6)
    assert line.intercept == pytest.approx(intercept, rel=1e-6, abs=1e-6)
    assert 0.0 <= line.r2 <= 1.0 + 1e-12 and line.n == len(x)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment as the textbook states it (statsmodels' own, checked once below, runs
    gc.collect() on every call: 0.4 s each here)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = np.empty(len(p)), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def test_the_textbook_holm_is_statsmodels():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5, 0.04])
    assert np.allclose(holm(p), multipletests(p, method="holm")[1])


@PROPS
@given(m=st.integers(2, 7), data=st.data(), alpha=st.sampled_from([0.01, 0.05, 0.1]))
def test_significance_ranks_are_holm_and_permute_with_the_models(m, data, alpha):
    acc = np.array(data.draw(st.lists(st.sampled_from([0.5, 0.6, 0.7, 0.8]), min_size=m, max_size=m)))
    upper = data.draw(st.lists(st.floats(0, 1), min_size=m * (m - 1) // 2, max_size=m * (m - 1) // 2))
    p = np.ones((m, m))
    iu = np.triu_indices(m, 1)
    p[iu] = upper
    p[(iu[1], iu[0])] = upper
    sr = rs.significance_ranks(acc, p, alpha)
    adjusted = np.array(sr.adjusted_pvalues)
    assert np.allclose(adjusted[iu], holm(p[iu]))
    for i in range(m):  # 1 + the number of better models whose adjusted p is below alpha
        assert sr.ranks[i] == 1 + sum(acc[j] > acc[i] and adjusted[i, j] < alpha for j in range(m))
    order = np.array(data.draw(st.permutations(range(m))))
    permuted = rs.significance_ranks(acc[order], p[np.ix_(order, order)], alpha)
    assert permuted.ranks == tuple(sr.ranks[i] for i in order)


@PROPS
@given(m=st.integers(3, 8), data=st.data(), seed=st.integers(0, 1000))
def test_effective_robustness_permutes_with_the_models_and_reproduces(m, data, seed):
    acc = st.floats(0.05, 0.95).map(lambda v: round(v, 3))
    ref = np.array(data.draw(st.lists(acc, min_size=m, max_size=m, unique=True)))
    shifted = np.array(data.draw(st.lists(acc, min_size=m, max_size=m)))
    er = rs.effective_robustness(ref, shifted, 1000, 500, n_resamples=100, seed=seed)
    assert er == rs.effective_robustness(ref, shifted, 1000, 500, n_resamples=100, seed=seed)
    slope, intercept = np.polyfit(rs.logit(ref), rs.logit(shifted), 1)
    assert er.slope.estimate == pytest.approx(slope, rel=1e-6, abs=1e-9)
    order = np.array(data.draw(st.permutations(range(m))))
    permuted = rs.effective_robustness(ref[order], shifted[order], 1000, 500, n_resamples=100, seed=seed)
    assert permuted.predicted == pytest.approx(tuple(er.predicted[i] for i in order))
    assert [e.estimate for e in permuted.effective] == pytest.approx([er.effective[i].estimate for i in order])
    for e, p, s in zip(er.effective, er.predicted, shifted):
        assert e.estimate == pytest.approx(s - p)
