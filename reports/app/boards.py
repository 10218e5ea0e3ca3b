"""Live leaderboards: every spec in ``leaderboards/`` built from the store (``reports.leaderboard.build``, the
same board the static files show), handed to the browser as JSON with the static files' column texts.

A built board (and its JSON) is kept while the store's runs and label sets stay the same (``Context.memo``),
so a filter or a page of a 1,556-row board costs no rebuild."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from harness.store import Store

from ..leaderboard import DASH, SOURCE_EXTERNAL, Board, build
from ..render import COLUMNS
from ..spec import load_spec, spec_names


@dataclass
class BoardCache:
    """Boards by spec name, built on first use; the views keep them in the context's memo."""

    directory: Path

    def names(self) -> list[str]:
        return spec_names(self.directory)

    def build(self, store: Store, name: str) -> Board:
        return build(store, load_spec(name, self.directory))


def _number(value):
    if value is None or isinstance(value, str):
        return value
    value = float(value)
    return None if math.isnan(value) else value


def _cell(column, row) -> list:
    """[text] for a text column (it sorts by its text), [text, sort value] for a number."""
    text = column.cell(row)
    return [text, _number(column.sort_value(row))] if column.numeric else [text]


def board_data(board: Board) -> dict:
    """The board as the page's script reads it: columns (id, header, numeric; the spec's shown by default),
    and per row the model, source, n, the plot's point and each column's text and sort value."""
    spec = board.spec
    # Further columns the chooser offers: those with something to show on this board.
    columns = [cid for cid in COLUMNS if cid not in spec.columns
               and any(COLUMNS[cid].cell(row) not in ("", DASH) for row in board.rows)]
    rel, ref = board.relabelled.axis, board.reference.axis
    rows = []
    for row in board.rows:
        link = None
        if row.source != SOURCE_EXTERNAL:
            link = {"name": row.name, "dataset": rel.dataset, "labels": rel.label_set}
        rows.append({"model": row.name, "source": row.source, "n": row.relabelled.n,
                     "x": round(100 * row.reference.accuracy, 4), "y": round(100 * row.relabelled.accuracy, 4),
                     "run": link,
                     "cells": {cid: _cell(COLUMNS[cid], row) for cid in (*spec.columns, *columns)}})
    return {"name": spec.name, "title": spec.title,
            "columns": [{"id": cid, "header": COLUMNS[cid].header(board), "numeric": COLUMNS[cid].numeric}
                        for cid in (*spec.columns, *columns)],
            "shown": list(spec.columns), "sources": sorted({r.source for r in board.rows}),
            "x_label": f"top-1 % ({ref.label_set})", "y_label": f"top-1 % ({rel.label_set})", "rows": rows}
