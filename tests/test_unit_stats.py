"""reports.stats, function by function, on small hand-made inputs whose answers are known independently
(a hand count, scipy, statsmodels, numpy), edges included. Fast: the quick run's guard of the statistics."""
from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import special, stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from harness.errors import HarnessError
from reports import stats as rs

A = np.array([1, 1, 1, 1, 0, 0, 1, 0, 1, 1], dtype=bool)  # 7 of 10
B = np.array([1, 0, 1, 1, 1, 0, 0, 0, 0, 1], dtype=bool)  # 5 of 10
# by hand: both right at 0, 2, 3, 9 (4); only A at 1, 6, 8 (3); only B at 4 (1); neither at 5, 7 (2)


def test_paired_counts_by_hand():
    c = rs.paired_counts(A, B)
    assert (c.both, c.only_a, c.only_b, c.neither, c.n) == (4, 3, 1, 2, 10)
    assert rs.paired_counts([1, 0], [0, 0]).as_dict() == {"both": 0, "only_a": 1, "only_b": 0, "neither": 1}


@pytest.mark.parametrize("k,n", [(0, 10), (10, 10), (1, 10), (7, 10), (1, 1), (0, 1), (499, 1000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_statsmodels_at_the_edges(k, n, confidence):
    iv = rs.wilson_interval(k, n, confidence)
    low, high = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    assert iv.low == pytest.approx(low, abs=1e-12) and iv.high == pytest.approx(high, abs=1e-12)
    assert (iv.estimate, iv.n, iv.confidence, iv.method) == (k / n, n, confidence, "wilson")
    assert iv.low <= iv.estimate <= iv.high
    if k == 0:
        assert iv.low == 0.0
    if k == n:
        assert iv.high == 1.0
    if 0 < k < n:
        assert 0.0 < iv.low and iv.high < 1.0


def test_accuracy_wilson_is_wilson_of_the_counts():
    assert rs.accuracy_wilson(A, 0.9) == rs.wilson_interval(7, 10, 0.9)
    assert rs.accuracy_wilson([0, 1, 1]) == rs.wilson_interval(2, 3)


def test_bootstrap_accuracy_seed_and_quantiles():
    correct = np.r_[np.ones(60, bool), np.zeros(40, bool)]
    iv = rs.bootstrap_accuracy(correct, 0.9, n_resamples=200_000, seed=3)
    assert (iv.estimate, iv.n, iv.confidence, iv.method) == (0.6, 100, 0.9, "percentile bootstrap")
    # resampling 100 outcomes: the count correct is Binomial(100, 0.6); its 5% and 95% quantiles
    assert iv.low == pytest.approx(stats.binom.ppf(0.05, 100, 0.6) / 100, abs=0.011)
    assert iv.high == pytest.approx(stats.binom.ppf(0.95, 100, 0.6) / 100, abs=0.011)
    many = np.arange(5000) % 7 < 4  # fine enough that two seeds' quantiles differ
    assert rs.bootstrap_accuracy(many, n_resamples=100, seed=3) == rs.bootstrap_accuracy(many, n_resamples=100, seed=3)
    assert rs.bootstrap_accuracy(many, n_resamples=100, seed=3) != rs.bootstrap_accuracy(many, n_resamples=100, seed=4)
    every = rs.bootstrap_accuracy(np.ones(5, bool))
    assert (every.low, every.high) == (1.0, 1.0)


@pytest.mark.parametrize("a,b", [(A, B), (B, A), (A, A), (np.r_[np.ones(30), np.zeros(5)], np.r_[np.zeros(30), np.ones(5)])])
def test_mcnemar_matches_statsmodels_both_ways(a, b):
    c = rs.paired_counts(a, b)
    table = [[c.both, c.only_a], [c.only_b, c.neither]]
    exact = rs.mcnemar_test(a, b)
    ref = mcnemar(table, exact=True)
    assert exact.pvalue == pytest.approx(min(1.0, ref.pvalue), abs=1e-12)
    assert exact.statistic == min(c.only_a, c.only_b)
    assert (exact.only_a, exact.only_b, exact.n, exact.method) == (c.only_a, c.only_b, len(a), "exact binomial")
    chi = rs.mcnemar_test(a, b, exact=False)
    if c.only_a + c.only_b:
        ref = mcnemar(table, exact=False, correction=True)
        assert chi.statistic == pytest.approx(ref.statistic) and chi.pvalue == pytest.approx(ref.pvalue)
    else:
        assert (chi.statistic, chi.pvalue) == (0.0, 1.0)
    assert chi.method == "chi-square, continuity corrected"


def test_mcnemar_exact_by_hand():
    # 3 against 1 discordant: P(X <= 1 | 4, 1/2) = 5/16, two-sided 10/16
    assert rs.mcnemar_test(A, B).pvalue == pytest.approx(10 / 16)
    assert rs.mcnemar_test(A, A).pvalue == 1.0


def test_paired_bootstrap_difference_estimate_and_seed():
    d = rs.paired_bootstrap_difference(A, B, confidence=0.8, n_resamples=500, seed=1)
    assert d.estimate == pytest.approx(0.2) and d.n == 10 and d.confidence == 0.8
    assert d.method == "paired percentile bootstrap"
    assert d.low <= d.estimate <= d.high
    same = rs.paired_bootstrap_difference(A, A, n_resamples=100)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)
    assert d == rs.paired_bootstrap_difference(A, B, confidence=0.8, n_resamples=500, seed=1)
    a, b = np.arange(5000) % 7 < 4, np.arange(5000) % 5 < 3
    assert rs.paired_bootstrap_difference(a, b, n_resamples=100, seed=1) != \
        rs.paired_bootstrap_difference(a, b, n_resamples=100, seed=2)


def test_paired_bootstrap_difference_converges_to_the_multinomial():
    # only A 3, only B 1 of 10: the resampled difference is (X - Y)/10 with (X, Y, rest) ~ Mult(10, .3, .1, .6)
    d = rs.paired_bootstrap_difference(A, B, confidence=0.5, n_resamples=200_000, seed=0)
    rng = np.random.default_rng(12345)
    cells = rng.multinomial(10, [0.3, 0.1, 0.6], size=200_000)
    diff = (cells[:, 0] - cells[:, 1]) / 10
    assert d.low == pytest.approx(np.quantile(diff, 0.25), abs=0.1 + 1e-9)
    assert d.high == pytest.approx(np.quantile(diff, 0.75), abs=0.1 + 1e-9)


def test_bootstrap_gap_paired_and_independent():
    ref = np.array([1, 0, 1, np.nan, 0, 1])
    rel = np.array([1, 1, np.nan, 1, 0, 1])
    g = rs.bootstrap_gap(ref, rel, n_resamples=400, seed=0)
    # by hand: relabelled 4 of 5 scored, reference 3 of 5 scored
    assert g.estimate == pytest.approx(4 / 5 - 3 / 5)
    assert (g.n, g.method) == (6, "paired percentile bootstrap")
    assert g.low <= g.estimate <= g.high
    u = rs.bootstrap_gap(ref[:5], rel, paired=False, n_resamples=400, seed=0)
    assert u.estimate == pytest.approx(4 / 5 - 2 / 4)
    assert (u.n, u.method) == (4 + 5, "independent percentile bootstrap")
    assert rs.bootstrap_gap(ref, rel, n_resamples=400, seed=5) == rs.bootstrap_gap(ref, rel, n_resamples=400, seed=5)
    with pytest.raises(HarnessError, match=r"reference \(5 samples\) and relabelled \(6 samples\)"):
        rs.bootstrap_gap(ref[:5], rel)
    with pytest.raises(HarnessError, match="excludes every sample"):
        rs.bootstrap_gap([np.nan, np.nan], [1, 0])
    with pytest.raises(HarnessError, match="1/0 per sample"):
        rs.bootstrap_gap([0.5, 1], [1, 0])


def test_pearson_and_spearman_match_scipy_with_fisher_intervals():
    x = np.array([1.0, 2.0, 3.5, 4.0, 6.0, 7.5, 8.0])
    y = np.array([2.1, 2.0, 4.2, 4.1, 7.9, 7.0, 9.5])
    for fn, ref, var in ((rs.pearson, stats.pearsonr, 1.0), (rs.spearman, stats.spearmanr, 1.06)):
        c = fn(x, y, confidence=0.9)
        r, p = ref(x, y)
        half = stats.norm.ppf(0.95) * math.sqrt(var / (len(x) - 3))
        assert c.r == pytest.approx(r) and c.pvalue == pytest.approx(p)
        assert c.low == pytest.approx(math.tanh(math.atanh(r) - half))
        assert c.high == pytest.approx(math.tanh(math.atanh(r) + half))
        assert (c.n, c.confidence, c.method) == (7, 0.9, fn.__name__)


def test_perfect_correlation_has_a_finite_interval_at_one():
    c = rs.pearson([1, 2, 3, 4], [2, 4, 6, 8])
    assert c.r == pytest.approx(1.0) and c.high == pytest.approx(1.0) and 0.99 < c.low <= 1.0


def test_compare_correlations_by_hand():
    d = rs.compare_correlations(0.5, 50, 0.3, 40)
    z = (math.atanh(0.5) - math.atanh(0.3)) / math.sqrt(1 / 47 + 1 / 37)
    assert d.z == pytest.approx(z) and d.pvalue == pytest.approx(2 * stats.norm.sf(abs(z)))
    assert (d.r1, d.n1, d.r2, d.n2) == (0.5, 50, 0.3, 40)
    assert rs.compare_correlations(0.3, 40, 0.5, 50).z == pytest.approx(-z)
    with pytest.raises(HarnessError, match="n2 3 must be an integer above 3"):
        rs.compare_correlations(0.5, 50, 0.3, 3)
    with pytest.raises(HarnessError, match="r1 1.0 must be a correlation"):
        rs.compare_correlations(1.0, 50, 0.3, 40)


def test_dependent_correlations_by_hand():
    r_xy, r_xz, r_yz, n = 0.6, 0.4, 0.5, 100
    rb = 0.25
    c = (r_yz * (1 - 2 * rb) - rb * (1 - 2 * rb - r_yz ** 2) / 2) / (1 - rb) ** 2
    z = (math.atanh(r_xy) - math.atanh(r_xz)) * math.sqrt(n - 3) / math.sqrt(2 - 2 * c)
    d = rs.compare_dependent_correlations(r_xy, r_xz, r_yz, n)
    assert d.z == pytest.approx(z) and d.pvalue == pytest.approx(2 * stats.norm.sf(z))
    assert (d.n, d.method) == (100, "Steiger (1980) Z1*")
    assert rs.compare_dependent_correlations(r_xz, r_xy, r_yz, n).z == pytest.approx(-z)
    with pytest.raises(HarnessError, match="not positive semi-definite"):
        rs.compare_dependent_correlations(0.9, -0.9, 0.9, 20)


def test_fit_line_matches_statsmodels_ols():
    x = np.array([0.0, 1.0, 2.0, 3.0, 5.0, 8.0])
    y = np.array([1.0, 2.9, 5.2, 7.1, 10.8, 17.2])
    line = rs.fit_line(x, y)
    fit = sm.OLS(y, sm.add_constant(x)).fit()
    assert line.intercept == pytest.approx(fit.params[0]) and line.slope == pytest.approx(fit.params[1])
    assert line.intercept_se == pytest.approx(fit.bse[0]) and line.slope_se == pytest.approx(fit.bse[1])
    assert line.r2 == pytest.approx(fit.rsquared) and line.n == 6


def test_find_breakpoint_is_the_least_squares_hinge_on_a_grid():
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0, 10, 24))
    y = 1 + 0.5 * x + 2.0 * np.maximum(x - 6.2, 0) + rng.normal(0, 0.05, x.size)
    bp = rs.find_breakpoint(x, y, min_side=5)

    def sse(t):
        design = np.column_stack([np.ones_like(x), x, np.maximum(x - t, 0)])
        return float(np.sum((y - design @ np.linalg.lstsq(design, y, rcond=None)[0]) ** 2))

    allowed = np.linspace(np.sort(x)[4], np.sort(x)[-5], 4001)
    best = allowed[np.argmin([sse(t) for t in allowed])]
    assert bp.breakpoint == pytest.approx(best, abs=0.01)
    assert bp.sse == pytest.approx(sse(bp.breakpoint)) and bp.sse <= min(sse(t) for t in allowed) + 1e-9
    assert (bp.n, bp.min_side) == (24, 5)
    assert abs(bp.breakpoint - 6.2) < 0.3


