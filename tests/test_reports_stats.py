"""reports.stats against direct scipy / statsmodels computations, on the real ImageNet and timm data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from harness.errors import HarnessError
from reports import stats as rs


@pytest.fixture(scope="module")
def original_correct(shared_data) -> dict[str, np.ndarray]:
    """Per-image top-1 correctness on the original labels, files sorted by name (read here with pandas)."""
    folder = shared_data / "imagenet"
    synsets = (folder / "imagenet_synsets.txt").read_text().split()
    index = {s: i for i, s in enumerate(synsets)}
    truth = pd.read_csv(folder / "LOC_val_solution.csv")
    truth["label"] = truth.PredictionString.str.split().str[0].map(index)
    truth = truth.set_index("ImageId").label.sort_index()
    out = {}
    for model in ("ResNet50", "ViT", "DINO", "SimCLR"):
        pred = pd.read_csv(folder / "model_predictions" / f"{model}.csv")
        pred.index = pred.file_name.str.replace(".JPEG", "", regex=False)
        out[model] = (pred.predicted_class.reindex(truth.index) == truth).to_numpy()
    return out


@pytest.fixture(scope="module")
def timm(shared_data) -> pd.DataFrame:
    folder = shared_data / "timm-results"
    orig = pd.read_csv(folder / "results-imagenet.csv", thousands=",")
    real = pd.read_csv(folder / "results-imagenet-real.csv", thousands=",")
    # timm lists some models at several input sizes: a row is a (model, img_size) pair, as in reports
    return orig.merge(real, on=["model", "img_size"], suffixes=("_orig", "_real"), validate="1:1")


def test_accuracies_are_the_published_ones(original_correct):
    assert original_correct["ResNet50"].size == 50_000
    assert round(original_correct["ResNet50"].mean() * 100, 2) == 76.13
    assert round(original_correct["ViT"].mean() * 100, 2) == 78.01


def test_wilson_matches_statsmodels(original_correct):
    for correct in original_correct.values():
        k, n = int(correct.sum()), correct.size
        for confidence in (0.9, 0.95, 0.99):
            got = rs.accuracy_wilson(correct, confidence)
            low, high = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
            assert (got.low, got.high) == pytest.approx((low, high), abs=1e-12)
            assert got.n == n and got.estimate == k / n
    for k, n in ((0, 7), (7, 7), (1, 3)):
        low, high = proportion_confint(k, n, method="wilson")
        got = rs.wilson_interval(k, n)
        assert (got.low, got.high) == pytest.approx((low, high), abs=1e-12)


def test_bootstrap_accuracy_matches_scipy_bootstrap(original_correct):
    sample = original_correct["DINO"][:3000]
    ours = rs.bootstrap_accuracy(sample, n_resamples=20_000, seed=1)
    ref = stats.bootstrap((sample.astype(float),), np.mean, n_resamples=20_000, method="percentile",
                          rng=np.random.default_rng(2), vectorized=True, batch=2000).confidence_interval
    # both are Monte Carlo estimates of the same quantiles; their error is ~3e-4 here
    assert ours.low == pytest.approx(ref.low, abs=1.5e-3)
    assert ours.high == pytest.approx(ref.high, abs=1.5e-3)
    assert ours.low < sample.mean() < ours.high


def test_bootstrap_accuracy_converges_to_binomial_quantiles(original_correct):
    correct = original_correct["SimCLR"]
    n, k = correct.size, int(correct.sum())
    ours = rs.bootstrap_accuracy(correct, n_resamples=50_000, seed=3)
    exact = stats.binom.ppf([0.025, 0.975], n, k / n) / n
    # the Monte Carlo error of a 2.5% quantile here is about 1.2 samples
    assert (ours.low, ours.high) == pytest.approx(tuple(exact), abs=5 / n)
    again = rs.bootstrap_accuracy(correct, n_resamples=50_000, seed=3)
    assert again == ours  # seeded: reports regenerate byte-identical


def test_paired_bootstrap_matches_scipy_paired_bootstrap(original_correct):
    a, b = original_correct["ViT"][:3000], original_correct["ResNet50"][:3000]
    ours = rs.paired_bootstrap_difference(a, b, n_resamples=20_000, seed=4)
    ref = stats.bootstrap((a.astype(float), b.astype(float)), lambda x, y, axis: x.mean(axis) - y.mean(axis),
                          paired=True, n_resamples=20_000, method="percentile", vectorized=True, batch=2000,
                          rng=np.random.default_rng(5)).confidence_interval
    assert ours.estimate == pytest.approx(a.mean() - b.mean(), abs=1e-15)
    assert ours.low == pytest.approx(ref.low, abs=1.5e-3)
    assert ours.high == pytest.approx(ref.high, abs=1.5e-3)


def test_mcnemar_matches_statsmodels(original_correct):
    pairs = [("ViT", "ResNet50"), ("DINO", "ResNet50"), ("ResNet50", "SimCLR")]
    for name_a, name_b in pairs:
        for size in (50_000, 400, 60):
            a, b = original_correct[name_a][:size], original_correct[name_b][:size]
            table = pd.crosstab(a, b).reindex(index=[True, False], columns=[True, False], fill_value=0).to_numpy()
            for exact in (True, False):
                ours = rs.mcnemar_test(a, b, exact=exact)
                ref = mcnemar(table, exact=exact, correction=True)
                assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
                assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
                assert ours.n == size
    same = original_correct["ViT"]
    assert rs.mcnemar_test(same, same).pvalue == 1.0


def test_pearson_and_spearman_match_scipy(timm):
    x, y = timm.top1_orig.to_numpy(), timm.top1_real.to_numpy()
    got = rs.pearson(x, y, 0.9)
    ref = stats.pearsonr(x, y)
    ci = ref.confidence_interval(0.9)
    assert (got.r, got.pvalue, got.low, got.high) == pytest.approx((ref.statistic, ref.pvalue, ci.low, ci.high),
                                                                   rel=1e-9)
    assert got.n == len(timm) == 1556
    rho = rs.spearman(x, y)
    ref_rho = stats.spearmanr(x, y)
    assert (rho.r, rho.pvalue) == pytest.approx((ref_rho.statistic, ref_rho.pvalue), rel=1e-9)
    assert rho.low < rho.r < rho.high


@pytest.mark.parametrize("method", [rs.pearson, rs.spearman])
def test_correlation_intervals_cover_at_their_level(method):
    rng = np.random.default_rng(6)
    true_r = 0.6
    cov = [[1, true_r], [true_r, 1]]
    # the population Spearman rho of a bivariate normal with Pearson r
    target = true_r if method is rs.pearson else 6 / np.pi * np.arcsin(true_r / 2)
    hits = 0
    trials = 600
    for _ in range(trials):
        xy = rng.multivariate_normal([0, 0], cov, size=40)
        res = method(xy[:, 0], xy[:, 1], 0.95)
        hits += res.low <= target <= res.high
    # 95% nominal; binomial sd over 600 trials is ~0.9 points
    assert 0.92 <= hits / trials <= 0.98


def test_fisher_z_test_has_its_size_and_power():
    rng = np.random.default_rng(7)

    def rejection_rate(r1, r2, n1=30, n2=50, trials=1500):
        rejected = 0
        for _ in range(trials):
            a = rng.multivariate_normal([0, 0], [[1, r1], [r1, 1]], size=n1)
            b = rng.multivariate_normal([0, 0], [[1, r2], [r2, 1]], size=n2)
            ra, rb = stats.pearsonr(*a.T).statistic, stats.pearsonr(*b.T).statistic
            rejected += rs.compare_correlations(ra, n1, rb, n2).pvalue < 0.05
        return rejected / trials

    assert 0.035 <= rejection_rate(0.5, 0.5) <= 0.065
    assert rejection_rate(0.9, 0.3) > 0.9
    res = rs.compare_correlations(0.9, 100, 0.5, 80)
    assert res.z == pytest.approx((np.arctanh(0.9) - np.arctanh(0.5)) / np.sqrt(1 / 97 + 1 / 77))
    assert res.pvalue == pytest.approx(2 * stats.norm.sf(abs(res.z)))


@pytest.mark.parametrize("r1, n1, r2, n2, z, pvalue, decimals", [
    # MedCalc manual, "Comparison of correlation coefficients": 0.86 vs 0.62, 42 each -> z 2.5097, P 0.0121
    (0.86, 42, 0.62, 42, 2.5097, 0.0121, 4),
    # Stata's cortesti help (Caci 2000), after Cohen & Cohen (1983): .84 (63) vs .75 (42) -> z 1.207, P 0.2275
    (0.84, 63, 0.75, 42, 1.207, 0.2275, 3),
    # Guilford & Fruchter (1978) p. 164: .92 (60) vs .82 (50) -> 2.19 (the book rounds to 2.18)
    (0.92, 60, 0.82, 50, 2.19, None, 2),
    # Cohen, Cohen, West & Aiken (2003) formulas 2.8.4 and 2.8.11: .657 (62) vs .430 (143) -> 2.110737
    (0.657, 62, 0.430, 143, 2.110737, None, 6),
])
def test_fisher_z_test_reproduces_published_examples(r1, n1, r2, n2, z, pvalue, decimals):
    got = rs.compare_correlations(r1, n1, r2, n2)
    assert round(got.z, decimals) == z
    if pvalue is not None:
        assert round(got.pvalue, 4) == pvalue


def test_steiger_z_reproduces_published_examples():
    # Steiger (1980), Psychological Bulletin 87, p. 249, case A: r_jk = .4, r_jh = .5, r_kh = .1, N = 103. The
    # paper prints Z1* = -.8913 from a covariance rounded to .0042; unrounded it is -0.8887185 (the value the R
    # package cocor's own tests hold for this case).
    case_a = rs.compare_dependent_correlations(0.4, 0.5, 0.1, 103)
    assert round(case_a.z, 7) == -0.8887185 and abs(case_a.z - -0.8913) < 0.003
    # depcor (Silver, Hittner & May 2006, Applied Psychological Measurement 30, 152-153): .3, .4, .5, n = 100
    # -> Steiger's z -1.0718, two-sided p .2838
    depcor = rs.compare_dependent_correlations(0.3, 0.4, 0.5, 100)
    assert (round(depcor.z, 4), round(depcor.pvalue, 4)) == (-1.0718, 0.2838)


def test_dependent_correlations_steiger_z_matches_the_formula_and_holds_its_size():
    # Steiger (1980) eq. 14-15 written out: the asymptotic covariance of two overlapping correlations
    # (Pearson & Filon), at the pooled r, divided by the product of their variances (1 - r^2)^2
    r12, r13, r23, n = 0.70, 0.50, 0.40, 103
    rbar = (r12 + r13) / 2
    psi = r23 * (1 - 2 * rbar ** 2) - 0.5 * rbar ** 2 * (1 - 2 * rbar ** 2 - r23 ** 2)
    se = np.sqrt((2 - 2 * psi / (1 - rbar ** 2) ** 2) / (n - 3))
    expected = (np.arctanh(r12) - np.arctanh(r13)) / se
    got = rs.compare_dependent_correlations(r12, r13, r23, n)
    assert got.z == pytest.approx(expected, rel=1e-12) and got.pvalue == pytest.approx(2 * stats.norm.sf(expected))
    # with r23 = 0 and r = 0 the two correlations carry no covariance: Fisher's test of two samples of n
    indep = rs.compare_dependent_correlations(0.3, -0.3, 0.0, 50)
    assert indep.z == pytest.approx(rs.compare_correlations(0.3, 50, -0.3, 50).z, rel=1e-12)
    assert rs.compare_dependent_correlations(r13, r12, r23, n).z == pytest.approx(-got.z, rel=1e-12)

    # on one sample, r(x, y) and r(x, z) with y and z correlated: Steiger's test holds 5%, Fisher's
    # independent-samples test (wrongly applied) is far too conservative and loses power
    rng = np.random.default_rng(11)

    def rejection_rates(r_xy, r_xz, r_yz, n=30, trials=2000):
        cov = [[1, r_xy, r_xz], [r_xy, 1, r_yz], [r_xz, r_yz, 1]]
        dep = ind = 0
        for _ in range(trials):
            c = np.corrcoef(rng.multivariate_normal([0, 0, 0], cov, size=n).T)
            dep += rs.compare_dependent_correlations(c[0, 1], c[0, 2], c[1, 2], n).pvalue < 0.05
            ind += rs.compare_correlations(c[0, 1], n, c[0, 2], n).pvalue < 0.05
        return dep / trials, ind / trials

    dep, ind = rejection_rates(0.8, 0.8, 0.9)
    assert 0.03 <= dep <= 0.07 and ind < 0.005  # binomial sd of a 5% rate over 2,000 trials: 0.5 points
    dep, ind = rejection_rates(0.85, 0.75, 0.9)
    assert dep > 0.5 and ind < 0.1  # 58% vs 4% here
    with pytest.raises(HarnessError, match="not positive semi-definite"):
        rs.compare_dependent_correlations(0.9, 0.9, -0.9, 30)
    with pytest.raises(HarnessError, match="r_yz"):
        rs.compare_dependent_correlations(0.9, 0.9, 1.0, 30)


def test_two_regimes_match_statsmodels_interaction_model(timm):
    df = pd.DataFrame({"x": timm.top1_orig, "y": timm.top1_real})
    df["above"] = (df.x >= 81.0).astype(float)
    res = rs.two_regimes(df.x, df.y, breakpoint=81.0)
    ref = smf.ols("y ~ x * above", data=df).fit()
    assert res.slope_difference == pytest.approx(ref.params["x:above"], rel=1e-9)
    assert res.slope_difference_pvalue == pytest.approx(ref.pvalues["x:above"], rel=1e-6)
    below, above = df[df.above == 0], df[df.above == 1]
    assert res.below.n + res.above.n == len(df) and res.above.n == len(above)
    assert res.below.pearson.r == pytest.approx(stats.pearsonr(below.x, below.y).statistic, rel=1e-12)
    assert res.above.line.slope == pytest.approx(smf.ols("y ~ x", data=above).fit().params["x"], rel=1e-9)
    # the interaction is exactly the difference of the two separately fitted slopes
    assert res.slope_difference == pytest.approx(res.above.line.slope - res.below.line.slope, rel=1e-9)
    z = rs.compare_correlations(res.below.pearson.r, res.below.n, res.above.pearson.r, res.above.n)
    assert res.correlation_difference == z


def test_breakpoint_recovers_a_known_hinge_and_is_least_squares(timm):
    x = np.linspace(60, 90, 61)
    y = 10 + 0.9 * x - 0.6 * np.maximum(x - 81.3, 0)
    assert rs.find_breakpoint(x, y).breakpoint == pytest.approx(81.3, abs=1e-4)

    x, y = timm.top1_orig.to_numpy(), timm.top1_real.to_numpy()
    found = rs.find_breakpoint(x, y, min_side=20)
    df = pd.DataFrame({"x": x, "y": y})
    for t in np.quantile(x, np.linspace(0.05, 0.95, 19)):
        df["hinge"] = np.maximum(df.x - t, 0)
        assert found.sse <= smf.ols("y ~ x + hinge", data=df).fit().ssr + 1e-9
    df["hinge"] = np.maximum(df.x - found.breakpoint, 0)
    assert found.sse == pytest.approx(smf.ols("y ~ x + hinge", data=df).fit().ssr, rel=1e-9)
    regimes = rs.two_regimes(x, y, min_side=20)
    assert regimes.breakpoint == found.breakpoint and regimes.breakpoint_source == "piecewise-linear fit"


def test_significance_ranks_holm_and_ties(original_correct):
    names = ["ViT", "DINO", "ResNet50", "SimCLR"]
    acc = [original_correct[m].mean() for m in names]
    p = np.ones((4, 4))
    for i in range(4):
        for j in range(i + 1, 4):
            p[i, j] = p[j, i] = rs.mcnemar_test(original_correct[names[i]], original_correct[names[j]]).pvalue
    res = rs.significance_ranks(acc, p)
    iu = np.triu_indices(4, 1)
    assert np.allclose(np.array(res.adjusted_pvalues)[iu], multipletests(p[iu], method="holm")[1])
    expected = [1 + sum(acc[j] > acc[i] and res.adjusted_pvalues[i][j] < 0.05 for j in range(4)) for i in range(4)]
    assert list(res.ranks) == expected
    # exact ties share a rank; a not-significant gap shares it too
    tied = rs.significance_ranks([0.8, 0.8, 0.7, 0.69],
                                 [[1, 1, 1e-6, 1e-6], [1, 1, 1e-6, 1e-6], [1e-6, 1e-6, 1, 0.3], [1e-6, 1e-6, 0.3, 1]])
    assert tied.ranks == (1, 1, 3, 3)


def test_bad_input_is_refused_with_one_clear_error():
    with pytest.raises(HarnessError, match="same samples"):
        rs.mcnemar_test([True, False], [True])
    with pytest.raises(HarnessError, match="True/False"):
        rs.accuracy_wilson([0, 2, 1])
    with pytest.raises(HarnessError, match="confidence"):
        rs.bootstrap_accuracy([True, False], confidence=95)
    with pytest.raises(HarnessError, match="at least 4 models"):
        rs.pearson([1, 2, 3], [1, 2, 3])
    with pytest.raises(HarnessError, match="each regime needs at least 4"):
        rs.two_regimes(np.arange(10.0), np.arange(10.0) ** 1.5, breakpoint=8.5)
    with pytest.raises(HarnessError, match="NaN"):
        rs.fit_line([1, 2, np.nan, 4], [1, 2, 3, 4])


from hypothesis import given, settings, strategies as st  # noqa: E402

_pairs = st.integers(1, 300).flatmap(lambda n: st.tuples(
    st.lists(st.booleans(), min_size=n, max_size=n), st.lists(st.booleans(), min_size=n, max_size=n)))


@settings(max_examples=60, deadline=None)
@given(_pairs)
def test_paired_statistics_are_symmetric_and_consistent(pair):
    a, b = (np.array(v) for v in pair)
    ab, ba = rs.mcnemar_test(a, b), rs.mcnemar_test(b, a)
    assert ab.pvalue == ba.pvalue and 0 <= ab.pvalue <= 1
    diff = rs.paired_bootstrap_difference(a, b, n_resamples=200, seed=0)
    assert diff.estimate == pytest.approx(a.mean() - b.mean(), abs=1e-12)
    assert -1 <= diff.low <= diff.high <= 1
    counts = rs.paired_counts(a, b)
    assert counts.n == a.size and counts.only_a == ab.only_a and counts.only_b == ab.only_b
    wilson = rs.accuracy_wilson(a)
    assert 0 <= wilson.low <= wilson.estimate <= wilson.high <= 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.5, 0.6, 0.7, 0.8]), min_size=2, max_size=6), st.floats(0.0, 1.0))
def test_significance_ranks_respect_order_and_ties(accuracies, p):
    m = len(accuracies)
    pvalues = np.full((m, m), p)
    np.fill_diagonal(pvalues, 1.0)
    ranks = rs.significance_ranks(accuracies, pvalues).ranks
    best = max(accuracies)
    for i, j in ((i, j) for i in range(m) for j in range(m)):
        if accuracies[i] == accuracies[j]:
            assert ranks[i] == ranks[j]  # exact ties share a rank
        if accuracies[i] > accuracies[j]:
            assert ranks[i] <= ranks[j]  # never ranked below a worse model
    assert all(r == 1 for r, acc in zip(ranks, accuracies) if acc == best)


def test_gap_bootstrap_matches_scipy_paired_bootstrap(original_correct, shared_data):
    import json

    real = json.loads((shared_data / "imagenet" / "real.json").read_text())
    folder = shared_data / "imagenet" / "model_predictions"
    pred = pd.read_csv(folder / "SimCLR.csv").sort_values("file_name").predicted_class.to_numpy()
    real_correct = np.array([float(p in labels) if labels else np.nan for p, labels in zip(pred, real)])
    ref = original_correct["SimCLR"].astype(float)
    sub_ref, sub_rel = ref[:3000], real_correct[:3000]
    ours = rs.bootstrap_gap(sub_ref, sub_rel, n_resamples=20_000, seed=8)
    ref_ci = stats.bootstrap(
        (sub_ref, sub_rel), lambda x, y, axis: np.nanmean(y, axis=axis) - np.nanmean(x, axis=axis), paired=True,
        n_resamples=20_000, method="percentile", vectorized=True, batch=2000,
        rng=np.random.default_rng(9)).confidence_interval
    assert ours.estimate == pytest.approx(np.nanmean(sub_rel) - sub_ref.mean(), abs=1e-15)
    assert (ours.low, ours.high) == pytest.approx((ref_ci.low, ref_ci.high), abs=2e-3)
    # on different samples (two test sets) the interval is the wider independent one
    unpaired = rs.bootstrap_gap(sub_ref, sub_rel, paired=False, n_resamples=20_000, seed=8)
    assert unpaired.high - unpaired.low > ours.high - ours.low
    with pytest.raises(HarnessError, match="same samples"):
        rs.bootstrap_gap(sub_ref, sub_rel[:10])
    with pytest.raises(HarnessError, match="1/0 per sample"):
        rs.bootstrap_gap([0.5, 1.0], [1.0, 1.0])


def _timm_pair(shared_data, shifted: str) -> pd.DataFrame:
    from reports.external import parse_timm_results

    folder = shared_data / "timm-results"
    ref = parse_timm_results(folder / "results-imagenet.csv")
    shift = parse_timm_results(folder / shifted)
    return ref.merge(shift, on=["model", "img_size"], suffixes=("_ref", "_shift"))


@pytest.mark.parametrize("shifted", ["results-imagenetv2-matched-frequency.csv", "results-sketch.csv"])
def test_effective_robustness_fit_matches_scipy_least_squares_in_logit_space(shared_data, shifted):
    from scipy import optimize

    pair = _timm_pair(shared_data, shifted)
    assert len(pair) == 1556
    x, y = pair["top1_ref"].to_numpy(), pair["top1_shift"].to_numpy()
    n_shift = 10_000 if "v2" in shifted else 50_889
    fit = rs.effective_robustness(x, y, 50_000, n_shift, n_resamples=200, seed=1)
    lx = np.log(np.clip(x, 0.5 / 50_000, 1 - 0.5 / 50_000) / (1 - np.clip(x, 0.5 / 50_000, 1 - 0.5 / 50_000)))
    ly = np.log(np.clip(y, 0.5 / n_shift, 1 - 0.5 / n_shift) / (1 - np.clip(y, 0.5 / n_shift, 1 - 0.5 / n_shift)))
    solved = optimize.least_squares(lambda p: p[0] + p[1] * lx - ly, x0=[0.0, 1.0], xtol=1e-14, ftol=1e-14,
                                    gtol=1e-14).x
    assert fit.intercept.estimate == pytest.approx(solved[0], abs=1e-7)
    assert fit.slope.estimate == pytest.approx(solved[1], abs=1e-7)
    predicted = 1 / (1 + np.exp(-(solved[0] + solved[1] * lx)))
    np.testing.assert_allclose([e.estimate for e in fit.effective], y - predicted, atol=1e-8)
    assert fit.slope.low < fit.slope.estimate < fit.slope.high and fit.n == 1556


def test_effective_robustness_intervals_cover_the_truth_in_simulation():
    """Models on a known logit line, accuracies drawn from their n samples: the 90% intervals of each
    model's effective robustness (truly 0) and of the slope cover the truth about 90% of the time."""
    rng = np.random.default_rng(2020)
    slope, intercept, m, n_ref, n_shift = 1.2, -0.6, 30, 5_000, 2_000
    covered, slope_covered, trials = 0, 0, 60
    for t in range(trials):
        true_ref = rng.uniform(0.55, 0.9, m)
        true_shift = 1 / (1 + np.exp(-(intercept + slope * np.log(true_ref / (1 - true_ref)))))
        ref = rng.binomial(n_ref, true_ref) / n_ref
        shift = rng.binomial(n_shift, true_shift) / n_shift
        fit = rs.effective_robustness(ref, shift, n_ref, n_shift, confidence=0.9, n_resamples=400, seed=t)
        covered += sum(e.low <= 0 <= e.high for e in fit.effective)
        slope_covered += fit.slope.low <= slope <= fit.slope.high
    assert 0.84 <= covered / (trials * m) <= 0.97
    assert 0.75 <= slope_covered / trials <= 1.0


