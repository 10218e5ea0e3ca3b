"""Render a built leaderboard as Markdown, a self-contained sortable HTML page, and a PNG scatter plot.

All three are produced in memory and are pure functions of the board, so the same store
gives byte-identical files (no timestamps, no absolute paths, seeded statistics, PNG
written without the matplotlib version stamp).
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from typing import Callable

import numpy as np

from harness.metrics import Metric, get_metric, leaderboard_metrics

from .leaderboard import DASH, SOURCE_EXTERNAL, SOURCE_IMPORT, SOURCE_OWN, AxisScore, Board, Row
from .stats import Interval, TwoRegimes


def conf_text(board: Board) -> str:
    return f"{round(100 * board.spec.confidence)}%"


def pct(value: float, digits: int = 2) -> str:
    return f"{100 * value:.{digits}f}"


def interval_text(iv: Interval | None) -> str:
    return "" if iv is None else f"[{pct(iv.low)}, {pct(iv.high)}]"


def pvalue_text(p: float) -> str:
    if p < 1e-300:
        return "< 1e-300"
    return f"{p:.3g}" if p < 0.001 else f"{p:.3f}"


def p_equals(p: float) -> str:
    text = pvalue_text(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


@dataclass(frozen=True)
class Column:
    header: Callable[[Board], str]
    cell: Callable[[Row], str]
    sort_value: Callable[[Row], float | str | None]
    numeric: bool = True


def _axis_cols(which: str) -> dict[str, Column]:
    def axis(board: Board):
        return getattr(board, which).axis

    def score(row: Row) -> AxisScore:
        return getattr(row, which)

    return {
        which: Column(lambda b: f"top-1 % ({axis(b).label_set})", lambda r: pct(score(r).accuracy),
                      lambda r: score(r).accuracy),
        f"{which}_wilson": Column(lambda b: f"{conf_text(b)} CI, Wilson ({axis(b).label_set})",
                                  lambda r: interval_text(score(r).wilson), lambda r: score(r).wilson.low),
        f"{which}_bootstrap": Column(
            lambda b: f"{conf_text(b)} CI, bootstrap ({axis(b).label_set})",
            lambda r: interval_text(score(r).bootstrap),
            lambda r: None if score(r).bootstrap is None else score(r).bootstrap.low),
        f"n_{which}": Column(lambda b: f"n ({axis(b).label_set})", lambda r: f"{score(r).n:,}",
                             lambda r: score(r).n),
        **{f"{which}_{m.name}": _metric_col(m, axis, score) for m in leaderboard_metrics()[1:]},
    }


def _metric_col(metric: Metric, axis, score) -> Column:
    """A further metric's column on one axis: a dash where the row cannot give it."""
    def value(row: Row):
        return score(row).metrics.get(metric.name)

    return Column(lambda b: f"{metric.label} % ({axis(b).label_set})",
                  lambda r: DASH if value(r) is None else pct(value(r)), value)


ARROW = "\u2192"

