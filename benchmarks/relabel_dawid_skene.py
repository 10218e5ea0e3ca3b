"""Aggregation speed on the full ImageNet ratings, against crowd-kit side by side: Dawid–Skene
and the one-coin model (each the same model, start and iteration count on both sides).

    .venv/bin/python benchmarks/relabel_dawid_skene.py [--repeats 5] [--iterations 20]

Data: raters.npz, 924,810 answers by 85 raters on 184,962 (image, label) questions, plus
the original-label virtual rater on the animal classes (the paper's setting).

Measured (medians; runs alternate ours, crowd-kit, ours, ... so machine noise hits both):

1. the target: our 2×3 (truth no/yes, answers no/maybe/yes) EM to convergence, with the
   virtual rater, as ``python -m relabel`` runs it — must be <= 1 s on the 2-core machine;
2. the same work on both sides: crowd-kit only has the multi-class model, so both run the
   3-class model (truth in {no, maybe, yes}) on the same answers for exactly ``--iterations``
   EM iterations from the same majority-vote start (crowd-kit with ``tol=-inf``, ours with
   ``fixed_iterations``); the ratio is crowd-kit time / our time, and the largest posterior
   difference shows the two compute the same thing;
3. crowd-kit to its own default convergence (``tol=1e-5`` on the ELBO per answer);
4. the one-coin model (``relabel/one_coin.py``) against crowd-kit's ``OneCoinDawidSkene``,
   same 3-class model, same start and iterations;
5. what bounds ours: the 4 sparse products an iteration of the 3-class model needs (2 for the
   M-step's expected counts, 2 for the E-step's log-odds), timed alone.

Writes its section of benchmarks/results/relabel.md. crowd-kit is the ``bench`` extra, not a
runtime dependency: ``pip install -e '.[bench]'``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("REALBENCH_MIRROR", str(REPO.parent / "shared" / "data"))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    from crowdkit.aggregation import DawidSkene, OneCoinDawidSkene

    from relabel.real import load_real_data, original_label_rater
    from relabel_results import write_section

    data = load_real_data()
    ratings = data.ratings
    with_virtual = ratings.with_virtual(original_label_rater(data.original))
    long = pd.DataFrame({"task": ratings.question, "worker": ratings.rater, "label": ratings.answer})

    answers = ratings.answers(3)
    vectors = np.random.default_rng(0).random((2, len(ratings.questions)))
    cells = np.random.default_rng(1).random((2, answers.by_question.shape[1]))

    def products_alone():
        for _ in range(args.iterations):
            for k in range(2):
                answers.by_cell @ vectors[k]
                answers.by_question @ cells[k]

    ours_converged, ours_fixed, ck_fixed, ck_default = [], [], [], []
    ours_coin, ck_coin, products = [], [], []
    for _ in range(args.repeats):
        t, fit = timed(lambda: with_virtual.fit())
        ours_converged.append(t)
        t, ours3 = timed(lambda: ratings.fit(n_classes=3, fixed_iterations=args.iterations))
        ours_fixed.append(t)
        t, ck = timed(lambda: DawidSkene(n_iter=args.iterations, tol=-np.inf).fit(long))
        ck_fixed.append(t)
        t, coin = timed(lambda: ratings.fit("one-coin", n_classes=3, fixed_iterations=args.iterations))
        ours_coin.append(t)
        t, ck_one = timed(lambda: OneCoinDawidSkene(n_iter=args.iterations, tol=-np.inf).fit(long))
        ck_coin.append(t)
        products.append(timed(products_alone)[0])
    for _ in range(max(1, args.repeats // 2)):
        t, ck_conv = timed(lambda: DawidSkene().fit(long))
        ck_default.append(t)

    ck_post = ck.probas_.reindex(index=np.arange(len(ratings.questions)), columns=[0, 1, 2]).to_numpy()
    parity = float(np.abs(ck_post - ours3.posterior).max())
    same_argmax = float(np.mean(ck_post.argmax(1) == ours3.posterior.argmax(1)))
    coin_post = ck_one.probas_.reindex(index=np.arange(len(ratings.questions)), columns=[0, 1, 2]).to_numpy()
    coin_parity = float(np.abs(coin_post - coin.posterior).max())
    rises = bool(np.all(np.diff(fit.objective) >= -1e-9 * np.abs(fit.objective[1:])))

    med = statistics.median
    load = os.getloadavg()
    ratio = med(ck_fixed) / med(ours_fixed)
    coin_ratio = med(ck_coin) / med(ours_coin)
    bound = med(ck_fixed) / med(products)
    share = med(products) / med(ours_fixed)
    target = 30.0
    verdict = (f"meets the {target:.0f}× target" if ratio >= target else
               f"is short of the {target:.0f}× target by {target / ratio:.2f}×")
    body = f"""## Aggregation speed: full ImageNet ratings

