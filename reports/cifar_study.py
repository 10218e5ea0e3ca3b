"""The CIFAR-10 relabelling study: ``python -m reports cifar-study``.

For the 30 published models of the CIFAR-10.1 study (and any other run on the CIFAR-10 test set):
accuracy on the original labels, on CIFAR-10H (human agreement, and the ReaL-style label set
``cifar10h-real``), on the crowd-corrected labels, and on CIFAR-10.1 v4/v6; the correlations across
models and the tests between regimes; which models gain or lose most under relabelling; the original
labels' own score under CIFAR-10H.

The command fills the store with the shipped CIFAR files (idempotent, as ``build-store`` does),
runs the four CIFAR ResNets on the 10,000 JPEG test images where the store has no complete run of
them (about 10-20 s each on the CPU), and writes ``leaderboards/cifar-study.{md,png,csv}`` and,
through the ``cifar10h`` spec, ``leaderboards/cifar10h.{md,html,png}``. Own runs join the per-model
table; the statistics across models compare the 30 published models only.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from harness.cifar import CIFAR10_TEST, cifar10h_counts, human_agreement, published_models
from harness.errors import HarnessError
from harness.score import per_sample
from harness.store import Store
from relabel.cifar import label_sets as share_label_sets

from . import stats
from .publish import render_leaderboard, write_files
from .shipped import CIFAR10H_MIN_SHARE as MIN_SHARE
from .shipped import CIFAR10H_REAL as REAL_STYLE
from .shipped import import_shipped_cifar, register_cifar10h_real
from .spec import LEADERBOARD_DIR

OWN_RUNS = ("resnet20-cifar", "resnet32-cifar", "resnet44-cifar", "resnet56-cifar")
OWN_RUN_BATCH = 256


SWEEP = (0.1, 0.2, 0.3, 0.4, 0.5)
BREAKPOINT_MIN_SIDE = 8
LABELS_RUN = "original_labels"

# (column, suite's dataset, label set, metric, header)
REGIMES = (
    ("original", CIFAR10_TEST, "cifar10-original", "top1", "original labels"),
    ("cifar10h_agreement", CIFAR10_TEST, "cifar10h", "agreement", "CIFAR-10H human agreement"),
    ("cifar10h_real", CIFAR10_TEST, REAL_STYLE, "top1", f"CIFAR-10H ReaL-style (share >= {MIN_SHARE:g})"),
    ("corrected", CIFAR10_TEST, "cifar10-corrected", "top1", "crowd-corrected labels"),
    ("v4", "cifar10.1-v4", "cifar10.1-v4-original", "top1", "CIFAR-10.1 v4"),
    ("v6", "cifar10.1-v6", "cifar10.1-v6-original", "top1", "CIFAR-10.1 v6"),
)
HEADERS = {col: header for col, _, _, _, header in REGIMES}
Z_TESTS = (("cifar10h_agreement", "v6"), ("cifar10h_real", "v6"), ("cifar10h_agreement", "v4"),
           ("cifar10h_real", "corrected"))


def ensure_own_runs(store: Store, models=OWN_RUNS, quiet: bool = True) -> dict[str, str]:
    """A complete run of each model on the CIFAR-10 test JPEGs: the store's latest, else a new one."""
    from harness.runner import run_classification
    from harness.suites import get_suite

    latest = {m["name"]: m["run_id"] for m in store.list_runs("complete") if m.get("dataset") == CIFAR10_TEST}
    for model in models:
        if model not in latest:
            if not quiet:
                print(f"running {model} on the CIFAR-10 test images ...", flush=True)
            latest[model] = run_classification(store, get_suite("cifar10"), model, batch_size=OWN_RUN_BATCH,
                                               quiet=quiet)
    return {m: latest[m] for m in models}


def _score(store: Store, run_id: str, label_set: str, metric: str) -> float:
    if metric == "agreement":
        return float(human_agreement(store, run_id, label_set)["human_agreement"].mean())
    return float(per_sample(store, run_id, label_set)["correct_top1"].mean())


