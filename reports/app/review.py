"""Label review in the browser: the tasks of a label-error ranking, reviewers' answers kept in the store,
and one action that aggregates them into a new, versioned label set.

**Tasks.** A review is a ranking stored by ``python -m relabel errors`` (a label set of kind
``label-errors``) and a number of suspects: the ``top`` most suspect samples become ReaL-format tasks
(``relabel.errors.review_proposals``: the given label and the most probable others; at most 8 labels a
task, ``relabel.proposals.split_tasks``), presented most suspect first. Each label is answered yes, maybe
or no; "none of these" answers no to every one.

**Answers** are rating rows ``reviewer, task_id, key, label, answer, submission, answered_at`` in the run
table ``review_answers`` of one run of kind ``review`` per (ranking, top), written through the store's run
writer (``RunWriter.write_chunk``: a Parquet file written, fsynced and linked into place whole) and
the run folder fsynced before the browser is told the answer is stored, so a server killed with -9
loses no acknowledged answer. Every submission carries an id made by the page; one already stored is
acknowledged again and not stored twice (a double click, a retry). A later answer of the same reviewer to
the same (task, label) supersedes an earlier one (undo); answers of two reviewers both count.

**Aggregation** (:func:`aggregate`): the latest answer of each reviewer to each question, as
``relabel.ratings.Ratings`` on the yes/maybe/no scale, fitted by a registered aggregation model
(``relabel.aggregation``); each reviewed sample keeps the labels whose posterior of yes reaches the
threshold, the other samples keep the base label set's labels (``relabel.errors.apply_review``); the result
is registered as a new label set (``relabel.labelsets.register_label_set``) whose provenance names the
review run, the ranking, the aggregation model and the base set's version + 1.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from harness.errors import HarnessError
from harness.store import RunWriter, Store, now_iso, register_run_table

ANSWERS_TABLE = "review_answers"
ANSWERS_SCHEMA = pa.schema([
    ("reviewer", pa.string()), ("task_id", pa.string()), ("key", pa.string()), ("label", pa.int32()),
    ("answer", pa.string()), ("submission", pa.string()), ("answered_at", pa.string())])
register_run_table(ANSWERS_TABLE, ANSWERS_SCHEMA)
ANSWERS = ("yes", "maybe", "no")
DEFAULT_TOP = 500
_SUBMISSION = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def review_run_id(ranking: str, top: int) -> str:
    return f"review-{ranking}-top{top}"


@dataclass
class Review:
    """One ranking's review: its tasks (most suspect first) and the answers stored so far."""

    store: Store
    ranking: str
    top: int
    dataset: str
    base: str  # the label set the ranking judged, which the aggregated label set corrects
    tasks: pd.DataFrame  # task_id, key, labels, rank, given
    writer: RunWriter
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self):
        self.task_index = {t: i for i, t in enumerate(self.tasks["task_id"])}
        stored = self.writer.read_table(ANSWERS_TABLE).to_pandas()
        self._rows: list[dict] = stored.to_dict("records")
        self.submissions = set(stored["submission"])
        self._latest: dict[tuple[str, str], dict[int, str]] = {}
        for row in self._rows:
            self._latest.setdefault((row["reviewer"], row["task_id"]), {})[int(row["label"])] = row["answer"]

    # ----- reading ----------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return self.writer.run_id

    def task(self, task_id: str) -> dict:
        if task_id not in self.task_index:
            raise HarnessError(f"no task {task_id!r} in the review of {self.ranking} (top {self.top}); its tasks "
                               f"are named like {self.tasks['task_id'].iloc[0]!r}")
        row = self.tasks.iloc[self.task_index[task_id]]
        return {"task_id": row.task_id, "key": row.key, "labels": [int(x) for x in row.labels],
                "rank": int(row["rank"]), "given": int(row.given)}

    def answers_of(self, reviewer: str, task_id: str) -> dict[int, str]:
        with self._lock:
            return dict(self._latest.get((reviewer, task_id), {}))

    def done(self, reviewer: str) -> int:
        with self._lock:
            return sum(1 for (r, _t) in self._latest if r == reviewer)

    def next_tasks(self, reviewer: str, count: int = 2) -> list[dict]:
        """The first ``count`` tasks (in ranking order) the reviewer has not answered."""
        with self._lock:
            answered = {t for (r, t) in self._latest if r == reviewer}
        out = []
        for task_id in self.tasks["task_id"]:
            if task_id not in answered:
                out.append(self.task(task_id))
                if len(out) == count:
                    break
        return out

    def answer_rows(self) -> pd.DataFrame:
        with self._lock:
            return pd.DataFrame(self._rows, columns=ANSWERS_SCHEMA.names)

    # ----- writing ----------------------------------------------------------------------
    def submit(self, reviewer: str, task_id: str, answers: dict, submission: str) -> bool:
        """Store one task's answers (``{label: yes|maybe|no}``, every label of the task) durably; returns
        False when this submission was stored before (nothing is stored again). Bad input is refused whole."""
        task = self.task(task_id)
        if not isinstance(submission, str) or not _SUBMISSION.match(submission):
            raise HarnessError("the submission id must be 8-64 letters, digits, '-' or '_' (the page makes one)")
        if not isinstance(answers, dict):
            raise HarnessError("answers must be an object {label: yes|maybe|no}")
        given = {}
        for label, answer in answers.items():
            if not str(label).isdigit() or int(label) not in task["labels"]:
                raise HarnessError(f"label {label!r} is not a candidate of task {task_id} (its labels are "
                                   f"{task['labels']})")
            if answer not in ANSWERS:
                raise HarnessError(f"answer {answer!r} for label {label} must be one of {', '.join(ANSWERS)}")
            given[int(label)] = answer
        missing = [lab for lab in task["labels"] if lab not in given]
        if missing:
            raise HarnessError(f"task {task_id} needs an answer for every candidate label; missing {missing}")
        stamp = now_iso()
        rows = [{"reviewer": reviewer, "task_id": task_id, "key": task["key"], "label": lab, "answer": given[lab],
                 "submission": submission, "answered_at": stamp} for lab in task["labels"]]
        with self._lock:
            if submission in self.submissions:
                return False
            self.writer.write_chunk(pd.DataFrame(rows, columns=ANSWERS_SCHEMA.names), ANSWERS_TABLE)
            _fsync_dir(self.writer.dir)
            self.submissions.add(submission)
            self._rows += rows
            self._latest[(reviewer, task_id)] = dict(given)
        return True


