"""Do the models that gain most on ReaL gain on ImageNetV2? (timm's published tables, from the store)

For every (model, input size) row that timm measured on the original labels, on ReaL and on
ImageNetV2 (matched frequency), two correlations across models, each with its Fisher-z interval:

- the raw gaps, ReaL − original against V2 − original (points). Both gaps depend on the original
  accuracy itself (better models gain less on ReaL and lose less on V2), so this correlation
  mostly measures that shared dependence;
- the *effective* gains: each model's distance above or below the line that the whole population
  follows in logit space (``stats.effective_robustness``, Taori et al. 2020), on ReaL and on V2.
  This asks whether a model that beats its accuracy's expectation on ReaL also beats it on V2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.errors import HarnessError
from harness.store import Store

from . import stats
from .external import external_runs, load_aggregates

TABLES = {"original": "timm-imagenet", "real": "timm-imagenet-real", "v2": "timm-imagenetv2-matched-frequency"}


@dataclass(frozen=True)
class GapStudy:
    n_models: int
    raw_pearson: stats.Correlation
    raw_spearman: stats.Correlation
    effective_pearson: stats.Correlation
    effective_spearman: stats.Correlation


def gap_study(store: Store, confidence: float = 0.95) -> GapStudy:
    runs = {m["name"]: m for m in external_runs(store)}
    missing = [name for name in TABLES.values() if name not in runs]
    if missing:
        raise HarnessError(f"store {store.root} lacks the external table(s) {', '.join(missing)}; run "
                           "`python -m reports build-store` (or import-timm) first")
    merged = None
    for axis, name in TABLES.items():
        table = load_aggregates(store, runs[name]["run_id"])[["model", "img_size", "top1"]]
        table = table.rename(columns={"top1": axis})
        merged = table if merged is None else merged.merge(table, on=["model", "img_size"], validate="1:1")
    x, real, v2 = (merged[c].to_numpy() for c in ("original", "real", "v2"))
    n = {axis: int(runs[name]["n_samples_per_model"]) for axis, name in TABLES.items()}
    # timm publishes three decimals: rounding the differences keeps equal gaps equal (Spearman's ties)
    raw_real, raw_v2 = np.round(100 * (real - x), 6), np.round(100 * (v2 - x), 6)
    # the effective gains' point estimates; their bootstrap intervals are not needed for a correlation
    eff_real = _effective(x, real, n["original"], n["real"])
    eff_v2 = _effective(x, v2, n["original"], n["v2"])
    return GapStudy(len(merged), stats.pearson(raw_real, raw_v2, confidence),
                    stats.spearman(raw_real, raw_v2, confidence), stats.pearson(eff_real, eff_v2, confidence),
                    stats.spearman(eff_real, eff_v2, confidence))


def _effective(reference: np.ndarray, shifted: np.ndarray, n_reference: int, n_shifted: int) -> np.ndarray:
    fit = stats.effective_robustness(reference, shifted, n_reference, n_shifted, n_resamples=100)
    return 100 * np.array([e.estimate for e in fit.effective])


def describe(study: GapStudy) -> list[str]:
    def corr(c: stats.Correlation) -> str:
        return f"{c.r:+.3f} [{c.low:+.3f}, {c.high:+.3f}]"

    return [
        f"{study.n_models:,} timm rows measured on original, ReaL and ImageNetV2 (matched frequency)",
        f"raw gaps (ReaL - original vs V2 - original): Pearson {corr(study.raw_pearson)}, "
        f"Spearman {corr(study.raw_spearman)}",
        f"effective gains (distance from each logit-space line): Pearson {corr(study.effective_pearson)}, "
        f"Spearman {corr(study.effective_spearman)}",
    ]