def model_table(store: Store) -> pd.DataFrame:
    """One row per run name: each regime's score in percent (NaN where the run's dataset lacks it)."""
    latest: dict[tuple[str, str], dict] = {}
    for meta in store.list_runs("complete"):
        latest[meta["name"], meta.get("dataset")] = meta
    names = sorted({name for name, dataset in latest if dataset == CIFAR10_TEST})
    published = set(published_models())
    rows = []
    for name in names:
        row = {"model": name, "source": "published" if name in published else
               ("labels" if name == LABELS_RUN else latest[name, CIFAR10_TEST].get("kind", "run"))}
        for col, dataset, label_set, metric, _ in REGIMES:
            meta = latest.get((name, dataset))
            row[col] = 100 * _score(store, meta["run_id"], label_set, metric) if meta else np.nan
        rows.append(row)
    if not any(r["source"] == "published" for r in rows):
        raise HarnessError(f"store {store.root} holds none of the published CIFAR-10 runs; fill it first "
                           "(python -m reports build-store)")
    return pd.DataFrame(rows)


def sweep(store: Store, table: pd.DataFrame) -> pd.DataFrame:
    """ReaL-style top-1 at several thresholds: the original labels and the published models' mean."""
    runs = {m["name"]: m["run_id"] for m in store.list_runs("complete") if m.get("dataset") == CIFAR10_TEST}
    published = table.loc[table.source == "published", "model"]
    counts = cifar10h_counts()
    out = []
    for share in SWEEP:
        name = f"{REAL_STYLE}-sweep"
        register_cifar10h_real(store, share, name)
        labels, _ = share_label_sets(counts, share)
        sizes = np.array([len(x) for x in labels])
        accs = [100 * _score(store, runs[m], name, "top1") for m in published]
        out.append({"min_share": share, "images_kept": int((sizes > 0).sum()), "multi_label": int((sizes > 1).sum()),
                    "original_labels": 100 * _score(store, runs[LABELS_RUN], name, "top1"),
                    "models_mean": float(np.mean(accs)), "models_min": float(np.min(accs)),
                    "models_max": float(np.max(accs))})
    return pd.DataFrame(out)


def statistics(table: pd.DataFrame) -> dict:
    pub = table[table.source == "published"]
    x = pub.original.to_numpy()
    out = {"correlations": {}, "lines": {}}
    for col in ("cifar10h_agreement", "cifar10h_real", "corrected", "v4", "v6"):
        y = pub[col].to_numpy()
        out["correlations"][col] = (stats.pearson(x, y), stats.spearman(x, y))
        out["lines"][col] = stats.fit_line(x, y)
    r = {col: p.r for col, (p, _) in out["correlations"].items()}
    n = len(pub)
    # r(original, A) vs r(original, B) on the same models: overlapping, dependent correlations
    out["z_tests"] = [(a, b, stats.compare_dependent_correlations(r[a], r[b], stats.pearson(pub[a], pub[b]).r, n))
                      for a, b in Z_TESTS]
    out["regimes"] = {col: stats.two_regimes(x, pub[col].to_numpy(), None, min_side=BREAKPOINT_MIN_SIDE)
                      for col in ("cifar10h_agreement", "v6")}
    return out


def movers(table: pd.DataFrame, col: str, line: stats.Line) -> pd.DataFrame:
    """Rank change from the original labels to ``col`` and the distance from the fitted line, per model."""
    pub = table[table.source == "published"].copy()
    pub["rank_original"] = pub.original.rank(ascending=False, method="min").astype(int)
    pub["rank_relabelled"] = pub[col].rank(ascending=False, method="min").astype(int)
    pub["rank_change"] = pub.rank_original - pub.rank_relabelled
    pub["residual"] = pub[col] - (line.intercept + line.slope * pub.original)
    return pub.sort_values(["residual", "model"], ascending=[False, True])


def _pct(v: float) -> str:
    return "–" if np.isnan(v) else f"{v:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _corr(c: stats.Correlation) -> str:
    return f"{c.r:.4f} [{c.low:.4f}, {c.high:.4f}], p = {c.pvalue:.2g}"


