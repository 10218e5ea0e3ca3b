"""Dawid–Skene (1979): each rater has a confusion matrix over the answers given the true class.

One implementation serves both settings of the relabeling work:

- ReaL: a question is an (image, label) pair whose truth is no/yes (``n_classes=2``) and
  the answers are no/maybe/yes (``n_answers=3``): a 2×3 confusion matrix per rater;
- multi-class: a question is an image whose truth is one of K classes and the answers are
  those K classes (``n_classes == n_answers``): a K×K confusion matrix per rater.

The fit is EM on the marginal log-likelihood of the answers, computed with two sparse
products per iteration (questions × rater-answer cells), so the full ImageNet ratings
(924,810 answers) converge in a fraction of a second. It is deterministic: no random
start, and every sum runs in a fixed order.

Options that keep EM an EM (the objective cannot fall):

- ``fixed_confusion``: raters whose matrices are given and kept (e.g. measured on golden
  questions); only the others are re-estimated;
- ``prior``: a fixed class prior instead of a learnt one;
- ``smoothing``: Dirichlet pseudo-counts on the confusion cells, one number or a
  classes × answers array (e.g. more on the diagonal); a MAP fit whose objective then
  includes the log prior density, up to a constant;
- ``known``: questions whose truth is known (golden questions), clamped in every E-step.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from harness.errors import HarnessError

_TINY = np.finfo(np.float64).tiny


@dataclass
class DawidSkeneResult:
    posterior: np.ndarray        # (questions, classes)
    confusion: np.ndarray        # (raters, classes, answers), rows sum to 1
    prior: np.ndarray            # (classes,)
    objective: list[float] = field(default_factory=list)  # per iteration, must not fall
    iterations: int = 0
    converged: bool = False

    @property
    def log_likelihood(self) -> float:
        return self.objective[-1] if self.objective else float("nan")


def _check_codes(values, name: str, size: int | None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise HarnessError(f"{name} must be a 1-d array of integer codes, got dtype {arr.dtype} "
                           f"and shape {arr.shape}")
    if arr.size and arr.min() < 0:
        raise HarnessError(f"{name} has negative codes (first at position {int(np.argmax(arr < 0))})")
    if size is not None and arr.size and arr.max() >= size:
        raise HarnessError(f"{name} has code {int(arr.max())} but only {size} are declared")
    return arr.astype(np.int64, copy=False)


def majority_posterior(question: np.ndarray, answer: np.ndarray, n_questions: int,
                       answer_votes: np.ndarray) -> np.ndarray:
    """Each answer's vote for the classes (``answer_votes``: answers × classes), normalised per question."""
    counts = sp.csr_matrix((np.ones(len(question)), (question, answer)),
                           shape=(n_questions, answer_votes.shape[0])) @ answer_votes
    total = counts.sum(1, keepdims=True)
    uniform = np.full(answer_votes.shape[1], 1.0 / answer_votes.shape[1])
    return np.where(total > 0, counts / np.where(total > 0, total, 1.0), uniform)


