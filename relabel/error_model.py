"""The suspicion, learnt from a reference where one exists, and only applied where it was not learnt.

With a reference label set on the same samples (ImageNet: ReaL, people's labels), a multinomial
logistic model maps each sample's evidence (:func:`relabel.suspicion.sample_features`) to three
probabilities: the given label is wrong, the image is multi-label (the label holds, others too),
the models are wrong (the label holds alone). Besides the zoo's evidence it sees what the
reference says about the sample's class pair and classes elsewhere — how often people rejected
label g when the zoo said b (ambiguous pairs, duplicate classes, objects that co-occur) —
smoothed toward the overall rate with ``smoothing`` pseudo-samples. Its ridge penalty is chosen by
held-out likelihood inside the samples it is fitted on (:func:`choose_penalty`).

Cross-fitting keeps it honest: the samples (in key order) are split into two halves by position
parity; each half is scored by a model fitted on the other half only, and the reference's class
and pair rates a model is fitted with are themselves computed out-of-fold (5 folds inside its
half), so no sample's own reference labels reach its score. Every number in the output is
therefore an out-of-sample prediction, and its calibration can be read against the reference.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.errors import HarnessError

from .suspicion import HOLDS, MULTI, OUTCOMES, WRONG, logit

INNER_FOLDS = 5
PENALTIES = (1.0, 10.0, 100.0, 1000.0)  # ridge penalties tried on standardised features (choose_penalty)


def rate_by_key(codes: np.ndarray, hit: np.ndarray, train: np.ndarray, smoothing: float) -> np.ndarray:
    """Per sample, the smoothed rate of ``hit`` among training samples with the same code."""
    base = hit[train].mean() if train.any() else 0.5
    keys, inverse = np.unique(codes, return_inverse=True)
    total = np.bincount(inverse[train], minlength=len(keys)).astype(float)
    hits = np.bincount(inverse[train], weights=hit[train].astype(float), minlength=len(keys))
    return ((hits + smoothing * base) / (total + smoothing))[inverse]


def reference_rates(codes: list[np.ndarray], outcome: np.ndarray, train: np.ndarray,
                    smoothing: float) -> np.ndarray:
    """samples × (2 · len(codes)): logits of the reference's wrong and multi-label rates per code."""
    labelled = train & (outcome >= 0)
    columns = [logit(rate_by_key(c, outcome == what, labelled, smoothing)) for c in codes for what in (WRONG, MULTI)]
    return np.column_stack(columns)


def out_of_fold_rates(codes, outcome, train, smoothing) -> np.ndarray:
    """Reference rates for the training samples, each from the other inner folds of its half."""
    rates = np.zeros((len(outcome), 2 * len(codes)))
    members = np.flatnonzero(train)
    fold = np.arange(len(members)) % INNER_FOLDS
    for f in range(INNER_FOLDS):
        inner = np.zeros(len(outcome), bool)
        inner[members[fold != f]] = True
        rates[members[fold == f]] = reference_rates(codes, outcome, inner, smoothing)[members[fold == f]]
    return rates


