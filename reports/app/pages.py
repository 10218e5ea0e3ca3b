"""HTML of the app's pages: one layout, every name from the store escaped (``esc``), no template engine."""
from __future__ import annotations

import html
import json
from typing import Iterable
from urllib.parse import urlencode

from starlette.responses import HTMLResponse

from .static import asset_url


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def url(path: str, **query) -> str:
    """``path`` with the query parameters that are set (None is left out), escaped for an attribute."""
    params = {k: v for k, v in query.items() if v is not None}
    return esc(path + ("?" + urlencode(params) if params else ""))


def page(title: str, body: str, *, script: str | None = None, data: dict | None = None, status: int = 200
         ) -> HTMLResponse:
    """A whole page: the pinned stylesheet, a navigation bar, ``body`` and optionally the app script with
    ``data`` handed over as JSON (in a non-executable script element, ``<`` escaped)."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{esc(title)} · realbench</title>",
             f'<link rel="stylesheet" href="{asset_url("app.css")}"></head><body>',
             '<nav><a href="/">realbench</a> <a href="/boards">boards</a> <a href="/runs">runs</a></nav>',
             f"<main><h1>{esc(title)}</h1>", body, "</main>"]
    if data is not None:
        payload = json.dumps(data, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
        parts.append(f'<script type="application/json" id="page-data">{payload}</script>')
    if script:
        parts.append(f'<script src="{asset_url("app.js")}"></script><script>realbench.{script}();</script>')
    parts.append("</body></html>")
    return HTMLResponse("\n".join(parts), status_code=status)


def table(header: Iterable[str], rows: Iterable[Iterable[str]], *, sortable: bool = True, numeric=(),
          table_id: str | None = None, raw: bool = False) -> str:
    """A table; cells are escaped unless ``raw`` (then the caller escaped them). Columns in ``numeric`` sort as
    numbers (``data-v`` holds the sort value where a cell is a pair (html, value))."""
    header = list(header)
    out = [f'<table{f" id={esc(table_id)}" if table_id else ""}{" class=sortable" if sortable else ""}><thead><tr>']
    out += [f'<th data-type="{"num" if i in numeric else "text"}">{esc(h)}</th>' for i, h in enumerate(header)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for i, cell in enumerate(row):
            text, value = cell if isinstance(cell, tuple) else (cell, None)
            attr = f' data-v="{esc(value)}"' if value is not None else ""
            cls = ' class="num"' if i in numeric else ""
            out.append(f"<td{attr}{cls}>{text if raw else esc(text)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def error_page(status: int, sentence: str) -> HTMLResponse:
    return page("Not found" if status == 404 else "Bad request", f'<p class="error">{esc(sentence)}</p>',
                status=status)