COLUMNS: dict[str, Column] = {
    "rank": Column(lambda b: "rank", lambda r: "" if r.rank is None else str(r.rank), lambda r: r.rank),
    "model": Column(lambda b: "model", lambda r: r.name, lambda r: r.name, numeric=False),
    "source": Column(lambda b: "source", lambda r: r.source, lambda r: r.source, numeric=False),
    **_axis_cols("relabelled"),
    **_axis_cols("reference"),
    "gap": Column(lambda b: f"gap, points ({b.relabelled.axis.label_set} {DASH} {b.reference.axis.label_set})",
                  lambda r: f"{100 * r.gap:+.2f}", lambda r: r.gap),
    "rank_change": Column(lambda b: f"rank change ({b.reference.axis.label_set} {ARROW} {b.relabelled.axis.label_set})",
                          lambda r: "" if r.rank_change is None else f"{r.rank_change:+d}", lambda r: r.rank_change),
    "gap_bootstrap": Column(lambda b: f"{conf_text(b)} CI of the gap, bootstrap",
                            lambda r: interval_text(r.gap_interval),
                            lambda r: None if r.gap_interval is None else r.gap_interval.low),
    "img_size": Column(lambda b: "img size", lambda r: "" if r.img_size is None else str(r.img_size),
                       lambda r: r.img_size),
    "params_m": Column(lambda b: "params (M)", lambda r: "" if r.params_m is None else f"{r.params_m:,.2f}",
                       lambda r: r.params_m),
    "provenance": Column(lambda b: "provenance", lambda r: r.provenance, lambda r: r.provenance, numeric=False),
    "effective_robustness": Column(
        lambda b: f"effective robustness, points ({b.relabelled.axis.label_set} above the logit fit)",
        lambda r: "" if r.effective is None else f"{100 * r.effective.estimate:+.2f}",
        lambda r: None if r.effective is None else r.effective.estimate),
    "effective_robustness_bootstrap": Column(
        lambda b: f"{conf_text(b)} CI of the effective robustness, bootstrap",
        lambda r: "" if r.effective is None else f"[{100 * r.effective.low:+.2f}, {100 * r.effective.high:+.2f}]",
        lambda r: None if r.effective is None else r.effective.low),
}


# ----- shared text -----------------------------------------------------------------
def axis_line(board: Board, which: str, code: Callable[[str], str] = str) -> str:
    info = getattr(board, which)
    scored = (f"; per-sample rows scored on {info.n_samples:,} of them" if info.n_samples != info.n_labelled
              else "")
    return (f"{which}: label set {code(info.axis.label_set)} under suite {code(info.axis.suite)} "
            f"on dataset {code(info.axis.dataset)} "
            f"({info.description or 'no description'}), {info.n_labelled:,} labelled samples{scored}")


def metric_line(board: Board) -> str:
    many = len(board.spec.metrics) > 1
    metrics = f"metric{'s' if many else ''} {', '.join(board.spec.metrics)}" + (
        f" ({board.spec.metric} ranks the rows and drives the statistics)" if many else "")
    if all(r.correct is None for r in board.rows):
        return f"{metrics}, as published by the external tables"
    return f"{metrics}, scored from the stored predictions by harness.score {get_metric(board.spec.metric).version}"


def rows_lines(board: Board) -> list[str]:
    """Which per-sample runs qualify: the rule, not the runs that fail it (those depend on the store)."""
    s = board.spec
    if not s.runs:
        return []
    paired = board.reference.axis.dataset != board.relabelled.axis.dataset
    text = ("Rows: of each selected name, the complete run that predicts the most samples its axis's label set "
            "labels (the latest of equals), so a run on fewer images never replaces one on more")
    if paired:
        text += ", paired with its run of the same name on the other dataset"
    if s.samples == "common":
        text += "; rows are compared on the samples all of them predict."
        excluded = "Runs without such a partner" if paired else ""
    else:
        text += "; a run must predict every sample its axis's label set labels."
        excluded = "Runs that do not" + (" or have no partner" if paired else "") + \
            " (e.g. an own run on an image subset)"
    return [text + (f" {excluded} are left out; `python -m reports leaderboard` names them." if excluded else "")]


def method_lines(board: Board) -> list[str]:
    s = board.spec
    conf = conf_text(board)
    if all(r.rank is None for r in board.rows):
        return [f"Intervals: {conf} Wilson score from each published accuracy and its n. These rows are "
                "aggregates without per-sample data: no bootstrap, no paired tests, no significance ranks."]
    return [
        f"Intervals: {conf} Wilson score; {conf} percentile bootstrap over samples "
        f"({s.bootstrap_resamples:,} resamples, seed {s.seed}; per-sample rows only).",
        f"Rank: 1 + the number of models whose {board.relabelled.axis.label_set} top-1 is significantly higher "
        f"(exact McNemar test on the same samples, Holm-adjusted over all pairs, alpha {s.alpha}); models "
        "whose differences are not significant, and exact ties, share a rank. External rows have no "
        "per-sample data and get no rank.",
    ]


