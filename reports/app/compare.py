"""Two runs compared on one label set: ``reports compare``'s paired numbers (Wilson intervals, the paired
bootstrap of the difference, McNemar's test) and, in the app, the images of each off-diagonal cell (A right
and B wrong; B right and A wrong)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from harness.errors import HarnessError
from harness.runscmd import resolve
from harness.score import per_sample
from harness.store import Store

from .. import stats
from .context import Context, NotFound
from .pages import esc, page, url
from .samples import gallery

CELLS = {"a_only": "{a} right, {b} wrong", "b_only": "{b} right, {a} wrong"}
PREVIEW = 24


@dataclass
class Comparison:
    a: dict  # run metadata
    b: dict
    label_set: str
    keys: np.ndarray  # shared samples, sorted
    a_correct: np.ndarray
    b_correct: np.ndarray
    wilson: tuple[stats.Interval, stats.Interval]
    difference: stats.Difference
    mcnemar: stats.McNemar

    def cell(self, which: str) -> list[str]:
        hit = (self.a_correct & ~self.b_correct) if which == "a_only" else (self.b_correct & ~self.a_correct)
        return [str(k) for k in self.keys[hit]]


def compare_runs(store: Store, a_ref: str, b_ref: str, label_set: str, confidence: float = 0.95,
                 resamples: int = 10_000, seed: int = 0) -> Comparison:
    """The paired comparison of two runs on the samples both predicted and the label set labels."""
    runs = [resolve(store, ref, [label_set]) for ref in (a_ref, b_ref)]  # a name resolves on the label set's dataset
    series = [per_sample(store, m["run_id"], label_set).set_index("key")["correct_top1"].astype(bool) for m in runs]
    keys = series[0].index.intersection(series[1].index).sort_values()
    if keys.empty:
        raise HarnessError(f"runs {a_ref} and {b_ref} share no sample labelled by {label_set}")
    a, b = (s.loc[keys].to_numpy() for s in series)
    return Comparison(runs[0], runs[1], label_set, keys.to_numpy(), a, b,
                      (stats.accuracy_wilson(a, confidence), stats.accuracy_wilson(b, confidence)),
                      stats.paired_bootstrap_difference(a, b, confidence, resamples, seed), stats.mcnemar_test(a, b))


def compare_page(context: Context, request: Request) -> Response:
    q = request.query_params
    missing = [p for p in ("a", "b", "labels") if not q.get(p)]
    if missing:
        raise HarnessError(f"a comparison needs the query parameters a, b (runs) and labels (label set); missing "
                           f"{', '.join(missing)}")
    cell = q.get("cell")
    if cell is not None and cell not in CELLS:
        raise HarnessError(f"cell={cell!r}: expected one of {', '.join(CELLS)}")
    for ref in (q["a"], q["b"]):
        try:
            resolve(context.store, ref, [q["labels"]])
        except HarnessError as exc:
            raise NotFound(str(exc)) from None
    c = compare_runs(context.store, q["a"], q["b"], q["labels"])
    names = {"a": c.a.get("name"), "b": c.b.get("name")}
    if cell is not None:
        keys = c.cell(cell)
        title = CELLS[cell].format(**names)
        back = url("/compare", a=q["a"], b=q["b"], labels=q["labels"])
        return page(title, f'<p>{len(keys):,} samples of {esc(c.label_set)}. <a href="{back}">the comparison</a></p>'
                    + gallery(context.store, c.a["dataset"], keys, request))
    conf = f"{round(100 * c.difference.confidence)}%"
    lines = [f"<li>n = {len(c.keys):,} samples shared, label set {esc(c.label_set)}</li>"]
    for name, w, meta in ((names["a"], c.wilson[0], c.a), (names["b"], c.wilson[1], c.b)):
        lines.append(f'<li><a href="{url("/runs/" + meta["run_id"], labels=c.label_set)}">{esc(name)}</a>: top-1 '
                     f"{100 * w.estimate:.2f}% ({conf} Wilson {100 * w.low:.2f}–{100 * w.high:.2f})</li>")
    d, m = c.difference, c.mcnemar
    lines.append(f'<li id="difference">difference {100 * d.estimate:+.2f} points ({conf} paired bootstrap '
                 f"{100 * d.low:+.2f} to {100 * d.high:+.2f})</li>")
    lines.append(f'<li id="mcnemar">McNemar ({esc(m.method)}): only {esc(names["a"])} right {m.only_a:,}, only '
                 f'{esc(names["b"])} right {m.only_b:,}, p = {m.pvalue:.3g}</li>')
    body = [f"<ul>{''.join(lines)}</ul>"]
    for which, label in CELLS.items():
        keys = c.cell(which)
        more = url("/compare", a=q["a"], b=q["b"], labels=q["labels"], cell=which)
        body.append(f'<h2 id="{which}">{esc(label.format(**names))}: <a href="{more}">{len(keys):,} samples</a></h2>'
                    + gallery(context.store, c.a["dataset"], keys[:PREVIEW], request))
    return page(f"{names['a']} vs {names['b']} on {c.label_set}", "".join(body))