def test_effective_robustness_refuses_bad_input():
    with pytest.raises(HarnessError, match="at least 3 models"):
        rs.effective_robustness([0.7, 0.8], [0.6, 0.7], 100, 100)
    with pytest.raises(HarnessError, match="fractions between 0 and 1"):
        rs.effective_robustness([70, 80, 90], [60, 70, 80], 100, 100)
    with pytest.raises(HarnessError, match="same models"):
        rs.effective_robustness([0.7, 0.8, 0.9], [0.6, 0.7], 100, 100)


def test_agreement_on_the_line_on_cifar10_vs_cifar10_1(shared_data):
    """The 30 published CIFAR-10 models on the CIFAR-10 test set and on CIFAR-10.1 v6 (real per-sample
    predictions): lines in probit space checked against scipy, agreement counted here pair by pair."""
    import json
    from itertools import combinations

    folder = shared_data / "cifar" / "cifar10_1_model_predictions"
    names = sorted(p.name for p in (folder / "v6_predictions").glob("*.json"))
    ref = np.array([json.loads((folder / "original_predictions" / n).read_text()) for n in names])
    shift = np.array([json.loads((folder / "v6_predictions" / n).read_text()) for n in names])
    ref_y = np.load(shared_data / "cifar" / "cifar10_test_labels.npy")
    shift_y = np.load(shared_data / "cifar" / "cifar10.1_v6_labels.npy")
    result = rs.agreement_on_the_line(ref, ref_y, shift, shift_y)
    assert result.n == len(names) == 30 and result.n_pairs == 435
    agree = {}
    for axis, preds in (("ref", ref), ("shift", shift)):
        agree[axis] = np.array([sum(int(a == b) for a, b in zip(preds[i], preds[j])) / preds.shape[1]
                                for i, j in combinations(range(30), 2)])
    fit = stats.linregress(stats.norm.ppf(agree["ref"]), stats.norm.ppf(agree["shift"]))
    assert result.agreement_line.slope == pytest.approx(fit.slope, rel=1e-9)
    assert result.agreement_line.intercept == pytest.approx(fit.intercept, rel=1e-9)
    acc_ref, acc_shift = (ref == ref_y).mean(axis=1), (shift == shift_y).mean(axis=1)
    acc_fit = stats.linregress(stats.norm.ppf(acc_ref), stats.norm.ppf(acc_shift))
    assert result.accuracy_line.slope == pytest.approx(acc_fit.slope, rel=1e-9)
    predicted = stats.norm.cdf(fit.intercept + fit.slope * stats.norm.ppf(acc_ref))
    np.testing.assert_allclose(result.predicted_accuracy, predicted, atol=1e-12)
    # Baek et al.'s finding holds on this real shift: the agreement line, fitted without CIFAR-10.1's
    # labels, predicts the models' CIFAR-10.1 accuracy within a few points (the drop itself is 4 to 15)
    assert result.mean_absolute_error == pytest.approx(np.abs(predicted - acc_shift).mean(), abs=1e-12)
    assert result.mean_absolute_error < 0.03 and np.mean(acc_ref - acc_shift) > 0.04
    with pytest.raises(HarnessError, match="same models on both sets"):
        rs.agreement_on_the_line(ref, ref_y, shift[:5], shift_y)