def correlation_table(board: Board) -> tuple[list[str], list[list[str]]]:
    """The across-models study: all models, then each regime's two sides."""
    fits = []
    if board.correlation is not None:
        p, s, line = board.correlation
        fits.append(("all models", p, s, line))
    for reg in board.regimes:
        bp = f"{reg.breakpoint:.2f}%"
        for side, label in ((reg.below, f"reference < {bp}"), (reg.above, f"reference ≥ {bp}")):
            fits.append((f"{label} ({reg.breakpoint_source})", side.pearson, side.spearman, side.line))
    header = ["models", "n models", "Pearson r [CI], p", "Spearman ρ [CI], p", "slope ± se", "intercept ± se"]
    return header, [[label, f"{p.n:,}", corr_text(p), corr_text(sp), f"{ln.slope:.3f} ± {ln.slope_se:.3f}",
                     f"{ln.intercept:.2f} ± {ln.intercept_se:.2f}"] for label, p, sp, ln in fits]


MAX_ALL_PAIRS = 10  # models; beyond this the tables list neighbours in the ranking only


def shown_pairs(board: Board) -> list:
    if sum(r.correct is not None for r in board.rows) <= MAX_ALL_PAIRS:
        return board.pairs
    order = [r.name for r in board.rows if r.correct is not None]
    neighbours = set(zip(order, order[1:]))
    return [p for p in board.pairs if (p.a, p.b) in neighbours or (p.b, p.a) in neighbours]


def pairs_table(board: Board) -> tuple[list[str], list[list[str]]]:
    conf = conf_text(board)
    header = ["A", "B", "A − B, points", f"{conf} CI, paired bootstrap", "only A right", "only B right",
              "McNemar p", "Holm p", "significant"]
    return header, [[p.a, p.b, f"{100 * p.difference.estimate:+.2f}", interval_text(p.difference),
                     f"{p.mcnemar.only_a:,}", f"{p.mcnemar.only_b:,}", pvalue_text(p.mcnemar.pvalue),
                     pvalue_text(p.holm_pvalue), "yes" if p.holm_pvalue < board.spec.alpha else "no"]
                    for p in shown_pairs(board)]


def pairs_title(board: Board) -> str:
    rel = board.relabelled.axis
    which = "" if len(shown_pairs(board)) == len(board.pairs) else (
        f", neighbours in the ranking; the ranks use all {len(board.pairs):,} pairs")
    return (f"Pairwise comparisons on label set {rel.label_set} (suite {rel.suite}, "
            f"n = {board.pairs[0].mcnemar.n:,} shared samples{which})")


def study_title(board: Board) -> str:
    return f"{board.reference.axis.label_set} vs {board.relabelled.axis.label_set} across models"


def study_text(board: Board) -> str:
    ref, rel = board.reference, board.relabelled
    return (f"x = top-1 % on {ref.axis.label_set} (suite {ref.axis.suite}, {ref.n_labelled:,} samples per "
            f"model), y = top-1 % on {rel.axis.label_set} (suite {rel.axis.suite}, {rel.n_labelled:,} samples "
            f"per model); one point per model. Correlations with {conf_text(board)} "
            "Fisher-z intervals; OLS fit y = intercept + slope · x.")


def corr_text(c) -> str:
    return f"{c.r:.3f} [{c.low:.3f}, {c.high:.3f}], {p_equals(c.pvalue)}"