def _fsync_dir(path) -> None:
    """The new chunk's name is on disk too (the file itself was fsynced before it was linked)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_review(store: Store, ranking: str, top: int = DEFAULT_TOP) -> Review:
    """The review of a stored ranking's ``top`` suspects, resuming the answers stored by earlier servers."""
    from relabel.errors import ERRORS_TABLE, review_proposals
    from relabel.proposals import split_tasks

    meta = store.label_set_meta(ranking)
    if meta.get("kind") != "label-errors":
        raise HarnessError(f"label set {ranking!r} is not a label-error ranking (python -m relabel errors stores "
                           "one); a review needs one")
    if top < 1:
        raise HarnessError(f"a review needs at least one suspect, got --review-top {top}")
    table = store.read_label_table(ranking, ERRORS_TABLE).to_pandas()
    proposals = review_proposals(table, top)
    tasks = split_tasks(proposals, max_labels=8)
    ranks = dict(zip(table["key"].astype(str), table["rank"]))
    given = dict(zip(table["key"].astype(str), table["given"]))
    tasks = tasks.assign(rank=tasks["key"].map(ranks), given=tasks["key"].map(given))
    tasks = tasks.sort_values(["rank", "task_id"], kind="stable").reset_index(drop=True)
    run_id = review_run_id(ranking, top)
    writer = store.begin_run({"name": f"review-{ranking}", "kind": "review", "dataset": meta["dataset"],
                              "ranking": ranking, "label_set": meta["label_set"], "top": top}, run_id=run_id)
    return Review(store, ranking, top, meta["dataset"], meta["label_set"], tasks, writer)


def latest_answers(rows: pd.DataFrame) -> pd.DataFrame:
    """The last answer of each reviewer to each (key, label), as ``rater, key, label, answer``."""
    ordered = rows.reset_index(drop=True).reset_index().sort_values(["answered_at", "index"], kind="stable")
    latest = ordered.drop_duplicates(["reviewer", "key", "label"], keep="last")
    return latest.rename(columns={"reviewer": "rater"})[["rater", "key", "label", "answer"]].sort_values(
        ["key", "label", "rater"], kind="stable").reset_index(drop=True)


def aggregate(review: Review, name: str, aggregator: str = "majority-vote", threshold: float = 0.5,
              replace: bool = False) -> dict:
    """Aggregate the stored answers into label set ``name`` (see the module docstring); returns its metadata."""
    from relabel.errors import apply_review
    from relabel.labelsets import check_registration, register_label_set
    from relabel.ratings import YES_NO_MAYBE, Ratings

    if not 0 < threshold <= 1:
        raise HarnessError(f"threshold {threshold} must be in (0, 1]: the posterior of yes a label needs to be kept")
    check_registration(review.store, name, review.dataset, replace=replace)
    answers = latest_answers(review.answer_rows())
    if answers.empty:
        raise HarnessError(f"the review of {review.ranking} holds no answer yet; nothing to aggregate")
    ratings = Ratings.from_long(answers.astype({"label": str}), YES_NO_MAYBE, where=f"review {review.run_id}")
    fit = ratings.fit(aggregator)
    questions = ratings.questions.assign(p_yes=fit.posterior[:, 1])
    keys = sorted(questions["key"].unique())
    kept = questions[questions["p_yes"] >= threshold].sort_values(["key", "label"])
    grouped = {k: g for k, g in kept.groupby("key", sort=True)}
    labels = [grouped[k]["label"].astype(int).tolist() if k in grouped else [] for k in keys]
    weights = [grouped[k]["p_yes"].astype(float).tolist() if k in grouped else [] for k in keys]
    base = review.store.sql("SELECT key, labels, weights FROM labels WHERE label_set = ?", [review.base])
    frame = apply_review(base, keys, labels, weights)
    parent = review.store.label_set_meta(review.base)
    provenance = {"review_run": review.run_id, "ranking": review.ranking, "aggregator": aggregator,
                  "threshold": threshold, "reviewed_keys": len(keys), "reviewers": sorted(answers["rater"].unique()),
                  "answers": int(len(answers)), "base": review.base, "base_created_at": parent.get("created_at"),
                  "version": int(parent.get("version", 1)) + 1, "log_likelihood": float(fit.log_likelihood)}
    return register_label_set(review.store, name, frame, dataset=review.dataset, replace=replace,
                              description=f"{review.base} with {len(keys):,} samples reviewed in the browser "
                                          f"({review.ranking}, {aggregator})", provenance=provenance)