def multinomial_logistic(X: np.ndarray, y: np.ndarray, n_outcomes: int, penalty: float = 1.0,
                         max_iter: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Weights ((features + 1) × outcomes, the last row the intercepts; the last outcome's column
    is 0, the reference) of the multinomial logistic model maximising Σ log p(y) − penalty/2 ·
    ‖w‖² (intercepts unpenalised), by Newton's method with step halving: the log-likelihood is
    concave, so it converges in a few dozen steps where a quasi-Newton solver takes minutes on
    these correlated features."""
    n, d = X.shape
    Z = np.hstack([X, np.ones((n, 1))])
    m = n_outcomes - 1
    onehot = np.zeros((n, n_outcomes))
    onehot[np.arange(n), y] = 1.0
    ridge = np.full(d + 1, penalty)
    ridge[-1] = 0.0
    w = np.zeros((d + 1, m))

    def objective(weights):
        eta = np.hstack([Z @ weights, np.zeros((n, 1))])
        top = eta.max(1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(eta - top).sum(1))
        return float((eta * onehot).sum() - log_norm.sum() - 0.5 * (ridge[:, None] * weights ** 2).sum()), eta, log_norm

    value, eta, log_norm = objective(w)
    for _ in range(max_iter):
        p = np.exp(eta - log_norm[:, None])[:, :m]
        grad = (Z.T @ (onehot[:, :m] - p) - ridge[:, None] * w).T.reshape(-1)
        hess = np.empty((m * (d + 1), m * (d + 1)))
        for a in range(m):
            for b in range(a, m):
                weight = p[:, a] * ((a == b) - p[:, b])
                block = (Z * weight[:, None]).T @ Z
                if a == b:
                    block += np.diag(ridge)
                hess[a * (d + 1):(a + 1) * (d + 1), b * (d + 1):(b + 1) * (d + 1)] = block
                hess[b * (d + 1):(b + 1) * (d + 1), a * (d + 1):(a + 1) * (d + 1)] = block.T
        step = np.linalg.solve(hess, grad).reshape(m, d + 1).T
        t = 1.0
        while True:
            new_value, new_eta, new_norm = objective(w + t * step)
            if new_value >= value or t < 1e-8:
                break
            t /= 2
        gain = new_value - value
        w, value, eta, log_norm = w + t * step, new_value, new_eta, new_norm
        if gain <= tol * abs(value):
            break
    return np.hstack([w, np.zeros((d + 1, 1))])


def fit_and_score(X: np.ndarray, outcome: np.ndarray, train: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Probabilities (samples of ``score`` × 3 outcomes) of a multinomial logistic model fitted on
    the labelled samples of ``train`` (features standardised on them)."""
    fit_rows = train & (outcome >= 0)
    present = np.unique(outcome[fit_rows])
    if len(present) < 3:
        raise HarnessError(f"the reference has {len(present)} of the 3 outcomes ({', '.join(OUTCOMES)}) on the "
                           "samples a model is fitted on; it needs all three")
    from threadpoolctl import threadpool_limits

    mean, std = X[fit_rows].mean(0), X[fit_rows].std(0)
    std[std == 0] = 1.0
    # One BLAS thread: the products are small, a shared machine makes threads wait on each other
    # (10 s instead of 0.4 s measured under load), and the sums then never depend on thread count.
    Z, y = (X[fit_rows] - mean) / std, outcome[fit_rows]
    with threadpool_limits(limits=1):
        penalty = choose_penalty(Z, y)
        weights = multinomial_logistic(Z, y, 3, penalty=penalty)
        return softmax(np.hstack([(X[score] - mean) / std, np.ones((int(score.sum()), 1))]) @ weights)


def softmax(eta: np.ndarray) -> np.ndarray:
    eta = eta - eta.max(1, keepdims=True)
    proba = np.exp(eta)
    return proba / proba.sum(1, keepdims=True)


def choose_penalty(Z: np.ndarray, y: np.ndarray) -> float:
    """The ridge penalty of :data:`PENALTIES` with the best held-out log-likelihood in a 2-fold split of the
    fitting samples (by position parity; ties to the smaller penalty): a small reference (a few thousand
    labelled samples for some 50 weights) needs a strong one, the whole of ReaL a weak one."""
    fold = np.arange(len(y)) % 2
    best, best_score = PENALTIES[0], -np.inf
    for penalty in PENALTIES:
        score = 0.0
        for held in (0, 1):
            fit, test = fold != held, fold == held
            if len(np.unique(y[fit])) < 3:
                return PENALTIES[-1]
            weights = multinomial_logistic(Z[fit], y[fit], 3, penalty=penalty, tol=1e-8)
            proba = softmax(np.hstack([Z[test], np.ones((int(test.sum()), 1))]) @ weights)
            score += float(np.log(np.maximum(proba[np.arange(int(test.sum())), y[test]], 1e-300)).sum())
        if score > best_score:
            best, best_score = penalty, score
    return best


def cross_fitted(features: pd.DataFrame, given: np.ndarray, outcome: np.ndarray, n_classes: int,
                 smoothing: float = 5.0) -> pd.DataFrame:
    """Out-of-sample ``p_wrong``, ``p_multi``, ``p_models_wrong`` and the ``fold`` (0 or 1) each
    sample was scored in. ``outcome`` per sample: WRONG, MULTI, HOLDS or −1 (no reference)."""
    n = len(given)
    if len(features) != n or len(outcome) != n:
        raise HarnessError(f"features, labels and reference outcomes must cover the same {n} samples")
    alt = features["alt"].to_numpy(np.int64)
    codes = [given * n_classes + np.maximum(alt, 0) + n_classes * n_classes * (alt < 0), given, alt]
    zoo = features.drop(columns="alt").to_numpy(float)
    half = np.arange(n) % 2
    proba = np.zeros((n, 3))
    for fold in (0, 1):
        train, score = half != fold, half == fold
        rates = np.where(train[:, None], out_of_fold_rates(codes, outcome, train, smoothing),
                         reference_rates(codes, outcome, train, smoothing))
        proba[score] = fit_and_score(np.hstack([zoo, rates]), outcome, train, score)
    return pd.DataFrame({"p_wrong": proba[:, WRONG], "p_multi": proba[:, MULTI],
                         "p_models_wrong": proba[:, HOLDS], "fold": half})
