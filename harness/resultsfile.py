"""``run --results-file``: one row per model in timm validate.py's columns, checked before the run.

The file is written after every model has run; a name that cannot be written (no such folder, a
folder by that name, no permission, another suffix) is refused before anything runs, not after an
hour of inference.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from .errors import HarnessError


def check_results_file(path: str | os.PathLike) -> Path:
    """The results file ``path``, refused now if it could not be written later."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".json"):
        raise HarnessError(f"--results-file {path}: expected a .csv or .json file name (as timm's)")
    if path.is_dir():
        raise HarnessError(f"--results-file {path} is a folder; expected a .csv or .json file name")
    folder = path.parent
    if not folder.is_dir():
        raise HarnessError(f"--results-file {path}: its folder {folder} does not exist; create it first")
    try:  # the file is written to a temporary name beside it and renamed: that must work
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise HarnessError(f"--results-file {path} cannot be written ({exc.strerror} in {folder}); "
                           "nothing was run") from None
    return path


def results_row(meta: dict, scores: list[dict]) -> dict:
    """One model's row in timm validate.py's columns (percentages, millions of parameters), then realbench's:
    the number of images scored, the label set of top1/top5, and top-1/5 against every label set."""
    first = scores[0]
    pct = (lambda v: None if v is None else round(100 * v, 4))
    cfg = meta["preprocessing"]
    row = {"model": meta["model"], "top1": pct(first["top1"]), "top1_err": pct(1 - first["top1"]),
           "top5": pct(first.get("top5")), "top5_err": pct(1 - first["top5"]) if "top5" in first else None,
           "param_count": round(meta["param_count"] / 1e6, 2) if meta.get("param_count") else None,
           "img_size": cfg["input_size"][-1], "crop_pct": cfg["crop_pct"], "interpolation": cfg["interpolation"],
           "n": first["n"], "label_set": first["label_set"], "run_id": meta["run_id"]}
    for score in scores:
        row[f"top1_{score['label_set']}"] = pct(score["top1"])
        row[f"top5_{score['label_set']}"] = pct(score.get("top5"))
    return row


def write_results_file(path: Path, rows: list[dict]) -> None:
    """timm's results file: CSV with a header, or a JSON list of rows; written whole or not at all."""
    from .store import atomic_write_bytes

    if path.suffix.lower() == ".json":
        data = json.dumps(rows, indent=4) + "\n"
    else:
        columns = list(dict.fromkeys(c for row in rows for c in row))
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        data = out.getvalue()
    atomic_write_bytes(path, data.encode())