def test_find_breakpoint_respects_min_side():
    x = np.arange(10.0)
    y = np.r_[np.zeros(2), np.arange(8.0)]  # the true hinge at x=1 leaves only 2 points below
    bp = rs.find_breakpoint(x, y, min_side=4)
    assert 3.0 <= bp.breakpoint <= 4.0 + 1e-9  # the first gap with 4 points below
    with pytest.raises(HarnessError, match="at least 6 models on each side of 10 models"):
        rs.find_breakpoint(x, y, min_side=6)
    with pytest.raises(HarnessError, match="min_side 1"):
        rs.find_breakpoint(x, y, min_side=1)


def test_two_regimes_split_at_a_given_breakpoint_includes_it_above():
    x = np.arange(10.0)
    y = np.r_[[0.0, 1.1, 1.9, 3.2, 4.0], [5.0, 7.1, 8.9, 11.2, 13.0]]
    tr = rs.two_regimes(x, y, breakpoint=5.0)
    assert tr.breakpoint_source == "given" and tr.n == 10
    assert (tr.below.x_low, tr.below.x_high, tr.below.n) == (0.0, 4.0, 5)
    assert (tr.above.x_low, tr.above.x_high, tr.above.n) == (5.0, 9.0, 5)  # x == breakpoint is above
    assert tr.below.line == rs.fit_line(x[:5], y[:5]) and tr.above.pearson == rs.pearson(x[5:], y[5:])
    assert tr.slope_difference == pytest.approx(tr.above.line.slope - tr.below.line.slope)
    assert tr.correlation_difference == rs.compare_correlations(tr.below.pearson.r, 5, tr.above.pearson.r, 5)
    with pytest.raises(HarnessError, match="leaves 3 models at or above it"):
        rs.two_regimes(x, y, breakpoint=7.0)


