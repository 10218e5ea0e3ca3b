"""Statistics for reports: small pure functions, arrays in, frozen results out.

Every result carries ``n`` (samples or models it was computed over); the report
layer adds the label set and the suite. Inputs are validated at the door with a
``HarnessError`` that names the bad argument.

Bootstraps of accuracies use the fact that resampling ``n`` Bernoulli outcomes
with replacement only changes the *counts*: the number of correct samples in a
resample is Binomial(n, k/n), and for two models on the same samples the four
cells (both right, only A, only B, both wrong) are Multinomial(n, cell shares).
Drawing the counts directly is the same bootstrap as resampling indices, at a
cost independent of ``n`` (50,000 ImageNet images, 10,000 resamples: instant).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Sequence

import numpy as np
from scipy import optimize, stats

from harness.errors import HarnessError


# ----- validation -------------------------------------------------------------
def _as_bool_vector(values, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise HarnessError(f"{what} must be a 1-d array of per-sample correctness, got shape {arr.shape}")
    if arr.size == 0:
        raise HarnessError(f"{what} is empty; expected at least one sample")
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise HarnessError(f"{what} must hold only True/False (or 0/1) per sample")
        arr = arr.astype(bool)
    return arr


def _as_float_vector(values, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise HarnessError(f"{what} must be numbers") from None
    if arr.ndim != 1:
        raise HarnessError(f"{what} must be a 1-d array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise HarnessError(f"{what} holds NaN or infinite values; expected finite numbers")
    return arr


def _check_confidence(confidence: float) -> float:
    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise HarnessError(f"confidence {confidence!r} must be a number strictly between 0 and 1")
    return float(confidence)


def _check_resamples(n_resamples: int) -> int:
    if not isinstance(n_resamples, int) or n_resamples < 100:
        raise HarnessError(f"n_resamples {n_resamples!r} must be an integer of at least 100")
    return n_resamples


def _paired(a, b, what_a: str = "a_correct", what_b: str = "b_correct"):
    a = _as_bool_vector(a, what_a)
    b = _as_bool_vector(b, what_b)
    if a.shape != b.shape:
        raise HarnessError(
            f"{what_a} ({a.size} samples) and {what_b} ({b.size} samples) must cover the same samples, "
            "aligned by key")
    return a, b


class _Result:
    def as_dict(self) -> dict:
        return asdict(self)


# ----- one accuracy -------------------------------------------------------------
@dataclass(frozen=True)
class Interval(_Result):
    estimate: float
    low: float
    high: float
    n: int
    confidence: float
    method: str


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for k successes in n trials."""
    confidence = _check_confidence(confidence)
    if not (isinstance(n, (int, np.integer)) and n > 0):
        raise HarnessError(f"n {n!r} must be a positive integer number of samples")
    if not (isinstance(k, (int, np.integer)) and 0 <= k <= n):
        raise HarnessError(f"k {k!r} must be an integer between 0 and n={n}")
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at k = 0 and k = n the bounds are exactly 0 and 1; rounding would leave them a hair inside
    low = 0.0 if k == 0 else max(0.0, float(centre - half))
    high = 1.0 if k == n else min(1.0, float(centre + half))
    return Interval(p, low, high, int(n), confidence, "wilson")


def accuracy_wilson(correct, confidence: float = 0.95) -> Interval:
    correct = _as_bool_vector(correct, "correct")
    return wilson_interval(int(correct.sum()), int(correct.size), confidence)


def bootstrap_accuracy(correct, confidence: float = 0.95, n_resamples: int = 10_000,
                       seed: int = 0) -> Interval:
    """Percentile bootstrap interval of the accuracy, resampling samples with replacement."""
    correct = _as_bool_vector(correct, "correct")
    confidence = _check_confidence(confidence)
    n_resamples = _check_resamples(n_resamples)
    n, k = correct.size, int(correct.sum())
    draws = np.random.default_rng(seed).binomial(n, k / n, size=n_resamples) / n
    low, high = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(k / n, float(low), float(high), n, confidence, "percentile bootstrap")