def dawid_skene(question, rater, answer, *, n_classes: int, n_answers: int,
                n_questions: int | None = None, n_raters: int | None = None,
                init: np.ndarray | None = None, answer_votes: np.ndarray | None = None,
                fixed_confusion: np.ndarray | None = None, prior: np.ndarray | None = None,
                smoothing: float | np.ndarray = 0.0, known: tuple[np.ndarray, np.ndarray] | None = None,
                max_iter: int = 500, tol: float = 1e-10,
                fixed_iterations: int | None = None) -> DawidSkeneResult:
    """Fit Dawid–Skene by EM; answers are given in long form as integer codes.

    ``init``: a starting posterior (questions × classes); by default the soft majority vote,
    where ``answer_votes`` (answers × classes) says how each answer votes (the identity when
    answers are classes). ``fixed_confusion`` (raters × classes × answers) holds the matrices
    to keep, NaN for raters to learn. Stops when the objective rises by less than
    ``tol × |objective|``, or after exactly ``fixed_iterations`` iterations.
    """
    question = _check_codes(question, "question", n_questions)
    rater = _check_codes(rater, "rater", n_raters)
    answer = _check_codes(answer, "answer", n_answers)
    if not (len(question) == len(rater) == len(answer)):
        raise HarnessError(f"question, rater and answer must have equal lengths, got "
                           f"{len(question)}, {len(rater)}, {len(answer)}")
    if len(question) == 0:
        raise HarnessError("no answers to aggregate")
    if n_classes < 2:
        raise HarnessError(f"n_classes must be at least 2, got {n_classes}")
    smoothing = np.asarray(smoothing, float)
    if smoothing.ndim not in (0, 2) or np.any(smoothing < 0):
        raise HarnessError("smoothing must be a pseudo-count >= 0, or a classes × answers array of them")
    if fixed_iterations is not None and fixed_iterations < 1:
        raise HarnessError(f"fixed_iterations must be >= 1, got {fixed_iterations}")
    if smoothing.ndim == 2 and smoothing.shape != (n_classes, n_answers):
        raise HarnessError(f"smoothing must have shape {(n_classes, n_answers)} (classes, answers), "
                           f"got {smoothing.shape}")
    n_q = int(n_questions if n_questions is not None else question.max() + 1)
    n_r = int(n_raters if n_raters is not None else rater.max() + 1)
    K, A = n_classes, n_answers

    cells = rater * A + answer
    by_question = sp.csr_matrix((np.ones(len(cells)), (question, cells)), shape=(n_q, n_r * A))
    by_cell = by_question.T.tocsr()

    fixed_mask = np.zeros(n_r, bool)
    if fixed_confusion is not None:
        fixed_confusion = np.asarray(fixed_confusion, float)
        if fixed_confusion.shape != (n_r, K, A):
            raise HarnessError(f"fixed_confusion must have shape {(n_r, K, A)} (raters, classes, "
                               f"answers), got {fixed_confusion.shape}")
        fixed_mask = ~np.isnan(fixed_confusion).any(axis=(1, 2))
    if prior is not None:
        prior = np.asarray(prior, float)
        if prior.shape != (K,) or np.any(prior <= 0) or not np.isclose(prior.sum(), 1):
            raise HarnessError(f"prior must be {K} positive probabilities summing to 1, got {prior}")

    if known is not None:
        known_q = _check_codes(known[0], "known questions", n_q)
        known_class = _check_codes(known[1], "known classes", K)
        if len(known_class) != len(known_q):
            raise HarnessError("known questions and known classes must have equal lengths")

    if init is None:
        if answer_votes is None:
            if A != K:
                raise HarnessError(f"with {A} answers for {K} classes, give answer_votes "
                                   "(how each answer votes) or an init posterior")
            answer_votes = np.eye(K)
        post = majority_posterior(question, answer, n_q, np.asarray(answer_votes, float))
    else:
        post = np.array(init, float)
        if post.shape != (n_q, K):
            raise HarnessError(f"init must have shape {(n_q, K)}, got {post.shape}")
    # Class-major layout: one contiguous row per class keeps every step a vector operation.
    post = np.ascontiguousarray(post.T)
    if known is not None:
        post[:, known_q] = 0.0
        post[known_class, known_q] = 1.0
    cell_totals = np.asarray(by_cell.sum(1)).ravel()

    result = DawidSkeneResult(post, np.empty((n_r, K, A)), np.empty(K))
    limit = fixed_iterations or max_iter
    for it in range(1, limit + 1):
        # M-step: expected answer counts per (rater, answer, class); the last class's counts
        # are what the others leave of each cell's total.
        counts = np.empty((K, n_r * A))
        for k in range(K - 1):
            counts[k] = by_cell @ post[k]
        counts[K - 1] = cell_totals - counts[:K - 1].sum(0)
        counts = np.maximum(counts, 0.0).reshape(K, n_r, A).transpose(1, 0, 2) + smoothing
        totals = counts.sum(2, keepdims=True)
        confusion = np.divide(counts, totals, out=np.full_like(counts, 1.0 / A), where=totals > 0)
        if fixed_mask.any():
            confusion[fixed_mask] = fixed_confusion[fixed_mask]
        class_prior = prior if prior is not None else np.maximum(post.sum(1) / n_q, _TINY)
        class_prior = class_prior / class_prior.sum()

        # E-step: log joint per class and question, then the posterior and the marginal.
        log_conf = np.log(np.maximum(confusion, _TINY))
        cell_logs = log_conf.transpose(1, 0, 2).reshape(K, n_r * A)
        joint = np.empty((K, n_q))
        for k in range(K):
            joint[k] = by_question @ cell_logs[k]
            joint[k] += np.log(class_prior[k])
        if known is not None:
            clamp = np.full((K, len(known_q)), -np.inf)
            clamp[known_class, np.arange(len(known_q))] = 0.0
            joint[:, known_q] += clamp
        top = joint.max(0)
        joint -= top
        np.exp(joint, out=joint)
        norm = joint.sum(0)
        post = joint
        post /= norm
        objective = float(top.sum() + np.log(norm).sum())
        if np.any(smoothing > 0):
            objective += float((smoothing * log_conf[~fixed_mask]).sum())
        result.objective.append(objective)
        result.iterations = it
        if fixed_iterations is None and it > 1:
            gain = objective - result.objective[-2]
            if gain <= tol * abs(objective):
                result.converged = True
                break
    result.posterior, result.confusion, result.prior = post.T.copy(), confusion, class_prior
    return result


def binary_log_likelihood_ratio(confusion: np.ndarray) -> np.ndarray:
    """log P(answer | yes) − log P(answer | no) per rater and answer, for 2-class fits."""
    return np.log(np.maximum(confusion[:, 1], _TINY)) - np.log(np.maximum(confusion[:, 0], _TINY))
