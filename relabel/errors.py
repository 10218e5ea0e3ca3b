"""Label errors found by the model zoo: every stored run on a dataset is a rater.

Each complete run on the dataset (own runs and imported prediction files; the latest complete run
of each name) answers every sample it covers with its top-1 class. An aggregation model of
``relabel.aggregation`` (Dawid–Skene by default: a K × K confusion matrix per model, so a model's
reliability is learnt per class; ``one-coin`` when a class has too few samples for that) infers a
posterior over each sample's true class from those answers alone; the label set under test is not
a rater. A sample's suspicion is the posterior probability that its given label is wrong.

A run that is the label set itself (its top-1 equals the given label on every sample, e.g. the
``original_labels`` import) is left out: it is the thing under test, not a rater.

That dense posterior (classes × samples) serves up to :data:`DENSE_MAX_CLASSES` classes. Beyond, or
with a reference label set to learn from (``learn_from``), each sample's candidate classes (its
given label and every run's top-k, :mod:`relabel.candidates`) carry the rater model, and
:mod:`relabel.error_ranking` ranks them: ImageNet's 50,000 images × 1,000 classes in seconds.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.store import Store

from .aggregation import Answers, get_aggregator
from .candidates import CandidateAnswers
from .suspicion import kinds_from_votes, rank_within_kind

ERRORS_TABLE = "label_errors"


def given_labels(store: Store, label_set: str) -> pd.Series:
    """The first label of each key of a stored label set (keys with no label left out)."""
    store.label_set_meta(label_set)  # refuses an unknown name, listing the known ones
    rows = store.sql("SELECT key, labels[1] AS label FROM labels WHERE label_set = ? AND len(labels) > 0",
                     [label_set])
    return pd.Series(rows["label"].to_numpy(np.int64), index=rows["key"].astype(str))


def rater_runs(store: Store, dataset: str, names: list[str] | None = None) -> list[dict]:
    """The latest complete run of each name on ``dataset`` (all names, or those given)."""
    if isinstance(names, str):
        raise HarnessError(f"runs must be a list of run names, got the string {names!r}")
    latest: dict[str, dict] = {}
    for meta in store.list_runs("complete"):  # oldest first, so later runs replace earlier ones
        if meta.get("dataset") == dataset:
            latest[meta["name"]] = meta
    if names is not None:
        missing = [n for n in names if n not in latest]
        if missing:
            raise HarnessError(f"no complete run named {', '.join(missing)} on dataset {dataset} in store "
                               f"{store.root}; runs on it: {', '.join(sorted(latest)) or 'none'}")
        latest = {n: latest[n] for n in names}
    return [latest[n] for n in sorted(latest)]


def model_answers(store: Store, runs: list[dict], given: pd.Series) -> tuple[list[str], pd.DataFrame]:
    """(rater names, long table rater, key, answer) of the runs' top-1 classes on the given keys;
    runs identical to the given labels are left out."""
    ids = [meta["run_id"] for meta in runs]
    rows = store.sql("SELECT run_id, key, top_classes[1] AS answer FROM predictions WHERE run_id IN "
                     "(SELECT unnest(?)) AND top_classes IS NOT NULL AND len(top_classes) > 0", [ids])
    rows = rows[rows["key"].isin(given.index)]
    frames, names = [], []
    for meta in runs:
        mine = rows[rows["run_id"] == meta["run_id"]]
        if mine.empty:
            continue
        answer = mine["answer"].to_numpy(np.int64)
        if len(mine) == len(given) and np.array_equal(answer, given.reindex(mine["key"]).to_numpy()):
            continue
        frames.append(pd.DataFrame({"rater": len(names), "key": mine["key"].to_numpy(), "answer": answer}))
        names.append(meta["name"])
    if not frames:
        raise HarnessError("no stored run predicts any sample of the label set (runs that equal it are left out)")
    return names, pd.concat(frames, ignore_index=True)


def rank_label_errors(given: pd.Series, names: list[str], answers: pd.DataFrame, n_classes: int,
                      aggregator: str = "dawid-skene", **options) -> pd.DataFrame:
    """Every sample that some rater answered, most suspect first.

    Columns: ``rank``, ``key``, ``given`` (label), ``kind`` / ``kind_rank`` (the kind of suspect
    from the votes, :func:`relabel.suspicion.kinds_from_votes`, and its rank within the kind),
    ``p_wrong`` (posterior that the given label is
    wrong), ``likely`` / ``p_likely`` (the most probable label and its posterior), ``second`` /
    ``p_second`` (the next), ``models_likely`` / ``models_given`` (how many raters answered each),
    ``raters`` (how many answered the sample) and ``agreeing`` (the names of the raters that
    answered ``likely``). Ties in ``p_wrong`` (posteriors that round to 1) go to fewer raters for
    the given label, then more for the likely one, then the key.
    """
    keys, question = np.unique(answers["key"].to_numpy(str), return_inverse=True)
    rater = answers["rater"].to_numpy(np.int64)
    answer = answers["answer"].to_numpy(np.int64)
    label = given.reindex(keys).to_numpy(np.int64)
    if answer.max() >= n_classes or label.max() >= n_classes:
        raise HarnessError(f"labels or predictions reach class {max(answer.max(), label.max())} but the "
                           f"dataset has {n_classes} classes")
    fit = get_aggregator(aggregator, **options).fit(Answers.from_codes(
        question, rater, answer, n_classes=n_classes, n_answers=n_classes, n_questions=len(keys),
        n_raters=len(names)))
    post = fit.posterior
    order = np.argsort(-post, axis=1, kind="stable")[:, :2]
    rows = np.arange(len(keys))
    votes = np.zeros((len(keys), n_classes), np.int64)
    np.add.at(votes, (question, answer), 1)
    likely = order[:, 0]
    agreeing = pd.Series([names[r] for r in rater], dtype=object)[answer == likely[question]]
    agreeing_by_key = agreeing.groupby(question[answer == likely[question]]).agg(sorted)
    table = pd.DataFrame({
        "key": keys, "given": label, "p_wrong": 1.0 - post[rows, label],
        "likely": likely, "p_likely": post[rows, likely], "second": order[:, 1], "p_second": post[rows, order[:, 1]],
        "models_likely": votes[rows, likely], "models_given": votes[rows, label], "raters": votes.sum(1),
        "agreeing": agreeing_by_key.reindex(rows).map(lambda x: x if isinstance(x, list) else []).to_numpy(),
    })
    disputed = table["models_given"].to_numpy() < table["raters"].to_numpy()
    kind = kinds_from_votes(disputed, table["models_given"].to_numpy(), table["models_likely"].to_numpy())
    table.insert(2, "kind", kind)
    table.insert(3, "kind_rank", rank_within_kind(kind, table["p_wrong"].to_numpy(), keys))
    table = table.sort_values(["p_wrong", "models_given", "models_likely", "key"],
                              ascending=[False, True, False, True], kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


# Up to this many classes the dense aggregators (a classes × samples posterior) rank the samples;
# beyond it, or with a reference to learn from, the candidate classes do (relabel.error_ranking).
DENSE_MAX_CLASSES = 100
CANDIDATE_SHRINKAGE = {"dawid-skene": 50.0, "one-coin": np.inf}


def find_label_errors(store: Store, dataset: str, label_set: str, n_classes: int,
                      runs: list[str] | None = None, aggregator: str = "dawid-skene", *,
                      learn_from: str | None = None, top_k: int = 5, **options) -> tuple[pd.DataFrame, list[str]]:
    """(ranked table, rater names) for ``label_set`` of ``dataset`` from the store's runs.

    Dense aggregators for up to :data:`DENSE_MAX_CLASSES` classes without a reference; else the
    candidate classes of each sample (the runs' top-``top_k``), with ``learn_from`` (a label set
    of the same dataset, e.g. ``real``) fitted two-fold cross-fitted into the suspicion."""
    given = given_labels(store, label_set)
    run_list = rater_runs(store, dataset, runs)
    if learn_from is None and n_classes <= DENSE_MAX_CLASSES:
        names, answers = model_answers(store, run_list, given)
        table = rank_label_errors(given, names, answers, n_classes, aggregator, **options)
        return table, names
    from .candidates import fit_candidates
    from .error_ranking import rank_candidates

    if aggregator not in CANDIDATE_SHRINKAGE:
        raise HarnessError(f"with {n_classes} classes the candidate model ranks the samples; --aggregator takes "
                           f"{' or '.join(CANDIDATE_SHRINKAGE)} there, got {aggregator!r}")
    if options:
        raise HarnessError(f"the candidate model takes no option(s) {', '.join(sorted(options))}")
    if top_k < 1:
        raise HarnessError(f"--top-k must be at least 1, got {top_k}")
    candidates = candidate_answers(store, run_list, given, n_classes, top_k)
    outcome = None
    if learn_from is not None:
        outcome = reference_outcome(store, dataset, learn_from, candidates.keys, candidates.given)
    fit = fit_candidates(candidates, shrinkage=CANDIDATE_SHRINKAGE[aggregator])
    return rank_candidates(candidates, fit, outcome), candidates.raters


def reference_outcome(store: Store, dataset: str, reference: str, keys: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Per key: label wrong / multi-label / holds against a reference label set, −1 where it has no
    labels (:func:`relabel.suspicion.reference_outcomes`)."""
    from .suspicion import reference_outcomes

    meta = store.label_set_meta(reference)
    if meta.get("dataset") not in (None, dataset):
        raise HarnessError(f"reference label set {reference!r} is on dataset {meta.get('dataset')}, not {dataset}")
    rows = store.sql("SELECT key, labels FROM labels WHERE label_set = ?", [reference])
    labels = dict(zip(rows["key"].astype(str), rows["labels"]))
    if not any(k in labels for k in keys):
        raise HarnessError(f"reference label set {reference!r} labels none of the {len(keys):,} samples ranked")
    return reference_outcomes(given, [labels.get(k) for k in keys])