# ----- two models on the same samples ------------------------------------------
@dataclass(frozen=True)
class PairedCounts(_Result):
    both: int
    only_a: int
    only_b: int
    neither: int

    @property
    def n(self) -> int:
        return self.both + self.only_a + self.only_b + self.neither


def paired_counts(a_correct, b_correct) -> PairedCounts:
    a, b = _paired(a_correct, b_correct)
    return PairedCounts(int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum()), int((~a & ~b).sum()))


@dataclass(frozen=True)
class McNemar(_Result):
    only_a: int
    only_b: int
    statistic: float
    pvalue: float
    n: int
    method: str


def mcnemar_test(a_correct, b_correct, exact: bool = True) -> McNemar:
    """McNemar's test of equal accuracy of two models on the same samples.

    ``exact`` uses the binomial distribution of the discordant pairs (valid at any
    size); otherwise the chi-square statistic with continuity correction.
    """
    c = paired_counts(a_correct, b_correct)
    discordant = c.only_a + c.only_b
    if exact:
        smaller = min(c.only_a, c.only_b)
        p = 1.0 if discordant == 0 else min(1.0, 2 * stats.binom.cdf(smaller, discordant, 0.5))
        return McNemar(c.only_a, c.only_b, float(smaller), float(p), c.n, "exact binomial")
    if discordant == 0:
        return McNemar(c.only_a, c.only_b, 0.0, 1.0, c.n, "chi-square, continuity corrected")
    statistic = (abs(c.only_a - c.only_b) - 1) ** 2 / discordant
    return McNemar(c.only_a, c.only_b, float(statistic), float(stats.chi2.sf(statistic, 1)), c.n,
                   "chi-square, continuity corrected")


@dataclass(frozen=True)
class Difference(_Result):
    estimate: float  # accuracy(a) - accuracy(b)
    low: float
    high: float
    n: int
    confidence: float
    method: str


def paired_bootstrap_difference(a_correct, b_correct, confidence: float = 0.95,
                                n_resamples: int = 10_000, seed: int = 0) -> Difference:
    """Percentile interval of accuracy(a) - accuracy(b), resampling the shared samples as pairs."""
    confidence = _check_confidence(confidence)
    n_resamples = _check_resamples(n_resamples)
    c = paired_counts(a_correct, b_correct)
    shares = np.array([c.only_a, c.only_b, c.both + c.neither]) / c.n
    cells = np.random.default_rng(seed).multinomial(c.n, shares, size=n_resamples)
    draws = (cells[:, 0] - cells[:, 1]) / c.n
    low, high = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Difference((c.only_a - c.only_b) / c.n, float(low), float(high), c.n, confidence,
                      "paired percentile bootstrap")


