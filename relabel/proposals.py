"""Candidate labels from stored model runs, and rating tasks built from them.

The paper's rules (Beyer et al. 2020, §3.1), with the counts as parameters: take each
model's ``top_k`` labels, keep the labels that at least ``min_models`` models propose, then
add every model's top-1 and the original label. A greedy search picks the model subset
whose proposals reach a recall target against expert labels with the fewest models.

Proposals are split into rating tasks of at most ``max_labels`` labels per image, exported
as JSONL or CSV; the raters' answers come back as a long CSV
(``rater,key,label,answer``) and are checked against the tasks before aggregation.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.store import Store, atomic_write_bytes

from .ratings import (YES_NO_MAYBE, Ratings, long_table_problems, normalised_votes, not_integer_ids,
                      raise_row_problems)

Ranked = Mapping[str, list]          # sample key -> labels, best first


def ranked_labels_from_store(store: Store, run_ref: str, top_k: int, dataset: str | None = None
                             ) -> dict[str, list[int]]:
    """A stored run's best ``top_k`` classes per sample key (from its ``top_classes``); a run name resolves
    on ``dataset`` when given."""
    meta = store.resolve_run(run_ref, dataset)
    rows = store.sql("SELECT key, top_classes FROM predictions WHERE run_id = ?", [meta["run_id"]])
    if rows.empty:
        raise HarnessError(f"run {meta['run_id']} has no predictions with top classes")
    return {k: [int(c) for c in list(v)[:top_k]] for k, v in zip(rows["key"], rows["top_classes"])
            if v is not None and len(v)}


def propose(models: Mapping[str, Ranked], original: Mapping[str, int] | None = None,
            top_k: int = 5, min_models: int = 2, add_top1: bool = True,
            add_original: bool = True) -> dict[str, list[int]]:
    """Candidate labels per sample key, sorted."""
    if top_k < 1 or min_models < 1:
        raise HarnessError(f"top_k and min_models must be >= 1, got {top_k} and {min_models}")
    if not models:
        raise HarnessError("no models to propose labels from")
    keys = sorted(set().union(*(m.keys() for m in models.values()))
                  | (set(original) if (original and add_original) else set()))
    out: dict[str, list[int]] = {}
    for key in keys:
        votes = Counter()
        chosen = set()
        for ranked in models.values():
            labels = ranked.get(key)
            if not labels:
                continue
            votes.update(set(labels[:top_k]))
            if add_top1:
                chosen.add(int(labels[0]))
        chosen.update(int(lab) for lab, n in votes.items() if n >= min_models)
        if add_original and original is not None and key in original:
            chosen.add(int(original[key]))
        out[key] = sorted(chosen)
    return out


def proposal_recall(proposals: Mapping[str, list], reference: Mapping[str, Iterable]) -> dict:
    """Share of reference (key, label) pairs that are proposed, and proposals per image."""
    hit = total = 0
    for key, labels in reference.items():
        labels = set(labels)
        total += len(labels)
        hit += len(labels & set(proposals.get(key, ())))
    sizes = [len(proposals.get(k, ())) for k in reference]
    return {"recall": hit / total if total else float("nan"), "reference_labels": total,
            "images": len(reference),
            "mean_proposals": float(np.mean(sizes)) if sizes else float("nan"),
            "mean_proposals_all": float(np.mean([len(v) for v in proposals.values()]))
            if proposals else float("nan")}


def select_models(models: Mapping[str, Ranked], reference: Mapping[str, Iterable],
                  target_recall: float, original: Mapping[str, int] | None = None,
                  **rules) -> tuple[list[str], pd.DataFrame]:
    """Greedy forward selection: add the model that raises recall most (fewer proposals
    break ties) until the target is reached. Returns (chosen names, one row per step, with
    recall and proposals per image measured on the reference images)."""
    if not 0 < target_recall <= 1:
        raise HarnessError(f"target recall must be in (0, 1], got {target_recall}")
    # Recall needs the reference images only: propose for those while searching.
    models = {m: {k: ranked[k] for k in reference if k in ranked} for m, ranked in models.items()}
    if original is not None:
        original = {k: original[k] for k in reference if k in original}
    chosen: list[str] = []
    steps = []
    remaining = sorted(models)
    while remaining:
        best = None
        for name in remaining:
            trial = {m: models[m] for m in chosen + [name]}
            stats = proposal_recall(propose(trial, original, **rules), reference)
            score = (stats["recall"], -stats["mean_proposals"])
            if best is None or score > best[0]:
                best = (score, name, stats)
        _, name, stats = best
        chosen.append(name)
        remaining.remove(name)
        stats.pop("mean_proposals_all")  # the same as mean_proposals here: reference images only
        steps.append({"step": len(chosen), "added": name, **stats})
        if stats["recall"] >= target_recall:
            break
    return chosen, pd.DataFrame(steps)


# ----- rating tasks -----------------------------------------------------------------------
def split_tasks(proposals: Mapping[str, list], max_labels: int = 8) -> pd.DataFrame:
    """One row per task: ``task_id, key, labels`` with at most ``max_labels`` labels."""
    if max_labels < 1:
        raise HarnessError(f"max_labels must be >= 1, got {max_labels}")
    rows = []
    for key in sorted(proposals):
        labels = list(proposals[key])
        for part, start in enumerate(range(0, len(labels), max_labels)):
            rows.append({"task_id": f"{key}#{part}", "key": key,
                         "labels": [int(x) for x in labels[start:start + max_labels]]})
    return pd.DataFrame(rows, columns=["task_id", "key", "labels"])


def export_tasks(tasks: pd.DataFrame, path: Path, class_names: list | None = None) -> None:
    """JSONL (one task a line) or CSV (one (task, label) a line), by the file's suffix."""
    path = Path(path)
    if path.suffix == ".jsonl":
        lines = []
        for row in tasks.itertuples(index=False):
            item = {"task_id": row.task_id, "key": row.key, "labels": list(row.labels)}
            if class_names is not None:
                item["label_names"] = [class_names[lab] for lab in row.labels]
            lines.append(json.dumps(item))
        atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    elif path.suffix == ".csv":
        long = tasks.explode("labels").rename(columns={"labels": "label"})
        if class_names is not None:
            long["label_name"] = [class_names[int(lab)] for lab in long["label"]]
        atomic_write_bytes(path, long.to_csv(index=False).encode())
    else:
        raise HarnessError(f"task file {path} must end in .jsonl or .csv")