def ranking_method(n_classes: int, aggregator: str, learn_from: str | None) -> str:
    """How :func:`find_label_errors` ranks, in words."""
    if learn_from is not None:
        return f"the suspicion learnt from {learn_from} (cross-fitted halves) on {aggregator} candidates"
    return aggregator if n_classes <= DENSE_MAX_CLASSES else f"{aggregator} on candidate classes"


def store_label_errors(store: Store, name: str, table: pd.DataFrame, *, dataset: str, label_set: str,
                       raters: list[str], aggregator: str, learn_from: str | None = None) -> None:
    """Keep the ranking in the store as table ``label_errors`` (one entry per ``name``)."""
    store.put_label_set(name, {"kind": "label-errors", "dataset": dataset, "label_set": label_set,
                               "raters": raters, "aggregator": aggregator, "learn_from": learn_from,
                               "description": f"label errors of {label_set} found by {len(raters)} runs"},
                        {ERRORS_TABLE: table})


def precision_recall_at(ranked_keys, reference: set, ks) -> pd.DataFrame:
    """Precision and recall of the first k ranked keys against a reference set of true errors."""
    ranked = pd.Series(list(ranked_keys), dtype=str)
    hit = ranked.isin(reference).to_numpy()
    found = np.cumsum(hit)
    rows = [{"k": int(k), "found": int(found[k - 1]), "precision": found[k - 1] / k,
             "recall": found[k - 1] / len(reference)} for k in ks if 0 < k <= len(ranked)]
    return pd.DataFrame(rows)


