"""Query answers as text: an aligned table, CSV, JSON records or a Markdown table.

``harness sql --format`` and ``harness runs`` print through :func:`format_frame`, so an empty answer
is its header and ``(0 rows)``, never a pandas repr.
"""
from __future__ import annotations

import io
import json
import math

import pandas as pd

FORMATS = ("table", "csv", "json", "markdown")


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if hasattr(value, "tolist"):  # numpy arrays (list columns) and scalars
        value = value.tolist()
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def format_frame(frame: pd.DataFrame, fmt: str = "table", max_rows: int | None = None) -> str:
    """``frame`` as text in one of :data:`FORMATS`; ``table`` and ``markdown`` show at most ``max_rows``
    rows and say how many were left out."""
    if fmt == "csv":
        out = io.StringIO()
        frame.to_csv(out, index=False)
        return out.getvalue().rstrip("\n")
    if fmt == "json":  # every digit of a float (pandas' to_json keeps 10); NaN as null
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        return json.dumps(records, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))
    shown = frame if max_rows is None or len(frame) <= max_rows else frame.head(max_rows)
    header = [str(c) for c in frame.columns]
    rows = [[_cell(v) for v in row] for row in shown.itertuples(index=False, name=None)]
    more = len(frame) - len(shown)
    footer = f"({len(frame):,} rows{f', first {len(shown):,} shown' if more else ''})"
    if fmt == "markdown":
        escape = lambda s: s.replace("|", "\\|")  # noqa: E731
        lines = ["| " + " | ".join(map(escape, header)) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(map(escape, r)) + " |" for r in rows]
        return "\n".join(lines + ([f"\n{footer}"] if more or not rows else []))
    if fmt != "table":
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    numeric = [pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in frame.dtypes]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells):
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows), footer])