def test_significance_ranks_by_hand():
    acc = [0.9, 0.8, 0.8, 0.5]
    p = np.array([[1, 0.001, 0.3, 0.001],
                  [0.001, 1, 0.9, 0.02],
                  [0.3, 0.9, 1, 0.001],
                  [0.001, 0.02, 0.001, 1]])
    sr = rs.significance_ranks(acc, p, alpha=0.05)
    # Holm over the 6 pairs: sorted .001 x3, .02, .3, .9 -> .006, .006, .006, .06, .6, .9
    assert sr.adjusted_pvalues[0][1] == pytest.approx(0.006) and sr.adjusted_pvalues[1][3] == pytest.approx(0.06)
    assert sr.adjusted_pvalues[0][2] == pytest.approx(0.6) and sr.adjusted_pvalues[2][1] == pytest.approx(0.9)
    assert all(sr.adjusted_pvalues[i][i] == 1.0 for i in range(4))
    # model 1 (0.8) is significantly below model 0; model 2 (0.8) is not; model 3 below 0 and 2, not 1
    assert sr.ranks == (1, 2, 1, 3)
    assert sr.alpha == 0.05
    one = rs.significance_ranks([0.5], [[1.0]])
    assert one.ranks == (1,) and one.adjusted_pvalues == ((1.0,),)