def render_markdown(table: pd.DataFrame, st: dict, sw: pd.DataFrame, label_meta: dict) -> bytes:
    pub = table[table.source == "published"]
    labels_row = table[table.model == LABELS_RUN].iloc[0]
    cols = [c for c, *_ in REGIMES]
    lines = ["# CIFAR-10: original labels, CIFAR-10H and CIFAR-10.1", "",
             "Generated from the store by `python -m reports cifar-study`; do not edit by hand. "
             "Per-model numbers: [cifar-study.csv](cifar-study.csv); the significance-ranked leaderboard on the "
             "ReaL-style labels: [cifar10h.md](cifar10h.md).", "",
             "## Setup", "",
             f"- {len(pub)} published models (Recht et al. 2018, CIFAR-10.1 study), top-1 predictions on the "
             "10,000 CIFAR-10 test images and on CIFAR-10.1 v4 (2,021) and v6 (2,000); imported from the shipped "
             "files, scored from the stored per-sample rows.",
             "- original labels: `cifar10-original`. CIFAR-10H human agreement: the share of the ~51 CIFAR-10H "
             "annotators who chose the predicted class (label set `cifar10h`), i.e. the expected agreement with a "
             "random annotator.",
             f"- CIFAR-10H ReaL-style: `{REAL_STYLE}`, every class chosen by at least {MIN_SHARE:.0%} of the "
             "annotators is correct (built by `relabel.cifar.label_sets`); "
             f"{label_meta['real_multi']:,} images have two or more valid classes.",
             f"- crowd-corrected: `cifar10-corrected`, {label_meta['corrected']}",
             f"- own runs (source `run`): {', '.join(OWN_RUNS)} on the 10,000 CIFAR-10 test JPEG copies, run by the "
             "command where the store has none (JPEG loss costs them about 10 points against the published "
             "lossless numbers); they join the table, not the statistics across models.", "",
             "## Per model", "",
             "Top-1 % (human agreement % for CIFAR-10H), sorted by the original labels. "
             "`original_labels` is the original labelling scored as if it were a model.", ""]
    ordered = table.sort_values(["original", "model"], ascending=[False, True])
    lines += _table(["model", "source"] + [HEADERS[c] for c in cols],
                    [[r.model, r.source] + [_pct(getattr(r, c)) for c in cols] for r in ordered.itertuples()])
    lines += ["", "## The original labels under CIFAR-10H", "",
              f"Scored as a model, the original labels agree with a random CIFAR-10H annotator "
              f"{labels_row.cifar10h_agreement:.2f}% of the time and are valid under the ReaL-style set on "
              f"{labels_row.cifar10h_real:.2f}% of the images. The best published model agrees "
              f"{pub.cifar10h_agreement.max():.2f}% ({pub.loc[pub.cifar10h_agreement.idxmax(), 'model']}), "
              f"{labels_row.cifar10h_agreement - pub.cifar10h_agreement.max():.2f} points below the labels; "
              f"the mean model {pub.cifar10h_agreement.mean():.2f}%.", "",
              "ReaL-style top-1 by threshold (a class is valid when at least `min_share` of the annotators chose it):",
              ""]
    lines += _table(["min_share", "images kept", "multi-label images", "original labels", "models: mean",
                     "min", "max"],
                    [[f"{r.min_share:g}", f"{r.images_kept:,}", f"{r.multi_label:,}", _pct(r.original_labels),
                      _pct(r.models_mean), _pct(r.models_min), _pct(r.models_max)] for r in sw.itertuples()])
    lines += ["", f"## Regimes across the {len(pub)} published models", "",
              "x = top-1 % on the original labels; one point per model. Pearson and Spearman with 95% Fisher-z "
              "intervals; OLS line y = intercept + slope · x.", ""]
    rows = []
    for col, (p, s) in st["correlations"].items():
        line = st["lines"][col]
        rows.append([HEADERS[col], _corr(p), _corr(s), f"{line.slope:.3f} ± {line.slope_se:.3f}",
                     f"{line.intercept:.2f} ± {line.intercept_se:.2f}"])
    lines += _table(["y", "Pearson r [CI], p", "Spearman ρ [CI], p", "slope ± se", "intercept ± se"], rows)
    lines += ["", "Do two regimes correlate equally with the original labels? Both correlations are measured on "
              f"the same {len(pub)} models and share the original labels, so they are dependent: Steiger's (1980) "
              "z-test for overlapping correlations, which uses the correlation r(A, B) between the two regimes "
              "across the models:", ""]
    lines += _table(["regime A", "regime B", "r A", "r B", "r(A, B)", "Steiger z", "p"],
                    [[HEADERS[a], HEADERS[b], f"{t.r_xy:.4f}", f"{t.r_xz:.4f}", f"{t.r_yz:.4f}", f"{t.z:+.2f}",
                      f"{t.pvalue:.2g}"] for a, b, t in st["z_tests"]])
    lines += ["", "Two regimes of the original accuracy (breakpoint of a continuous piecewise-linear fit, at least "
              f"{BREAKPOINT_MIN_SIDE} models per side): does progress on the original labels carry over at the top? "
              "The two sides hold different models, so their correlations are compared with Fisher's z-test for "
              "independent samples. The breakpoint is fitted to the same data, so these p-values are optimistic.",
              ""]
    rows = []
    for col, reg in st["regimes"].items():
        for side in (reg.below, reg.above):
            rows.append([HEADERS[col], f"{side.name} {reg.breakpoint:.2f}", str(side.n),
                         f"{side.line.slope:.3f} ± {side.line.slope_se:.3f}", _corr(side.pearson)])
        rows.append([HEADERS[col], "difference", "", f"{reg.slope_difference:+.3f} ± {reg.slope_difference_se:.3f}, "
                     f"p = {reg.slope_difference_pvalue:.2g}", f"Fisher z = {reg.correlation_difference.z:+.2f}, "
                     f"p = {reg.correlation_difference.pvalue:.2g}"])
    lines += _table(["y", "regime (original top-1 %)", "models", "slope ± se", "Pearson r [CI], p"], rows)
    for col in ("cifar10h_agreement", "cifar10h_real", "v6"):
        mv = movers(table, col, st["lines"][col])
        lines += ["", f"## Who gains and who loses: {HEADERS[col]}", "",
                  "Residual = points above (+) or below (−) the line fitted across models; rank change = places "
                  "gained from the ranking on the original labels.", ""]
        shown = pd.concat([mv.head(5), mv.tail(5)])
        lines += _table(["model", "original", HEADERS[col], "residual, points", "rank original → relabelled"],
                        [[r.model, _pct(r.original), _pct(getattr(r, col)), f"{r.residual:+.2f}",
                          f"{r.rank_original} → {r.rank_relabelled} ({r.rank_change:+d})"] for r in shown.itertuples()])
    lines += ["", "![original labels vs CIFAR-10H and CIFAR-10.1](cifar-study.png)", ""]
    return "\n".join(lines).encode()