def read_answer_table(path: Path, what: str, need: list[str]) -> pd.DataFrame:
    """A UTF-8 CSV of strings with the columns ``need``, or one HarnessError naming the file."""
    if not Path(path).is_file():
        raise HarnessError(f"{what} {path} does not exist; expected a CSV with the columns {need}")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise HarnessError(f"{what} {path} is not a UTF-8 CSV with a header row ({type(exc).__name__}: "
                           f"{str(exc).strip()[:120]}); expected the columns {need}") from None
    if [c for c in need if c not in table.columns]:
        raise HarnessError(f"{what} {path} must have the columns {need}, found {list(table.columns)}")
    return table


def read_tasks(path: Path) -> pd.DataFrame:
    """Tasks as written by :func:`export_tasks`, one row per (task_id, key, label)."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"no task file {path}")
    if path.suffix == ".jsonl":
        rows = []
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise HarnessError(f"task file {path} is not UTF-8 text ({exc}); expected JSON lines") from None
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                rows += [{"task_id": item["task_id"], "key": item["key"], "label": int(lab)}
                         for lab in item["labels"]]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise HarnessError(f"{path} line {n} is not a task ({exc!r})") from None
        return pd.DataFrame(rows, columns=["task_id", "key", "label"])
    if path.suffix == ".csv":
        table = read_answer_table(path, "task file", ["task_id", "key", "label"])[["task_id", "key", "label"]]
        return table.assign(label=integer_labels(table, path, "task file"))
    raise HarnessError(f"task file {path} must end in .jsonl or .csv")


def integer_labels(table: pd.DataFrame, path: Path, what: str, col: str = "label") -> pd.Series:
    """The column as integer class ids, or one HarnessError naming the file and the first bad line."""
    label = pd.to_numeric(table[col].str.strip(), errors="coerce")
    bad = np.nonzero(not_integer_ids(label).to_numpy())[0]
    if len(bad):
        raise HarnessError(f"{what} {path}: {len(bad)} of {len(table)} rows have a {col} that is not an "
                           f"integer class id; the first is line {bad[0] + 2}: {dict(table.iloc[bad[0]])}")
    return label.astype(np.int64)


def read_answers(path: Path, tasks: pd.DataFrame, raters: Iterable[str] | None = None,
                 scale: tuple = YES_NO_MAYBE) -> Ratings:
    """Answers (long CSV: ``rater,key,label,answer``) checked against the tasks.

    Refused, with every offending row listed: a sample or (sample, label) that no task
    asked about, a rater not in ``raters`` (when given), an answer off the scale, a
    duplicate vote, an empty or non-integer field.
    """
    path = Path(path)
    table = read_answer_table(path, "answer file", ["rater", "key", "label", "answer"])
    where = f"answers in {path}"
    problems: list[tuple[int, str]] = []
    votes = normalised_votes(table)
    label_num = votes["label"]
    bad_label = not_integer_ids(label_num)  # reported below
    asked_keys = set(tasks["key"].astype(str))
    asked = set(zip(tasks["key"].astype(str), tasks["label"].astype(np.int64)))
    keys = votes["key"]
    for i in np.nonzero(~bad_label.to_numpy())[0]:
        key = keys[i]
        if key and key not in asked_keys:
            problems.append((i, f"unknown sample {key!r} (in no task)"))
        elif key and (key, int(label_num[i])) not in asked:
            problems.append((i, f"unknown label {int(label_num[i])} for sample {key!r} (not in its tasks)"))
    if raters is not None:
        roster = {str(r) for r in raters}
        problems += [(i, f"unknown rater {r!r}") for i, r in enumerate(votes["rater"]) if r and r not in roster]
    problems += long_table_problems(table, scale)
    raise_row_problems(problems, table, where)
    return Ratings.from_long(table, scale, where=where)