def cifar10_error_references() -> dict[str, set]:
    """Keys of CIFAR-10 test images whose original label is judged wrong: ``cifar10h`` where the
    CIFAR-10H plurality (~51 people) differs from it; ``mturk`` where fewer than 3 of the 5
    workers who checked a candidate (Northcutt et al. 2021) kept it."""
    from harness import cifar

    original = cifar.cifar10_labels()
    plurality = cifar.cifar10h_counts().argmax(1)
    checked = cifar.label_errors()
    return {"cifar10h": {str(i) for i in np.flatnonzero(plurality != original)},
            "mturk": {str(i) for i in checked.loc[checked["votes_given"] < 3, "index"]}}


def review_proposals(table: pd.DataFrame, top: int, candidates: int = 3) -> dict[str, list[int]]:
    """The ``top`` suspects as proposals for rating tasks: the given label and the ``candidates``
    − 1 most probable others (likely, second), sorted."""
    if top < 1 or candidates < 2:
        raise HarnessError(f"--review needs at least 1 suspect and 2 candidate labels, got {top} and {candidates}")
    out = {}
    for row in table.head(top).itertuples(index=False):
        labels = [int(row.given)] + [int(c) for c in (row.likely, row.second)
                                     if int(c) != int(row.given) and int(c) >= 0]  # −1: no second candidate
        out[str(row.key)] = sorted(set(labels[:candidates]))
    return out


def apply_review(base: pd.DataFrame, keys: list[str], labels: list[list[int]],
                 weights: list[list[float]]) -> pd.DataFrame:
    """The base label set (``key, labels, weights``) with the reviewed keys' rows replaced by the
    labels the answers kept (an empty list drops the sample, as in ReaL)."""
    unknown = sorted(set(keys) - set(base["key"]))
    if unknown:
        raise HarnessError(f"{len(unknown)} reviewed key(s) are not in the base label set, e.g. {unknown[:5]}")
    reviewed = pd.DataFrame({"key": keys, "labels": [[int(x) for x in v] for v in labels],
                             "weights": [[float(x) for x in v] for v in weights]})
    kept = base[~base["key"].isin(set(keys))]
    base_labels = [[int(x) for x in v] if isinstance(v, (list, np.ndarray)) else [] for v in kept["labels"]]
    base_weights = [[float(x) for x in w] if isinstance(w, (list, np.ndarray)) and len(w) == len(v) else [1.0] * len(v)
                    for v, w in zip(base_labels, kept["weights"])]  # a set stored without weights weighs 1
    kept = pd.DataFrame({"key": kept["key"].astype(str).to_numpy(), "labels": base_labels, "weights": base_weights})
    return pd.concat([kept, reviewed], ignore_index=True).sort_values("key", kind="stable").reset_index(drop=True)


