"""Ratings in long form: one row per answer (question, rater, answer), kept as integer codes.

A question is a sample key, or a (sample key, label) pair when raters judge proposed labels
(the ReaL setting). Any dataset enters through :meth:`Ratings.from_long` (a table with
``rater, key, [label,] answer`` columns, the plain long CSV); the released ReaL files enter
through :meth:`Ratings.from_onehot`. Virtual raters (e.g. the original ImageNet label acting
as one more rater) add answers through :meth:`Ratings.with_virtual`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from harness.errors import HarnessError

from .aggregation import AggregationResult, Answers, get_aggregator

YES_NO_MAYBE = ("no", "maybe", "yes")
# How each answer of the yes/no/maybe scale votes for the truth (no, yes) in a majority vote.
YES_NO_MAYBE_VOTES = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])


@dataclass(frozen=True)
class VirtualRater:
    """A rater made from a reference labelling, e.g. the original ImageNet label.

    For a question (key, label) whose label is in ``classes`` (all classes when None) it
    answers ``yes`` when ``reference[key] == label`` and ``no`` otherwise; keys missing from
    the reference get no answer.
    """

    name: str
    reference: dict
    classes: frozenset | None = None
    yes: str = "yes"
    no: str = "no"

    def answers(self, questions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(question codes, answers as 'yes'/'no' strings) for the questions it answers."""
        if "label" not in questions:
            raise HarnessError(f"virtual rater {self.name!r} needs (key, label) questions")
        ref = pd.Series(self.reference).reindex(questions["key"].to_numpy())
        applies = ref.notna().to_numpy(copy=True)
        if self.classes is not None:
            applies &= questions["label"].isin(self.classes).to_numpy()
        idx = np.nonzero(applies)[0]
        same = ref.to_numpy()[idx] == questions["label"].to_numpy()[idx]
        return idx, np.where(same, self.yes, self.no)


@dataclass(frozen=True)
class Ratings:
    questions: pd.DataFrame      # one row per question: 'key' and optionally 'label'
    raters: np.ndarray           # rater ids; code = position
    scale: tuple                 # answer names; code = position
    question: np.ndarray         # per answer: question code
    rater: np.ndarray            # per answer: rater code
    answer: np.ndarray           # per answer: answer code

    @property
    def n_answers(self) -> int:
        return len(self.answer)

    @property
    def is_label_questions(self) -> bool:
        return "label" in self.questions

    # ----- construction -------------------------------------------------------------
    @classmethod
    def from_onehot(cls, tensor: np.ndarray, info: np.ndarray, rater_ids: Iterable,
                    scale: tuple = YES_NO_MAYBE) -> "Ratings":
        """The ReaL release format: ``tensor`` raters × questions × answers, one-hot where answered;
        ``info`` questions × (file name, label)."""
        tensor = np.asarray(tensor)
        if tensor.ndim != 3 or tensor.shape[2] != len(scale):
            raise HarnessError(f"rating tensor must be raters × questions × {len(scale)}, got {tensor.shape}")
        if len(info) != tensor.shape[1]:
            raise HarnessError(f"info has {len(info)} rows but the tensor has {tensor.shape[1]} questions")
        many = tensor.sum(2) > 1
        if many.any():
            r, q = np.argwhere(many)[0]
            raise HarnessError(f"rater {r} gave {int(many.sum())} question(s) more than one answer, first "
                               f"question {q} ({info[q][0]}, {info[q][1]})")
        rater, question, answer = np.nonzero(tensor)
        order = np.lexsort((rater, question))
        questions = pd.DataFrame({"key": np.asarray(info)[:, 0].astype(str),
                                  "label": np.asarray(info)[:, 1].astype(np.int64)})
        return cls(questions, np.asarray(list(rater_ids)), tuple(scale),
                   question[order].astype(np.int64), rater[order].astype(np.int64),
                   answer[order].astype(np.int64))

    @classmethod
    def from_long(cls, table: pd.DataFrame, scale: Iterable | None = None, *,
                  rater_col: str = "rater", key_col: str = "key", label_col: str | None = "label",
                  answer_col: str = "answer", where: str = "the answers") -> "Ratings":
        """From a long table (one answer per row); the scale is the ordered answer names, or,
        for multi-class questions, the class names. Bad rows are refused all at once."""
        need = [rater_col, key_col, answer_col] + ([label_col] if label_col else [])
        missing = [c for c in need if c not in table.columns]
        if missing:
            raise HarnessError(f"{where} lack the column(s) {missing}; expected columns {need}")
        table = table.reset_index(drop=True)
        answers = table[answer_col].astype(str).str.strip()
        if scale is None:
            scale = tuple(sorted(answers.unique()))
        scale = tuple(str(s) for s in scale)
        raise_row_problems(long_table_problems(table, scale, rater_col, key_col, label_col, answer_col),
                           table, where)
        votes = normalised_votes(table, rater_col, key_col, label_col)
        if label_col:
            qframe = votes[["key", "label"]].astype({"label": np.int64})
            qcodes, uniq = pd.MultiIndex.from_frame(qframe).factorize()
            questions = uniq.to_frame(index=False, name=["key", "label"])
        else:
            qcodes, uniq = votes["key"].factorize()
            questions = pd.DataFrame({"key": np.asarray(uniq)})
        rcodes, raters = votes["rater"].factorize()
        acodes = answers.map({s: i for i, s in enumerate(scale)}).to_numpy()
        return cls(questions, np.asarray(raters), scale, np.asarray(qcodes, np.int64),
                   np.asarray(rcodes, np.int64), acodes.astype(np.int64))

    def to_long(self) -> pd.DataFrame:
        out = self.questions.iloc[self.question].reset_index(drop=True)
        out.insert(0, "rater", self.raters[self.rater])
        out["answer"] = np.asarray(self.scale, dtype=object)[self.answer]
        return out

    def with_virtual(self, virtual: VirtualRater) -> "Ratings":
        """These ratings plus the virtual rater's answers (a new rater at the end)."""
        qidx, names = virtual.answers(self.questions)
        codes = {s: i for i, s in enumerate(self.scale)}
        if virtual.yes not in codes or virtual.no not in codes:
            raise HarnessError(f"virtual rater {virtual.name!r} answers {virtual.yes!r}/{virtual.no!r}, "
                               f"which are not on the scale {list(self.scale)}")
        if virtual.name in set(map(str, self.raters)):
            raise HarnessError(f"virtual rater name {virtual.name!r} is already a rater id")
        question = np.concatenate([self.question, qidx])
        rater = np.concatenate([self.rater, np.full(len(qidx), len(self.raters))])
        answer = np.concatenate([self.answer, np.array([codes[n] for n in names], np.int64)])
        order = np.argsort(question, kind="stable")
        raters = np.asarray(list(self.raters) + [virtual.name], dtype=object)
        return Ratings(self.questions, raters, self.scale, question[order], rater[order], answer[order])

    def rater_codes(self, ids: Iterable) -> np.ndarray:
        """Positions of the given rater ids (−1 where absent)."""
        pos = {str(r): i for i, r in enumerate(self.raters)}
        return np.array([pos.get(str(r), -1) for r in ids], np.int64)

    # ----- aggregation -------------------------------------------------------------
    def answers(self, n_classes: int | None = None) -> Answers:
        """These ratings as the aggregation models' input: 2 classes (no, yes) for label
        questions on the yes/no/maybe scale ("maybe" votes half for each in a majority vote),
        else one class per answer."""
        if n_classes is None:
            n_classes = 2 if self.is_label_questions else len(self.scale)
        votes = YES_NO_MAYBE_VOTES if n_classes == 2 and self.scale == YES_NO_MAYBE else None
        return Answers.from_codes(self.question, self.rater, self.answer, n_classes=n_classes,
                                  n_answers=len(self.scale), n_questions=len(self.questions),
                                  n_raters=len(self.raters), answer_votes=votes)

    def fit(self, aggregator: str = "dawid-skene", n_classes: int | None = None,
            **options) -> AggregationResult:
        """Fit the registered aggregation model ``aggregator`` (``relabel.aggregation``) with
        ``options`` to these ratings (classes as in :meth:`answers`)."""
        return get_aggregator(aggregator, **options).fit(self.answers(n_classes))

    def majority(self) -> np.ndarray:
        """Vote counts per question and answer (questions × scale)."""
        counts = np.zeros((len(self.questions), len(self.scale)))
        np.add.at(counts, (self.question, self.answer), 1)
        return counts