def test_logit_and_expit_are_scipys():
    p = np.array([0.01, 0.25, 0.5, 0.9])
    assert np.allclose(rs.logit(p), special.logit(p))
    assert np.allclose(rs.expit([-3.0, 0.0, 2.5]), special.expit([-3.0, 0.0, 2.5]))


def test_effective_robustness_line_and_estimates_by_hand():
    ref = np.array([0.6, 0.7, 0.8, 0.9])
    shifted = np.array([0.4, 0.5, 0.65, 0.75])
    er = rs.effective_robustness(ref, shifted, 1000, 500, confidence=0.9, n_resamples=300, seed=0)
    slope, intercept = np.polyfit(special.logit(ref), special.logit(shifted), 1)
    assert er.slope.estimate == pytest.approx(slope) and er.intercept.estimate == pytest.approx(intercept)
    predicted = special.expit(intercept + slope * special.logit(ref))
    assert er.predicted == pytest.approx(tuple(predicted))
    assert [e.estimate for e in er.effective] == pytest.approx(list(shifted - predicted))
    assert er.n == 4 and all(e.n == 4 and e.confidence == 0.9 for e in er.effective)
    assert er.slope.low <= er.slope.estimate <= er.slope.high
    # one sample behind each shifted accuracy is few, not wrong
    one = rs.effective_robustness(ref, [0.0, 1.0, 1.0, 0.0], 1000, 1, n_resamples=100)
    assert one.n == 4 and one.predicted[0] < 1
    # an accuracy of 1 is clipped half a sample below 1 before the logit
    edge = rs.effective_robustness([0.5, 0.7, 1.0], [0.4, 0.6, 0.9], 10, 10, n_resamples=100)
    x = special.logit([0.5, 0.7, 0.95])
    assert edge.slope.estimate == pytest.approx(np.polyfit(x, special.logit([0.4, 0.6, 0.9]), 1)[0])