def regime_sentences(board: Board, reg: TwoRegimes) -> list[str]:
    cd = reg.correlation_difference
    return [
        f"Breakpoint {reg.breakpoint:.2f}% of {board.reference.axis.label_set} top-1 ({reg.breakpoint_source}): "
        f"{reg.below.n:,} models below, {reg.above.n:,} at or above.",
        f"Correlations differ? Fisher z-test of Pearson r {cd.r1:.3f} (n={cd.n1}) vs {cd.r2:.3f} (n={cd.n2}): "
        f"z = {cd.z:.2f}, {p_equals(cd.pvalue)}.",
        f"Slopes differ? Interaction term of OLS y ~ x + above + x:above (n={reg.n}): slope "
        f"{reg.below.line.slope:.3f} below vs {reg.above.line.slope:.3f} above, difference "
        f"{reg.slope_difference:+.3f} ± {reg.slope_difference_se:.3f} (se), "
        f"{p_equals(reg.slope_difference_pvalue)}.",
    ] + ([] if reg.breakpoint_source == "given" else [
        "Caveat: the breakpoint was fitted to these same models, where the two sides differ most, so both "
        "p-values are optimistic (they do not count the search); read them as descriptive, and test a "
        "breakpoint fixed in advance (a given one) for a confirmatory p-value."])


ROBUSTNESS_SHOWN = 10  # models listed at each end of the effective-robustness ranking


def robustness_title(board: Board) -> str:
    return f"Effective robustness on {board.relabelled.axis.label_set} (Taori et al. 2020)"


def robustness_text(board: Board) -> str:
    fit, conf = board.robustness, conf_text(board)
    ref, rel = board.reference.axis.label_set, board.relabelled.axis.label_set
    return (f"Over the {fit.n:,} models: logit(top-1 on {rel}) = {fit.intercept.estimate:.3f} "
            f"[{fit.intercept.low:.3f}, {fit.intercept.high:.3f}] + {fit.slope.estimate:.3f} "
            f"[{fit.slope.low:.3f}, {fit.slope.high:.3f}] · logit(top-1 on {ref}), least squares in logit space "
            f"({conf} percentile bootstrap intervals, {board.spec.bootstrap_resamples:,} resamples of the models "
            f"and of each model's samples, seed {board.spec.seed}). A model's effective robustness is its top-1 "
            f"on {rel} minus the line's prediction at its top-1 on {ref}, in points: above 0, it holds up under "
            "the shift better than its accuracy predicts.")


def robustness_table(board: Board) -> tuple[list[str], list[list[str]]]:
    conf = conf_text(board)
    ranked = sorted(board.rows, key=lambda r: (-r.effective.estimate, r.name))
    shown = ranked if len(ranked) <= 2 * ROBUSTNESS_SHOWN else ranked[:ROBUSTNESS_SHOWN] + ranked[-ROBUSTNESS_SHOWN:]
    header = ["model", "effective robustness, points", f"{conf} CI, bootstrap",
              f"top-1 % ({board.relabelled.axis.label_set})", "predicted by the fit",
              f"top-1 % ({board.reference.axis.label_set})"]
    by_name = {r.name: i for i, r in enumerate(board.rows)}
    return header, [[r.name, f"{100 * r.effective.estimate:+.2f}",
                     f"[{100 * r.effective.low:+.2f}, {100 * r.effective.high:+.2f}]", pct(r.relabelled.accuracy),
                     pct(board.robustness.predicted[by_name[r.name]]), pct(r.reference.accuracy)] for r in shown]


def robustness_caption(board: Board) -> str:
    n = len(board.rows)
    return ("" if n <= 2 * ROBUSTNESS_SHOWN else
            f"The {ROBUSTNESS_SHOWN} models most above and the {ROBUSTNESS_SHOWN} most below the line of {n:,}; "
            "the table's effective_robustness column has every model.")