def normalised_votes(table: pd.DataFrame, rater_col: str = "rater", key_col: str = "key",
                     label_col: str | None = "label") -> pd.DataFrame:
    """Who voted on what, as compared: rater and key trimmed, the label as a number (NaN when
    it is not one), so that ``3``, ``3.0`` and `` 3`` are the same question."""
    out = pd.DataFrame({"rater": table[rater_col].astype(str).str.strip(),
                        "key": table[key_col].astype(str).str.strip()})
    if label_col:
        out["label"] = pd.to_numeric(table[label_col].astype(str).str.strip(), errors="coerce")
    return out


def not_integer_ids(label: pd.Series) -> pd.Series:
    """True where a numeric label (NaN when it was not a number) is no integer class id (exactly
    representable: below 2**53)."""
    return ~(label.abs() < 2 ** 53) | (label != label.round())


def long_table_problems(table: pd.DataFrame, scale: tuple, rater_col: str = "rater",
                        key_col: str = "key", label_col: str | None = "label",
                        answer_col: str = "answer") -> list[tuple[int, str]]:
    """(row, reason) for rows with an empty rater or key, an answer off the scale, or a
    duplicate vote (a rater answering the same question twice, compared as
    :func:`normalised_votes`)."""
    def blank(col):
        return (table[col].isna() | (table[col].astype(str).str.strip() == "")).to_numpy()

    answers = table[answer_col].astype(str).str.strip()
    votes = normalised_votes(table, rater_col, key_col, label_col)
    problems = [(i, "empty rater") for i in np.nonzero(blank(rater_col))[0]]
    problems += [(i, "empty sample key") for i in np.nonzero(blank(key_col))[0]]
    problems += [(i, f"answer {answers[i]!r} is not one of {list(scale)}")
                 for i in np.nonzero((~answers.isin(scale)).to_numpy())[0]]
    if label_col:
        bad = not_integer_ids(votes["label"]).to_numpy()
        problems += [(i, f"label {table[label_col][i]!r} is not an integer class id")
                     for i in np.nonzero(bad)[0]]
    dup = votes.duplicated(keep="first").to_numpy()
    problems += [(i, "duplicate vote (same rater and question as an earlier row)")
                 for i in np.nonzero(dup)[0]]
    return problems


def raise_row_problems(problems: list[tuple[int, str]], table: pd.DataFrame, where: str,
                       first_line: int = 2, show: int = 20) -> None:
    """Refuse a table with bad rows, listing them (line numbers as in a CSV with a header)."""
    if not problems:
        return
    problems = sorted(problems)
    lines = [f"  line {i + first_line}: {why}: {dict(table.iloc[i])}" for i, why in problems[:show]]
    more = f"\n  ... and {len(problems) - show} more problem(s)" if len(problems) > show else ""
    rows = len({i for i, _ in problems})
    raise HarnessError(f"{where}: {rows} bad row(s), nothing was written:\n"
                       + "\n".join(lines) + more)