def render_png(table: pd.DataFrame, st: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pub = table[table.source == "published"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5), dpi=100)
    for ax, col in zip(axes, ("cifar10h_agreement", "cifar10h_real", "v6")):
        ax.scatter(pub.original, pub[col], s=18, color="tab:blue", label="published models")
        xs = np.linspace(pub.original.min(), pub.original.max(), 50)
        line = st["lines"][col]
        ax.plot(xs, line.intercept + line.slope * xs, color="tab:blue", lw=1,
                label=f"fit, slope {line.slope:.2f}")
        ax.plot(xs, xs, color="gray", lw=0.8, ls="--", label="y = x")
        labels = table[table.model == LABELS_RUN]
        if col != "v6" and len(labels):
            ax.axhline(labels[col].iloc[0], color="tab:red", lw=1, label="original labels as predictions")
        ax.set_xlabel("top-1 %, original labels")
        ax.set_ylabel(HEADERS[col] + " %")
        ax.set_title(f"{HEADERS[col]}: r = {st['correlations'][col][0].r:.3f}")
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def study_files(store: Store, directory: Path = LEADERBOARD_DIR, out: Path | None = None) -> dict[Path, bytes]:
    """The study's files and the ``cifar10h`` leaderboard's (spec in ``directory``), as bytes, from what the
    store holds; all of them in ``out`` (default: ``directory``)."""
    table = model_table(store)
    out = directory if out is None else out
    return {**render_study(store, table, out), **render_leaderboard(store, "cifar10h", directory, out=out)}


def render_study(store: Store, table: pd.DataFrame, directory: Path = LEADERBOARD_DIR) -> dict[Path, bytes]:
    st = statistics(table)
    sw = sweep(store, table)
    n_multi = int(store.sql("SELECT count(*) AS n FROM labels WHERE label_set = ? AND len(labels) > 1",
                            [REAL_STYLE])["n"][0])
    label_meta = {"real_multi": n_multi, "corrected": store.label_set_meta("cifar10-corrected")["description"]}
    csv = table.round(4).to_csv(index=False, float_format="%.4f").encode()
    return {directory / "cifar-study.md": render_markdown(table, st, sw, label_meta),
            directory / "cifar-study.png": render_png(table, st), directory / "cifar-study.csv": csv}


def run_study(store: Store, directory: Path = LEADERBOARD_DIR, check: bool = False, own_runs=OWN_RUNS,
              quiet: bool = True, out: Path | None = None) -> tuple[list[Path], list[Path]]:
    """Fill the store, run the missing own runs, render; write the changed files unless ``check``.
    Returns (files written, stale files)."""
    import_shipped_cifar(store, quiet)
    ensure_own_runs(store, own_runs, quiet)
    files = study_files(store, directory, out)
    stale = [p for p, data in files.items() if not p.is_file() or p.read_bytes() != data]
    return ([] if check else write_files(files)), stale
