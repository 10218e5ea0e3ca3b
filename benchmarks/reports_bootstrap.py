"""Bootstrap of an accuracy: drawing counts (reports.stats) vs resampling sample indices, side by side.

Both are the percentile bootstrap over samples; the count draw uses that the number of correct samples
in a resample is Binomial(n, k/n) (paired: the four agreement cells are Multinomial). Data: ResNet50 and
DINO top-1 correctness on the 50,000 ImageNet validation images (original labels), from ../shared/data.

    .venv/bin/python benchmarks/reports_bootstrap.py   # writes benchmarks/results/reports.md
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from reports import stats

DATA = Path(os.environ.get("REALBENCH_MIRROR", Path(__file__).resolve().parents[2] / "shared" / "data"))
RESAMPLES = 2_000
REPEATS = 5


def correctness(model: str) -> np.ndarray:
    folder = DATA / "imagenet"
    index = {s: i for i, s in enumerate((folder / "imagenet_synsets.txt").read_text().split())}
    truth = pd.read_csv(folder / "LOC_val_solution.csv")
    truth = truth.set_index("ImageId").PredictionString.str.split().str[0].map(index).sort_index()
    pred = pd.read_csv(folder / "model_predictions" / f"{model}.csv")
    pred = pred.set_index(pred.file_name.str.replace(".JPEG", "", regex=False)).predicted_class
    return (pred.reindex(truth.index) == truth).to_numpy()


def index_bootstrap(a: np.ndarray, b: np.ndarray | None, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    values = a.astype(np.int8) if b is None else a.astype(np.int8) - b.astype(np.int8)
    draws = np.empty(RESAMPLES)
    for start in range(0, RESAMPLES, 100):  # batches keep memory at 100 x n
        idx = rng.integers(0, values.size, size=(100, values.size))
        draws[start:start + 100] = values[idx].mean(axis=1)
    low, high = np.quantile(draws, [0.025, 0.975])
    return float(low), float(high)


def timed(fn) -> tuple[float, tuple[float, float]]:
    times, result = [], None
    for _ in range(REPEATS):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    a, b = correctness("ResNet50"), correctness("DINO")
    rows = []
    cases = {
        "accuracy (ResNet50)": (lambda: index_bootstrap(a, None, 1),
                                lambda: (lambda r: (r.low, r.high))(stats.bootstrap_accuracy(a, 0.95, RESAMPLES, 1))),
        "paired difference (ResNet50 - DINO)": (
            lambda: index_bootstrap(a, b, 2),
            lambda: (lambda r: (r.low, r.high))(stats.paired_bootstrap_difference(a, b, 0.95, RESAMPLES, 2))),
    }
    for name, (baseline, ours) in cases.items():
        t_base, ci_base = timed(baseline)
        t_ours, ci_ours = timed(ours)
        rows.append(f"| {name} | {t_base * 1000:.1f} | {t_ours * 1000:.3f} | {t_base / t_ours:,.0f}x | "
                    f"[{100 * ci_base[0]:.2f}, {100 * ci_base[1]:.2f}] | [{100 * ci_ours[0]:.2f}, {100 * ci_ours[1]:.2f}] |")
    text = "\n".join([
        "# reports: bootstrap by counts vs by indices",
        "",
        f"`benchmarks/reports_bootstrap.py`: n = {a.size:,} samples, {RESAMPLES:,} resamples, median of {REPEATS} "
        f"runs, side by side in one process ({os.cpu_count()} cores, shared machine).",
        "The two 95% intervals are Monte Carlo estimates of the same quantiles (different random streams).",
        "",
        "| bootstrap | indices, ms | counts, ms | speed-up | 95% CI by indices, % | 95% CI by counts, % |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ])
    out = Path(__file__).resolve().parent / "results" / "reports.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