def test_agreement_on_the_line_by_hand():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    ref = np.array([[0, 1, 2, 0, 1, 2, 0, 0],   # 7/8
                    [0, 1, 2, 0, 0, 0, 0, 1],   # 6/8
                    [0, 2, 2, 1, 1, 0, 0, 0],   # 4/8
                    [1, 1, 1, 1, 1, 1, 1, 1]])  # 3/8
    shift = np.array([[0, 1, 2, 0, 1, 0, 1, 1],  # 6/8
                      [0, 1, 0, 0, 0, 0, 1, 1],  # 4/8
                      [1, 2, 2, 1, 1, 0, 1, 0],  # 2/8
                      [0, 0, 0, 0, 0, 0, 0, 0]])  # 3/8
    a = rs.agreement_on_the_line(ref, labels, shift, labels)
    assert a.reference_accuracy == (7 / 8, 6 / 8, 4 / 8, 3 / 8)
    assert a.shifted_accuracy == (6 / 8, 4 / 8, 2 / 8, 3 / 8)
    assert (a.n_pairs, a.n) == (6, 4)
    # pairwise agreement by hand, pairs (0,1), (0,2), (0,3), (1,2), (1,3), (2,3)
    agree_ref = np.array([5, 5, 2, 4, 2, 2]) / 8
    agree_shift = np.array([6, 4, 3, 2, 5, 2]) / 8
    expected = stats.linregress(stats.norm.ppf(agree_ref), stats.norm.ppf(agree_shift))
    assert a.agreement_line.slope == pytest.approx(expected.slope)
    assert a.agreement_line.intercept == pytest.approx(expected.intercept)
    acc_line = stats.linregress(stats.norm.ppf(a.reference_accuracy), stats.norm.ppf(a.shifted_accuracy))
    assert a.accuracy_line.slope == pytest.approx(acc_line.slope)
    predicted = stats.norm.cdf(expected.intercept + expected.slope * stats.norm.ppf(a.reference_accuracy))
    assert a.predicted_accuracy == pytest.approx(tuple(predicted))
    assert a.mean_absolute_error == pytest.approx(np.abs(predicted - a.shifted_accuracy).mean())
    # an accuracy of 1 is clipped half a sample below 1 before the probit
    perfect = rs.agreement_on_the_line(np.r_[[labels], ref[1:]], labels, shift, labels)
    assert perfect.accuracy_line == rs.fit_line(stats.norm.ppf([15 / 16, 6 / 8, 4 / 8, 3 / 8]),
                                                stats.norm.ppf(a.shifted_accuracy))


@pytest.mark.parametrize("call,message", [
    (lambda: rs.wilson_interval(3, 0), "n 0 must be a positive integer"),
    (lambda: rs.wilson_interval(4, 3), "k 4 must be an integer between 0 and n=3"),
    (lambda: rs.wilson_interval(1, 3, confidence=1.0), "confidence 1.0 must be a number strictly between"),
    (lambda: rs.accuracy_wilson([]), "correct is empty"),
    (lambda: rs.accuracy_wilson([[1, 0]]), "1-d array"),
    (lambda: rs.accuracy_wilson([1, 2]), "only True/False"),
    (lambda: rs.bootstrap_accuracy([1, 0], n_resamples=99), "n_resamples 99 must be an integer of at least 100"),
    (lambda: rs.paired_counts([1, 0], [1]), r"a_correct \(2 samples\) and b_correct \(1 samples\)"),
    (lambda: rs.pearson([1, 2, 3], [1, 2, 3]), "at least 4 models, got 3"),
    (lambda: rs.pearson([1, 1, 1, 1], [1, 2, 3, 4]), "must each vary"),
    (lambda: rs.pearson([1, 2, np.nan, 4], [1, 2, 3, 4]), "x holds NaN"),
    (lambda: rs.significance_ranks([0.5, 0.6], [[1, 0.5], [0.4, 1]]), "symmetric matrix"),
    (lambda: rs.significance_ranks([0.5, 0.6], [[1.0]]), "2x2 matrix for 2 models"),
    (lambda: rs.effective_robustness([0.5, 0.6], [0.4, 0.5], 10, 10), "at least 3 models"),
    (lambda: rs.effective_robustness([0.5, 0.6, 1.2], [0.4, 0.5, 0.6], 10, 10), "fractions between 0 and 1"),
    (lambda: rs.effective_robustness([0.5, 0.5, 0.5], [0.4, 0.5, 0.6], 10, 10), "same reference accuracy"),
    (lambda: rs.effective_robustness([0.5, 0.6, 0.7], [0.4, 0.5, 0.6], 0, 10), "must be positive"),
    (lambda: rs.agreement_on_the_line(np.eye(3), np.zeros(3), np.eye(3), np.zeros(3)),
     "at least 4 models; got 3"),
    (lambda: rs.agreement_on_the_line(np.zeros((4, 3)), np.zeros(2), np.zeros((4, 3)), np.zeros(3)),
     r"labels \(2 and 3\) must cover"),
])
def test_bad_input_names_what_was_expected(call, message):
    with pytest.raises(HarnessError, match=message):
        call()