def _nan_bool_vector(values, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise HarnessError(f"{what} must be a non-empty 1-d array of per-sample correctness")
    if not np.isin(arr[~np.isnan(arr)], (0.0, 1.0)).all():
        raise HarnessError(f"{what} must hold 1/0 per sample, or NaN where the label set excludes it")
    if np.isnan(arr).all():
        raise HarnessError(f"{what} excludes every sample; expected at least one scored sample")
    return arr


def bootstrap_gap(reference, relabelled, paired: bool = True, confidence: float = 0.95,
                  n_resamples: int = 10_000, seed: int = 0) -> Difference:
    """Percentile interval of accuracy(relabelled) - accuracy(reference) for one model.

    ``paired``: both arrays run over the same samples (NaN where a label set excludes a sample,
    e.g. ReaL drops images with no agreed label), and samples are resampled once for both
    accuracies. Otherwise the two arrays are on different samples (two test sets) and each
    is resampled on its own.
    """
    confidence = _check_confidence(confidence)
    n_resamples = _check_resamples(n_resamples)
    ref = _nan_bool_vector(reference, "reference")
    rel = _nan_bool_vector(relabelled, "relabelled")
    rng = np.random.default_rng(seed)
    estimate = float(np.nanmean(rel) - np.nanmean(ref))
    if paired:
        if ref.shape != rel.shape:
            raise HarnessError(f"reference ({ref.size} samples) and relabelled ({rel.size} samples) must cover "
                               "the same samples for a paired bootstrap, aligned by key")
        # 9 cells: each axis is correct, wrong or excluded (0, 1, 2) for a sample
        code = np.where(np.isnan(ref), 2, ref).astype(int) * 3 + np.where(np.isnan(rel), 2, rel).astype(int)
        cells = rng.multinomial(ref.size, np.bincount(code, minlength=9) / ref.size, size=n_resamples)
        by_ref = cells.reshape(n_resamples, 3, 3).sum(axis=2)
        by_rel = cells.reshape(n_resamples, 3, 3).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            draws = by_rel[:, 1] / by_rel[:, :2].sum(axis=1) - by_ref[:, 1] / by_ref[:, :2].sum(axis=1)
        draws = draws[np.isfinite(draws)]
        n = ref.size
        method = "paired percentile bootstrap"
    else:
        ref, rel = ref[~np.isnan(ref)], rel[~np.isnan(rel)]
        draws = (rng.binomial(rel.size, rel.mean(), n_resamples) / rel.size
                 - rng.binomial(ref.size, ref.mean(), n_resamples) / ref.size)
        n = ref.size + rel.size
        method = "independent percentile bootstrap"
    low, high = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Difference(estimate, float(low), float(high), int(n), confidence, method)


# ----- correlations across models ----------------------------------------------
@dataclass(frozen=True)
class Correlation(_Result):
    method: str
    r: float
    low: float
    high: float
    pvalue: float
    n: int
    confidence: float


def _fisher_interval(r: float, se: float, confidence: float) -> tuple[float, float]:
    z = stats.norm.ppf(0.5 + confidence / 2)
    centre = np.arctanh(np.clip(r, -1 + 1e-15, 1 - 1e-15))
    return float(np.tanh(centre - z * se)), float(np.tanh(centre + z * se))


def _xy(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = _as_float_vector(x, "x")
    y = _as_float_vector(y, "y")
    if x.shape != y.shape:
        raise HarnessError(f"x ({x.size} values) and y ({y.size} values) must pair up one model each")
    if x.size < 4:
        raise HarnessError(f"a correlation needs at least 4 models, got {x.size}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise HarnessError("x and y must each vary across models; a constant has no correlation")
    return x, y


def pearson(x, y, confidence: float = 0.95) -> Correlation:
    """Pearson r with the Fisher-z interval (standard error 1/sqrt(n-3))."""
    confidence = _check_confidence(confidence)
    x, y = _xy(x, y)
    res = stats.pearsonr(x, y)
    n = x.size
    low, high = _fisher_interval(res.statistic, 1 / math.sqrt(n - 3), confidence)
    return Correlation("pearson", float(res.statistic), low, high, float(res.pvalue), n, confidence)


def spearman(x, y, confidence: float = 0.95) -> Correlation:
    """Spearman rho with a Fisher-z interval; variance 1.06/(n-3) (Fieller, Hartley & Pearson 1957)."""
    confidence = _check_confidence(confidence)
    x, y = _xy(x, y)
    res = stats.spearmanr(x, y)
    n = x.size
    low, high = _fisher_interval(res.statistic, math.sqrt(1.06 / (n - 3)), confidence)
    return Correlation("spearman", float(res.statistic), low, high, float(res.pvalue), n, confidence)


@dataclass(frozen=True)
class CorrelationDifference(_Result):
    r1: float
    n1: int
    r2: float
    n2: int
    z: float
    pvalue: float


def compare_correlations(r1: float, n1: int, r2: float, n2: int) -> CorrelationDifference:
    """Fisher z-test that two correlations from independent samples are equal (two-sided)."""
    for r, what in ((r1, "r1"), (r2, "r2")):
        if not (isinstance(r, (int, float)) and -1 < r < 1):
            raise HarnessError(f"{what} {r!r} must be a correlation strictly between -1 and 1")
    for n, what in ((n1, "n1"), (n2, "n2")):
        if not (isinstance(n, (int, np.integer)) and n > 3):
            raise HarnessError(f"{what} {n!r} must be an integer above 3 (the z-test needs n-3 > 0)")
    z = (np.arctanh(r1) - np.arctanh(r2)) / math.sqrt(1 / (n1 - 3) + 1 / (n2 - 3))
    return CorrelationDifference(float(r1), int(n1), float(r2), int(n2), float(z),
                                 float(2 * stats.norm.sf(abs(z))))



@dataclass(frozen=True)
class DependentCorrelationDifference(_Result):
    r_xy: float  # the two correlations compared, both with x, measured on the same n units
    r_xz: float
    r_yz: float  # the correlation of y and z on those units, which makes the two dependent
    n: int
    z: float
    pvalue: float
    method: str


def compare_dependent_correlations(r_xy: float, r_xz: float, r_yz: float, n: int) -> DependentCorrelationDifference:
    """Steiger's (1980) z-test that two overlapping correlations on the same units are equal (two-sided).

    r(x, y) and r(x, z) share x and are measured on the same n units (e.g. one model set
    scored three ways), so they are dependent: Fisher's test for independent samples ignores
    their covariance. Steiger (1980, eq. 14-15) uses the Fisher-z difference with its
    asymptotic covariance, evaluated at the pooled r = (r_xy + r_xz) / 2 (his Z1*):

        c = [r_yz (1 - 2 r^2) - r^2 (1 - 2 r^2 - r_yz^2) / 2] / (1 - r^2)^2
        z = (atanh r_xy - atanh r_xz) sqrt(n - 3) / sqrt(2 - 2 c)
    """
    for r, what in ((r_xy, "r_xy"), (r_xz, "r_xz"), (r_yz, "r_yz")):
        if not (isinstance(r, (int, float, np.floating)) and -1 < r < 1):
            raise HarnessError(f"{what} {r!r} must be a correlation strictly between -1 and 1")
    if not (isinstance(n, (int, np.integer)) and n > 3):
        raise HarnessError(f"n {n!r} must be an integer above 3 (the z-test needs n-3 > 0)")
    if 1 - r_xy ** 2 - r_xz ** 2 - r_yz ** 2 + 2 * r_xy * r_xz * r_yz < 0:
        raise HarnessError(f"r_xy={r_xy}, r_xz={r_xz}, r_yz={r_yz} cannot be the correlations of three "
                           "variables (their correlation matrix is not positive semi-definite)")
    rbar2 = ((r_xy + r_xz) / 2) ** 2
    c = (r_yz * (1 - 2 * rbar2) - rbar2 * (1 - 2 * rbar2 - r_yz ** 2) / 2) / (1 - rbar2) ** 2
    z = (np.arctanh(r_xy) - np.arctanh(r_xz)) * math.sqrt(n - 3) / math.sqrt(2 - 2 * c)
    return DependentCorrelationDifference(float(r_xy), float(r_xz), float(r_yz), int(n), float(z),
                                          float(2 * stats.norm.sf(abs(z))), "Steiger (1980) Z1*")

# ----- lines, breakpoints and the two regimes ---------------------------------
@dataclass(frozen=True)
class Line(_Result):
    slope: float
    slope_se: float
    intercept: float
    intercept_se: float
    r2: float
    n: int


def fit_line(x, y) -> Line:
    """Ordinary least squares y = intercept + slope * x."""
    x, y = _xy(x, y)
    res = stats.linregress(x, y)
    return Line(float(res.slope), float(res.stderr), float(res.intercept), float(res.intercept_stderr),
                float(res.rvalue ** 2), int(x.size))


@dataclass(frozen=True)
class Breakpoint(_Result):
    breakpoint: float
    sse: float
    n: int
    min_side: int


def _hinge_sse(x: np.ndarray, y: np.ndarray, t: float) -> float:
    design = np.column_stack([np.ones_like(x), x, np.maximum(x - t, 0.0)])
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    return float(((y - design @ coef) ** 2).sum())


def find_breakpoint(x, y, min_side: int = 5) -> Breakpoint:
    """The breakpoint t of the continuous piecewise-linear fit y = a + b x + c (x - t)+ with least SSE.

    Searched over the midpoints between consecutive distinct x values that leave at
    least ``min_side`` models on each side, then refined within the best gap (the SSE
    is smooth in t between data points, so the optimum lies in one such gap).
    """
    x, y = _xy(x, y)
    if not (isinstance(min_side, int) and min_side >= 2):
        raise HarnessError(f"min_side {min_side!r} must be an integer of at least 2")
    xs = np.unique(x)
    counts_below = np.searchsorted(np.sort(x), xs, side="right")
    # gap i lies between xs[i] and xs[i+1]; it leaves counts_below[i] models at or below it
    gaps = [i for i in range(xs.size - 1)
            if counts_below[i] >= min_side and x.size - counts_below[i] >= min_side]
    if not gaps:
        raise HarnessError(
            f"cannot place a breakpoint with at least {min_side} models on each side of {x.size} models")
    sses = [_hinge_sse(x, y, (xs[i] + xs[i + 1]) / 2) for i in gaps]
    best = gaps[int(np.argmin(sses))]
    lo, hi = xs[best], xs[best + 1]
    refined = optimize.minimize_scalar(lambda t: _hinge_sse(x, y, t), bounds=(lo, hi), method="bounded",
                                       options={"xatol": 1e-9 * max(1.0, abs(hi))})
    t, sse = (float(refined.x), float(refined.fun))
    if sse > min(sses):
        t, sse = float((lo + hi) / 2), float(min(sses))
    return Breakpoint(t, sse, int(x.size), min_side)


@dataclass(frozen=True)
class Regime(_Result):
    name: str
    x_low: float
    x_high: float
    line: Line
    pearson: Correlation
    spearman: Correlation

    @property
    def n(self) -> int:
        return self.line.n


@dataclass(frozen=True)
class TwoRegimes(_Result):
    breakpoint: float
    breakpoint_source: str  # "given" or "piecewise-linear fit"
    below: Regime
    above: Regime
    correlation_difference: CorrelationDifference  # Fisher z-test, Pearson r below vs above
    slope_difference: float  # slope above - slope below, the interaction coefficient
    slope_difference_se: float
    slope_difference_pvalue: float  # t-test of the interaction term in one OLS model
    n: int


def _regime(name: str, x: np.ndarray, y: np.ndarray, confidence: float) -> Regime:
    return Regime(name, float(x.min()), float(x.max()), fit_line(x, y), pearson(x, y, confidence),
                  spearman(x, y, confidence))


def two_regimes(x, y, breakpoint: float | None = None, confidence: float = 0.95,
                min_side: int = 5) -> TwoRegimes:
    """Split models at ``breakpoint`` of x (found by a piecewise-linear fit when None) and compare sides.

    Models with x below the breakpoint form the first regime, the others the second.
    The slopes are compared through the interaction term of one OLS model
    ``y ~ x + above + x:above``; the Pearson correlations through Fisher's z-test.
    """
    import statsmodels.api as sm

    confidence = _check_confidence(confidence)
    x, y = _xy(x, y)
    source = "given"
    if breakpoint is None:
        breakpoint = find_breakpoint(x, y, min_side).breakpoint
        source = "piecewise-linear fit"
    elif not isinstance(breakpoint, (int, float)) or not math.isfinite(breakpoint):
        raise HarnessError(f"breakpoint {breakpoint!r} must be a finite number on the x scale")
    above = x >= breakpoint
    for side, mask in (("below", ~above), ("at or above", above)):
        if mask.sum() < 4:
            raise HarnessError(
                f"breakpoint {breakpoint:g} leaves {int(mask.sum())} models {side} it; each regime needs at least 4")
    below_r = _regime("below", x[~above], y[~above], confidence)
    above_r = _regime("above", x[above], y[above], confidence)
    design = np.column_stack([np.ones_like(x), x, above.astype(float), x * above])
    fit = sm.OLS(y, design).fit()
    return TwoRegimes(
        float(breakpoint), source, below_r, above_r,
        compare_correlations(below_r.pearson.r, below_r.n, above_r.pearson.r, above_r.n),
        float(fit.params[3]), float(fit.bse[3]), float(fit.pvalues[3]), int(x.size))


# ----- ranks that respect significance ------------------------------------------
@dataclass(frozen=True)
class SignificanceRanks(_Result):
    ranks: tuple[int, ...]  # 1 + number of models significantly better
    adjusted_pvalues: tuple[tuple[float, ...], ...]  # Holm-adjusted, symmetric, 1 on the diagonal
    alpha: float


def significance_ranks(accuracies: Sequence[float], pvalues, alpha: float = 0.05) -> SignificanceRanks:
    """Rank models by how many others are *significantly* better, not by raw order.

    ``pvalues`` is the symmetric matrix of pairwise tests (e.g. McNemar); they are
    Holm-adjusted over all pairs. A model's rank is 1 + the number of models with a
    higher accuracy whose adjusted p-value is below ``alpha``; so models whose
    differences are not significant, and exact ties, share a rank.
    """
    acc = _as_float_vector(accuracies, "accuracies")
    p = np.asarray(pvalues, dtype=float)
    m = acc.size
    if p.shape != (m, m):
        raise HarnessError(f"pvalues must be a {m}x{m} matrix for {m} models, got shape {p.shape}")
    if not (isinstance(alpha, float) and 0 < alpha < 1):
        raise HarnessError(f"alpha {alpha!r} must be a number strictly between 0 and 1")
    iu = np.triu_indices(m, 1)
    if not (np.allclose(p, p.T) and np.isfinite(p[iu]).all() and ((p[iu] >= 0) & (p[iu] <= 1)).all()):
        raise HarnessError("pvalues must be a symmetric matrix of probabilities between 0 and 1")
    adjusted = np.ones((m, m))
    if m > 1:
        adjusted[iu] = _holm(p[iu])
        adjusted[(iu[1], iu[0])] = adjusted[iu]
    ranks = tuple(1 + int(((acc > acc[i]) & (adjusted[i] < alpha)).sum()) for i in range(m))
    return SignificanceRanks(ranks, tuple(tuple(float(v) for v in row) for row in adjusted), alpha)


def _holm(p: np.ndarray) -> np.ndarray:
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (p.size - np.arange(p.size))
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(scaled))
    out = np.empty_like(p)
    out[order] = adjusted_sorted
    return out


# ----- effective robustness (Taori et al. 2020) -----------------------------------
def logit(p) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.log(p) - np.log1p(-p)


def expit(z) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


@dataclass(frozen=True)
class EffectiveRobustness(_Result):
    """The linear fit logit(shifted) = intercept + slope * logit(reference) over a population of models,
    and each model's effective robustness: its shifted accuracy minus the fit's prediction (fractions).

    Intervals are percentile bootstraps that resample the models (refitting the line) and, within each
    model, its samples (a binomial draw of each accuracy from its n), so they include both the
    uncertainty of the line and that of the model's own two accuracies.
    """
    slope: Interval
    intercept: Interval
    predicted: tuple[float, ...]  # the fit's shifted accuracy at each model's reference accuracy
    effective: tuple[Interval, ...]  # per model, in the order given
    n: int  # models


def _clip_accuracy(acc: np.ndarray, n: np.ndarray) -> np.ndarray:
    # logit(0) and logit(1) are infinite: an accuracy of 0 or 1 counts as half a sample off the bound
    return np.clip(acc, 0.5 / n, 1 - 0.5 / n)


def _weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares lines of y on x, one per row of the weights (bootstrap counts of each model)."""
    sw = w.sum(axis=-1)
    mx = (w * x).sum(axis=-1) / sw
    my = (w * y).sum(axis=-1) / sw
    dx = x - mx[..., None]
    sxx = (w * dx * dx).sum(axis=-1)
    sxy = (w * dx * (y - my[..., None])).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = sxy / sxx
    return slope, my - slope * mx


def effective_robustness(reference, shifted, n_reference, n_shifted, confidence: float = 0.95,
                         n_resamples: int = 2_000, seed: int = 0) -> EffectiveRobustness:
    """Effective robustness of each model (Taori et al. 2020, "Measuring robustness to natural
    distribution shifts in image classification").

    ``reference`` and ``shifted`` are the models' accuracies (fractions) on the original test set and
    on the shifted one, ``n_reference`` and ``n_shifted`` the number of samples behind each (a number
    or one per model). The line is fitted by ordinary least squares in logit space; a model's
    effective robustness is ``shifted - expit(intercept + slope * logit(reference))``.
    """
    x = _as_float_vector(reference, "reference accuracies")
    y = _as_float_vector(shifted, "shifted accuracies")
    if x.shape != y.shape:
        raise HarnessError(f"reference ({x.size} models) and shifted ({y.size} models) accuracies must be "
                           "given for the same models")
    if x.size < 3:
        raise HarnessError(f"effective robustness needs at least 3 models to fit a line; got {x.size}")
    if ((x < 0) | (x > 1) | (y < 0) | (y > 1)).any():
        raise HarnessError("accuracies must be fractions between 0 and 1")
    n_x = np.broadcast_to(np.asarray(n_reference, dtype=np.int64), x.shape)
    n_y = np.broadcast_to(np.asarray(n_shifted, dtype=np.int64), y.shape)
    if (n_x <= 0).any() or (n_y <= 0).any():
        raise HarnessError("the numbers of samples behind each accuracy must be positive")
    confidence = _check_confidence(confidence)
    n_resamples = _check_resamples(n_resamples)
    lx, ly = logit(_clip_accuracy(x, n_x)), logit(_clip_accuracy(y, n_y))
    if np.ptp(lx) == 0:
        raise HarnessError("every model has the same reference accuracy; no line can be fitted")
    slope, intercept = _weighted_line(lx, ly, np.ones_like(lx))
    predicted = expit(intercept + slope * lx)

    rng = np.random.default_rng(seed)
    m = x.size
    weights = np.stack([np.bincount(rng.integers(0, m, m), minlength=m) for _ in range(n_resamples)]).astype(float)
    bx = rng.binomial(n_x, x, size=(n_resamples, m)) / n_x
    by = rng.binomial(n_y, y, size=(n_resamples, m)) / n_y
    blx, bly = logit(_clip_accuracy(bx, n_x)), logit(_clip_accuracy(by, n_y))
    b_slope, b_intercept = _weighted_line(blx, bly, weights)
    ok = np.isfinite(b_slope)  # a resample of models that all share one reference accuracy fits no line
    b_slope, b_intercept = b_slope[ok], b_intercept[ok]
    b_effective = by[ok] - expit(b_intercept[:, None] + b_slope[:, None] * blx[ok])
    q = [(1 - confidence) / 2, (1 + confidence) / 2]

    def interval(estimate: float, draws: np.ndarray, n: int) -> Interval:
        low, high = np.quantile(draws, q)
        return Interval(float(estimate), float(low), float(high), n, confidence, "percentile bootstrap")

    effective = tuple(interval(y[i] - predicted[i], b_effective[:, i], m) for i in range(m))
    return EffectiveRobustness(interval(slope, b_slope, m), interval(intercept, b_intercept, m),
                               tuple(float(p) for p in predicted), effective, m)


# ----- agreement on the line (Baek et al. 2022) --------------------------------------
@dataclass(frozen=True)
class AgreementOnTheLine(_Result):
    """Lines in probit space (``scipy.stats.norm.ppf``) over a population of models evaluated on the same
    original and shifted samples: accuracy (one point per model) and pairwise agreement (one point per
    pair of models, the share of samples on which both predict the same class). When the two lines
    coincide (Baek et al. 2022, "Agreement-on-the-line"), the agreement line, which needs no labels on the
    shifted set, predicts each model's shifted accuracy (their ALine-S estimate)."""
    accuracy_line: Line
    agreement_line: Line
    reference_accuracy: tuple[float, ...]
    shifted_accuracy: tuple[float, ...]
    predicted_accuracy: tuple[float, ...]  # from the reference accuracy through the agreement line
    mean_absolute_error: float  # of the predicted vs the measured shifted accuracy, as a fraction
    n_pairs: int
    n: int  # models


def _agreement(predictions: np.ndarray) -> np.ndarray:
    """Pairwise agreement of the rows of a models x samples matrix, in ``combinations`` order."""
    return np.array([np.mean(predictions[i] == predictions[j]) for i, j in combinations(range(len(predictions)), 2)])


def _probit(p: np.ndarray, n: int) -> np.ndarray:
    return stats.norm.ppf(np.clip(p, 0.5 / n, 1 - 0.5 / n))


def agreement_on_the_line(reference_predictions, reference_labels, shifted_predictions,
                          shifted_labels) -> AgreementOnTheLine:
    """Agreement-on-the-line over models whose top-1 classes are the rows of ``*_predictions``
    (models x samples, the same models in the same order on both sets; samples aligned with labels)."""
    ref, shift = np.asarray(reference_predictions), np.asarray(shifted_predictions)
    ref_y, shift_y = np.asarray(reference_labels), np.asarray(shifted_labels)
    if ref.ndim != 2 or shift.ndim != 2 or len(ref) != len(shift):
        raise HarnessError("predictions must be models x samples matrices with the same models on both sets; got "
                           f"shapes {ref.shape} and {shift.shape}")
    if len(ref) < 4:  # the accuracy line is fitted through one point per model (fit_line needs 4)
        raise HarnessError(f"agreement on the line needs at least 4 models; got {len(ref)}")
    if ref.shape[1] != ref_y.size or shift.shape[1] != shift_y.size:
        raise HarnessError(f"the labels ({ref_y.size} and {shift_y.size}) must cover the predictions' samples "
                           f"({ref.shape[1]} and {shift.shape[1]})")
    n_ref, n_shift = ref.shape[1], shift.shape[1]
    acc_ref, acc_shift = (ref == ref_y).mean(axis=1), (shift == shift_y).mean(axis=1)
    agree_ref, agree_shift = _agreement(ref), _agreement(shift)
    accuracy_line = fit_line(_probit(acc_ref, n_ref), _probit(acc_shift, n_shift))
    agreement_line = fit_line(_probit(agree_ref, n_ref), _probit(agree_shift, n_shift))
    predicted = stats.norm.cdf(agreement_line.intercept + agreement_line.slope * _probit(acc_ref, n_ref))
    return AgreementOnTheLine(accuracy_line, agreement_line, tuple(map(float, acc_ref)), tuple(map(float, acc_shift)),
                              tuple(map(float, predicted)), float(np.abs(predicted - acc_shift).mean()),
                              int(agree_ref.size), int(len(ref)))