{ratings.n_answers:,} answers by {len(ratings.raters)} raters on {len(ratings.questions):,} questions
(+ {with_virtual.n_answers - ratings.n_answers:,} answers of the original-label virtual rater on classes 0–397).
Medians of {args.repeats} runs (crowd-kit's default-tolerance run: {len(ck_default)}), alternating ours and crowd-kit.

| what | time | iterations |
|---|---:|---:|
| ours, 2×3 EM with the virtual rater, to convergence (target ≤ 1 s) | {med(ours_converged):.3f} s | {fit.iterations} |
| ours, 3-class model, fixed iterations | {med(ours_fixed):.3f} s | {args.iterations} |
| crowd-kit {_version()} DawidSkene, 3-class, fixed iterations | {med(ck_fixed):.3f} s | {args.iterations} |
| crowd-kit DawidSkene, its default tolerance | {med(ck_default):.3f} s | {len(ck_conv.loss_history_)} |
| ours, one-coin, 3-class, fixed iterations | {med(ours_coin):.3f} s | {args.iterations} |
| crowd-kit OneCoinDawidSkene, 3-class, fixed iterations | {med(ck_coin):.3f} s | {args.iterations} |
| ours: the 4 sparse products per iteration alone (the floor of this formulation) | {med(products):.3f} s | {args.iterations} |

- **Ratio, same work (crowd-kit / ours, {args.iterations} iterations of the same model): {ratio:.1f}×**; it
  {verdict}. What bounds it: the 4 sparse products of each iteration (questions × 255 rater-answer
  cells, 924,810 non-zeros; memory-bound, one thread) are {100 * share:.0f}% of our time; with
  everything else free the ratio would be {bound:.1f}×. The rest (exponentials, one per question and
  non-reference class; logarithms batched 256 to one) is already below them.
- **One-coin: crowd-kit / ours {coin_ratio:.1f}×** on the same {args.iterations} iterations; largest posterior
  difference {coin_parity:.1e} (`tests/test_relabel_aggregation.py` checks the same to 1e-8 on 800 images).
- Same computation: after {args.iterations} iterations the largest posterior difference between the two is
  {parity:.1e} (crowd-kit floors every prior and confusion cell at 1e-10, we do not); the most
  probable answer agrees on {100 * same_argmax:.3f}% of questions.
- Our EM's marginal log-likelihood rose at every one of its {fit.iterations} iterations: {rises}
  (final {fit.log_likelihood:,.2f}).
- crowd-kit's default stopping rule (ELBO gain per answer < 1e-5) ends after
  {len(ck_conv.loss_history_)} iteration(s); ours stops when the log-likelihood gains less than 1e-10 of itself.
- The machine is shared: load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) at the end of the runs.
"""
    path = write_section("relabel_dawid_skene", body)
    print(body)
    print(f"written to {path}")


def _version() -> str:
    from importlib.metadata import version

    return version("crowd-kit")


if __name__ == "__main__":
    main()
