"""Shared by the relabel benchmarks: one results file, one section per script.

Each script rewrites only its own section of ``benchmarks/results/relabel.md`` (between
``<!-- name:start -->`` and ``<!-- name:end -->``), so the scripts run in any order and a
re-run replaces its old numbers instead of appending stale ones.
"""
from __future__ import annotations

import datetime
import os
import platform
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "relabel.md"
TITLE = "# relabel: measured figures\n\nWritten by `benchmarks/relabel_*.py`; each section says which script and when.\n"


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, body: str) -> Path:
    """Replace (or add) the section ``name`` of the results file, atomically."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = f"{start}\n{body.rstrip()}\n\n_`benchmarks/{name}.py`, {stamp}, {machine()}._\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else TITLE
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=RESULTS.parent, prefix=".relabel.", suffix=".md")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, RESULTS)
    return RESULTS