def candidate_answers(store: Store, runs: list[dict], given: pd.Series, n_classes: int,
                      top_k: int = 5) -> CandidateAnswers:
    """The runs' top-``top_k`` classes and scores on the given keys as candidates
    (:mod:`relabel.candidates`), and, for runs that stored full logits, the given label's rank and
    probability below the top-k (:func:`given_label_from_logits`); runs identical to the given
    labels are left out, as in :func:`model_answers`. A run covering some keys answers those only."""
    ids = [meta["run_id"] for meta in runs]
    rows = store.sql(
        "SELECT run_id, key, unnest(top_classes[1:?]) AS klass, unnest(range(len(top_classes[1:?]))) AS rank, "
        "unnest(top_scores[1:?]) AS score FROM predictions WHERE run_id IN (SELECT unnest(?)) "
        "AND top_classes IS NOT NULL AND len(top_classes) > 0", [top_k, top_k, top_k, ids])
    keys = given.index.to_numpy(str)
    order = np.argsort(keys, kind="stable")
    keys, labels = keys[order], given.to_numpy(np.int64)[order]
    pos = np.searchsorted(keys, rows["key"].to_numpy(str))
    known = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == rows["key"].to_numpy(str))
    rows, pos = rows[known], pos[known]
    names, rater = [], np.full(len(rows), -1, np.int64)
    run_of = rows["run_id"].to_numpy(str)
    klass, rank = rows["klass"].to_numpy(np.int64), rows["rank"].to_numpy(np.int64)
    for meta in runs:
        mine = run_of == meta["run_id"]
        if not mine.any():
            continue
        first = mine & (rank == 0)
        if first.sum() == len(keys) and np.array_equal(klass[first][np.argsort(pos[first])], labels):
            continue  # the label set itself, imported as a run
        rater[mine] = len(names)
        names.append(meta["name"])
    if not names:
        raise HarnessError("no stored run predicts any sample of the label set (runs that equal it are left out)")
    use = rater >= 0
    answers = [pos[use], rater[use], klass[use], rank[use], rows["score"].to_numpy(float)[use]]
    raters_of = {meta["run_id"]: names.index(meta["name"]) for meta in runs if meta["name"] in names}
    extra = given_label_from_logits(store, raters_of, keys, labels, n_classes, top_k)
    answers = [np.concatenate([a, b]) for a, b in zip(answers, extra)]
    return CandidateAnswers.build(keys, labels, names, *answers, n_classes)


def given_label_from_logits(store: Store, raters_of: dict[str, int], keys: np.ndarray, labels: np.ndarray,
                            n_classes: int, top_k: int, chunk: int = 4096) -> list[np.ndarray]:
    """(sample, rater, class, rank, score) of the given label where a run stored full logits and the label
    fell below its top-``top_k``: its rank among all classes and its softmax probability, so a run with
    logits says how unlikely it found the label, where a top-k list only says it was not in it."""
    out = [np.zeros(0, np.int64)] * 4 + [np.zeros(0)]
    rows = store.sql("SELECT run_id, key, logits FROM predictions WHERE run_id IN (SELECT unnest(?)) "
                     "AND logits IS NOT NULL AND len(logits) = ?", [list(raters_of), n_classes])
    if rows.empty:
        return out
    pos = np.searchsorted(keys, rows["key"].to_numpy(str))
    known = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == rows["key"].to_numpy(str))
    rows, pos = rows[known], pos[known]
    parts = []
    for start in range(0, len(rows), chunk):
        logits = np.stack(rows["logits"].iloc[start:start + chunk].to_numpy()).astype(float)
        label = labels[pos[start:start + chunk]]
        mine = logits[np.arange(len(label)), label]
        rank = (logits > mine[:, None]).sum(1)
        top = logits.max(1)
        prob = np.exp(mine - top) / np.exp(logits - top[:, None]).sum(1)
        below = rank >= top_k
        parts.append((pos[start:start + chunk][below], rows["run_id"].iloc[start:start + chunk].to_numpy(str)[below],
                      label[below], rank[below], prob[below]))
    if not parts:
        return out
    sample, run, label, rank, prob = (np.concatenate(x) for x in zip(*parts))
    return [sample, np.array([raters_of[r] for r in run], np.int64), label, rank, prob]