# ----- markdown ----------------------------------------------------------------------
def _md_code(text: str) -> str:
    return f"`{text}`"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(_md_escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return out


def render_markdown(board: Board) -> bytes:
    s = board.spec
    lines = [f"# {s.title}", ""]
    if s.description:
        lines += [s.description.strip(), ""]
    lines += [f"Generated from the store by `python -m reports leaderboard {s.name}` from "
              f"`leaderboards/{s.name}.toml`; do not edit by hand. "
              f"Sortable table: [{s.name}.html]({s.name}.html).", ""]
    lines += ["## Setup", "", f"- {metric_line(board)}",
              f"- {axis_line(board, 'relabelled', _md_code)}", f"- {axis_line(board, 'reference', _md_code)}"]
    lines += [f"- {m}" for m in rows_lines(board) + method_lines(board)] + [""]
    cols = [COLUMNS[c] for c in s.columns]
    shown = board.rows if not s.markdown_rows else board.rows[: s.markdown_rows]
    lines += ["## Leaderboard", ""]
    if len(shown) < len(board.rows):
        lines += [f"Top {len(shown)} of {len(board.rows):,} rows by {board.relabelled.axis.label_set} top-1; "
                  f"all rows in [{s.name}.html]({s.name}.html).", ""]
    lines += _md_table([c.header(board) for c in cols], [[c.cell(r) for c in cols] for r in shown]) + [""]
    for note in board.notes:
        lines += [f"Note: {note}", ""]
    if board.pairs:
        lines += [f"## {pairs_title(board)}", ""] + _md_table(*pairs_table(board)) + [""]
    if board.correlation is not None or board.regimes:
        lines += [f"## {study_title(board)}", "", study_text(board), ""] + _md_table(*correlation_table(board))
        lines += [""]
        for reg in board.regimes:
            lines += [f"- {t}" for t in regime_sentences(board, reg)] + [""]
        lines += [f"![{study_title(board)}]({s.name}.png)", ""]
    if board.robustness is not None:
        lines += [f"## {robustness_title(board)}", "", robustness_text(board), ""]
        if robustness_caption(board):
            lines += [robustness_caption(board), ""]
        lines += _md_table(*robustness_table(board)) + ["", f"Plot in logit axes: right panel of {s.name}.png.", ""]
    lines += ["## Sources", ""]
    lines += [f"- `{name}`: {desc}" for name, desc in board.sources]
    for which in ("relabelled", "reference"):
        info = getattr(board, which)
        lines.append(f"- label set `{info.axis.label_set}`: {info.description}"
                     + (f" (from {info.source})" if info.source else ""))
    lines.append("")
    return "\n".join(lines).encode()


# ----- png -----------------------------------------------------------------------------
_SOURCE_STYLE = {SOURCE_OWN: ("tab:red", "D"), SOURCE_IMPORT: ("tab:blue", "o"),
                 SOURCE_EXTERNAL: ("tab:gray", ".")}
_REGIME_COLOURS = ("tab:green", "tab:purple", "tab:orange", "tab:brown")


def render_png(board: Board) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.array([r.reference.accuracy for r in board.rows]) * 100
    y = np.array([r.relabelled.accuracy for r in board.rows]) * 100
    if board.robustness is not None:
        fig, (ax, logit_ax) = plt.subplots(1, 2, figsize=(15, 6.5), dpi=100)
        _robustness_panel(board, logit_ax)
    else:
        fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=100)
    many = len(board.rows) > 30
    for source, (colour, marker) in _SOURCE_STYLE.items():
        mask = np.array([r.source == source for r in board.rows])
        if mask.any():
            ax.scatter(x[mask], y[mask], s=8 if many else 40, c=colour, marker=marker,
                       alpha=0.5 if many else 0.9, label=f"{source} ({int(mask.sum())})", zorder=3)
    if not many:
        for i, (r, xi, yi) in enumerate(zip(board.rows, x, y)):
            xerr = [[xi - 100 * r.reference.wilson.low], [100 * r.reference.wilson.high - xi]]
            yerr = [[yi - 100 * r.relabelled.wilson.low], [100 * r.relabelled.wilson.high - yi]]
            ax.errorbar(xi, yi, xerr=xerr, yerr=yerr, color="0.4", lw=0.8, capsize=2, zorder=2)
            if len(board.rows) <= 12:  # more names than this overlap; the table has them
                # alternate label sides so neighbouring models stay readable
                ax.annotate(r.name, (xi, yi), textcoords="offset points", xytext=(6, 4 if i % 2 else -11),
                            fontsize=8)
    lo, hi = min(x.min(), y.min()) - 1, max(x.max(), y.max()) + 1
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--", label="y = x", zorder=1)
    if board.correlation is not None:
        p, _, line = board.correlation
        xs = np.array([x.min(), x.max()])
        ax.plot(xs, line.intercept + line.slope * xs, color="tab:blue", lw=1.2, zorder=2,
                label=f"OLS all: slope {line.slope:.2f}, r={p.r:.3f} (n={p.n})")
    for reg, colour in zip(board.regimes, _REGIME_COLOURS):
        ax.axvline(reg.breakpoint, color=colour, lw=0.8, ls=":", zorder=1)
        for side in (reg.below, reg.above):
            xs = np.array([side.x_low, side.x_high])
            ax.plot(xs, side.line.intercept + side.line.slope * xs, color=colour, lw=1.6, zorder=2,
                    label=f"{reg.breakpoint_source} {reg.breakpoint:.2f}%, {side.name}: slope "
                          f"{side.line.slope:.2f}, r={side.pearson.r:.3f} (n={side.n})")
    ref, rel = board.reference, board.relabelled
    ax.set_xlabel(f"top-1 % on {ref.axis.label_set} (suite {ref.axis.suite}, n={ref.n_labelled:,} per model)")
    ax.set_ylabel(f"top-1 % on {rel.axis.label_set} (suite {rel.axis.suite}, n={rel.n_labelled:,} per model)")
    ax.set_title(f"{board.spec.title}\n{len(board.rows):,} models", fontsize=10)
    ax.set_xlim(x.min() - 1, x.max() + 1)
    ax.set_ylim(y.min() - 1, y.max() + 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _robustness_panel(board: Board, ax) -> None:
    """Shifted vs reference accuracy in logit axes with the fitted line (Taori et al. 2020's figure)."""
    from .stats import expit, logit

    fit = board.robustness
    x = np.array([r.reference.accuracy for r in board.rows])
    y = np.array([r.relabelled.accuracy for r in board.rows])
    effective = np.array([r.effective.estimate for r in board.rows])
    above = np.array([r.effective.low > 0 for r in board.rows])
    below = np.array([r.effective.high < 0 for r in board.rows])
    many = len(board.rows) > 30
    size = 8 if many else 40
    for mask, colour, label in ((~above & ~below, "tab:gray", "interval includes the line"),
                                (above, "tab:green", "above the line"), (below, "tab:red", "below the line")):
        if mask.any():
            ax.scatter(x[mask], y[mask], s=size, c=colour, alpha=0.6 if many else 0.9, zorder=3,
                       label=f"{label} ({int(mask.sum())})")
    xs = expit(np.linspace(logit(x.min()) - 0.2, logit(x.max()) + 0.2, 200))
    ax.plot(xs, expit(fit.intercept.estimate + fit.slope.estimate * logit(xs)), color="tab:blue", lw=1.4,
            zorder=2, label=f"logit fit: slope {fit.slope.estimate:.2f}, intercept {fit.intercept.estimate:.2f}")
    lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
    grid = expit(np.linspace(logit(lo) - 0.2, logit(hi) + 0.2, 50))
    ax.plot(grid, grid, color="black", lw=0.8, ls="--", label="y = x", zorder=1)
    for i in list(np.argsort(-effective, kind="stable")[:3]) if len(board.rows) > 3 else []:
        ax.annotate(board.rows[i].name, (x[i], y[i]), textcoords="offset points", xytext=(5, 3), fontsize=6)
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("logit")
    ax.set_yscale("logit")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}%"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlim(expit(logit(x.min()) - 0.2), expit(logit(x.max()) + 0.2))
    ax.set_ylim(expit(logit(y.min()) - 0.2), expit(logit(y.max()) + 0.2))
    ref, rel = board.reference.axis.label_set, board.relabelled.axis.label_set
    ax.set_xlabel(f"top-1 on {ref} (logit axis)")
    ax.set_ylabel(f"top-1 on {rel} (logit axis)")
    ax.set_title(f"effective robustness: {rel} vs {ref}, {len(board.rows):,} models", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left")


# ----- html -----------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1400px;
padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}
th,td{border:1px solid #ccc;padding:3px 6px}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
th{background:#f3f3f3;position:sticky;top:0}
th.sortable{cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
tr:nth-child(even) td{background:#fafafa}
img{max-width:100%}
.note{color:#555}
"""

# Sorting runs in the page itself (no network, no library). A URL fragment such as
# #sort=reference:asc applies a sort on load, so a saved link reproduces a view.
_JS = """
(function(){
  var table=document.getElementById('leaderboard');
  var body=table.tBodies[0];
  var heads=table.tHead.rows[0].cells;
  function value(row,i,numeric){
    var v=row.cells[i].getAttribute('data-v');
    if(numeric){return v===''?NaN:parseFloat(v);}
    return v;
  }
  function sortBy(i,dir){
    var numeric=heads[i].getAttribute('data-type')==='num';
    var rows=Array.prototype.slice.call(body.rows);
    var keyed=rows.map(function(r,k){return [value(r,i,numeric),k,r];});
    keyed.sort(function(a,b){
      var x=a[0],y=b[0],c;
      if(numeric){
        if(isNaN(x)&&isNaN(y)){c=0;}else if(isNaN(x)){return 1;}else if(isNaN(y)){return -1;}else{c=x-y;}
      }else{c=x<y?-1:(x>y?1:0);}
      if(dir==='descending'){c=-c;}
      return c!==0?c:a[1]-b[1];
    });
    keyed.forEach(function(k){body.appendChild(k[2]);});
    for(var j=0;j<heads.length;j++){heads[j].removeAttribute('aria-sort');}
    heads[i].setAttribute('aria-sort',dir);
  }
  Array.prototype.forEach.call(heads,function(th,i){
    th.classList.add('sortable');
    th.addEventListener('click',function(){
      sortBy(i,th.getAttribute('aria-sort')==='descending'?'ascending':'descending');
    });
  });
  var fq=document.getElementById('filter-model'),fs=document.getElementById('filter-source'),
      fn=document.getElementById('filter-n'),fc=document.getElementById('filter-count');
  function filter(){
    var t=fq.value.toLowerCase(),least=fn.value===''?-Infinity:parseFloat(fn.value),shown=0,rows=body.rows;
    for(var r=0;r<rows.length;r++){
      var ok=(!t||rows[r].getAttribute('data-model').toLowerCase().indexOf(t)>=0)&&
             (!fs.value||rows[r].getAttribute('data-source')===fs.value)&&
             parseFloat(rows[r].getAttribute('data-n'))>=least;
      rows[r].style.display=ok?'':'none';
      if(ok){shown++;}
    }
    fc.textContent=shown.toLocaleString('en-US')+' of '+rows.length.toLocaleString('en-US')+' rows';
  }
  [fq,fs,fn].forEach(function(e){e.addEventListener('input',filter);});
  var m=/sort=([A-Za-z0-9_]+)(?::(asc|desc))?/.exec(location.hash);
  if(m){
    for(var i=0;i<heads.length;i++){
      if(heads[i].getAttribute('data-col')===m[1]){sortBy(i,m[2]==='asc'?'ascending':'descending');}
    }
  }
})();
"""


def sort_key_text(value) -> str:
    """A cell's ``data-v`` sort key: integers as they are, floats to ten significant digits, None empty."""
    if value is None:
        return ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        # A sort key, not a shown number: ten significant digits order every column, while the last digits
        # of a least-squares fit or a mean differ with BLAS and thread count and would change the page's bytes.
        return repr(float(f"{float(value):.10g}"))
    return str(value)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    esc = html.escape
    return ("<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
            + "</tbody></table>")


def _filter_box(board: Board) -> str:
    """The filter box of the app's live board (model substring, source, minimum n), for the static page."""
    esc = html.escape
    sources = "".join(f"<option>{esc(s)}</option>" for s in sorted({r.source for r in board.rows}))
    n = len(board.rows)
    return ('<p class="filters"><label>model <input id="filter-model" type="search" placeholder="substring"></label> '
            f'<label>source <select id="filter-source"><option value="">any</option>{sources}</select></label> '
            '<label>min n <input id="filter-n" type="number" min="0" step="1"></label> '
            f'<span id="filter-count">{n:,} of {n:,} rows</span></p>')


def render_html(board: Board, png: bytes) -> bytes:
    s = board.spec
    esc = html.escape
    cols = [(cid, COLUMNS[cid]) for cid in s.columns]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{esc(s.title)}</title>", f"<style>{_CSS}</style></head><body>", f"<h1>{esc(s.title)}</h1>"]
    if s.description:
        out.append(f"<p>{esc(s.description.strip())}</p>")
    out.append(f'<p class="note">Generated from the store by <code>python -m reports leaderboard {esc(s.name)}'
               f"</code>; click a column header to sort.</p>")
    out.append("<ul>" + "".join(f"<li>{esc(t)}</li>" for t in
                                [metric_line(board), axis_line(board, "relabelled"),
                                 axis_line(board, "reference"), *rows_lines(board), *method_lines(board)])
               + "</ul>")
    out.append(_filter_box(board))
    out.append('<table id="leaderboard"><thead><tr>')
    for cid, col in cols:
        kind = "num" if col.numeric else "text"
        out.append(f'<th data-col="{cid}" data-type="{kind}">{esc(col.header(board))}</th>')
    out.append("</tr></thead><tbody>")
    for row in board.rows:
        out.append(f'<tr data-model="{esc(row.name)}" data-source="{esc(row.source)}" data-n="{row.relabelled.n}">')
        for cid, col in cols:
            cls = ' class="num"' if col.numeric else ""
            out.append(f'<td data-col="{cid}" data-v="{esc(sort_key_text(col.sort_value(row)))}"{cls}>'
                       f"{esc(col.cell(row))}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    for note in board.notes:
        out.append(f'<p class="note">Note: {esc(note)}</p>')
    if board.pairs:
        out += [f"<h2>{esc(pairs_title(board))}</h2>", _html_table(*pairs_table(board))]
    if board.correlation is not None or board.regimes:
        out += [f"<h2>{esc(study_title(board))}</h2>", f"<p>{esc(study_text(board))}</p>",
                _html_table(*correlation_table(board))]
        for reg in board.regimes:
            out.append("<ul>" + "".join(f"<li>{esc(t)}</li>" for t in regime_sentences(board, reg)) + "</ul>")
    if board.robustness is not None:
        out += [f"<h2>{esc(robustness_title(board))}</h2>", f"<p>{esc(robustness_text(board))}</p>"]
        if robustness_caption(board):
            out.append(f'<p class="note">{esc(robustness_caption(board))}</p>')
        out.append(_html_table(*robustness_table(board)))
    out.append(f'<img alt="scatter plot" src="data:image/png;base64,{base64.b64encode(png).decode()}">')
    out.append("<h2>Sources</h2><ul>" + "".join(f"<li><code>{esc(n)}</code>: {esc(d)}</li>"
                                                 for n, d in board.sources) + "</ul>")
    out.append(f"<script>{_JS}</script></body></html>")
    return ("\n".join(out) + "\n").encode()
