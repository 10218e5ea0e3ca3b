"""``python -m relabel``: aggregate human ratings into label sets, propose labels, find ambiguous classes.

Subcommands:
  real            rebuild ImageNet-ReaL from the raw ratings; compare with the release
  raters          per-rater quality on the golden questions
  aggregate       any registered aggregation model (Dawid–Skene, one-coin, majority vote) on a long
                  CSV of answers (rater,key[,label],answer)
  cifar10s        multi-class Dawid–Skene on the raw CIFAR-10S answers vs the majority vote
  cifar10h        soft labels and ReaL-style label sets from the CIFAR-10H counts
  propose         candidate labels from stored runs (the paper's rules); model-subset search
  tasks           split proposals into rating tasks (JSONL or CSV)
  import-answers  check raters' answers against the tasks, aggregate, register the label set
  oracle          the ambiguous-class oracle, and stored models against it
  errors          label errors of a label set, with every stored run on its dataset as a rater
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from harness.cliargs import common_options, open_store, run_main
from harness.errors import HarnessError

from .real import MAYBE_HANDLING


_store = open_store


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=lambda x: x.item() if hasattr(x, "item") else str(x)))


def _write_csv(frame: pd.DataFrame, path: str) -> None:
    from harness.store import atomic_write_bytes

    atomic_write_bytes(Path(path), frame.to_csv(index=False, float_format="%.6g").encode())
    print(f"wrote {path} ({len(frame)} rows)", file=sys.stderr)


# The fit flags' defaults; a flag left at its default is not passed to the aggregation model,
# so a model that has no such option (majority-vote has no --tol) is not refused for it.
FIT_DEFAULTS = {"iterations": None, "max_iter": 500, "tol": 1e-10, "smoothing": 0.0}


def _fit_options(args, n_classes: int | None = None, changed_only: bool = False) -> dict:
    smoothing = getattr(args, "smoothing", 0.0)
    diagonal = getattr(args, "diagonal_smoothing", 0.0)
    if diagonal:
        if not n_classes:
            raise HarnessError("--diagonal-smoothing is for multi-class questions (answers = classes)")
        smoothing = smoothing + diagonal * np.eye(n_classes)
    options = {"max_iter": args.max_iter, "tol": args.tol, "fixed_iterations": args.iterations,
               "smoothing": smoothing}
    if changed_only:
        given = {"max_iter": "max_iter", "tol": "tol", "fixed_iterations": "iterations", "smoothing": "smoothing"}
        options = {k: v for k, v in options.items()
                   if not (np.ndim(v) == 0 and v == FIT_DEFAULTS[given[k]])}
    return options


def _objective_summary(objective: list[float]) -> dict:
    steps = np.diff(objective)
    return {"first": objective[0], "last": objective[-1], "steps": len(objective),
            "never_fell": bool(np.all(steps >= -1e-9 * abs(objective[-1])))}


# ----- ReaL ---------------------------------------------------------------------------------
def cmd_real(args) -> int:
    from . import real
    from .labelsets import check_registration, register_label_set

    virtual = None if args.no_virtual else real.parse_ranges(args.virtual_classes)
    if args.register:
        check_registration(_store(args), args.register, "imagenet-val", replace=args.replace)
    data = real.recode_maybe(real.load_real_data(), args.maybe)
    rebuild = real.rebuild_real(data, method=args.method, threshold=args.threshold,
                                virtual_classes=virtual, golden_smoothing=args.golden_smoothing,
                                virtual_fit=args.virtual_fit,
                                **_fit_options(args))
    report = {"config": {**rebuild.config, "maybe": args.maybe},
              "objective": _objective_summary(rebuild.fit.objective),
              "release": real.compare_with_release(rebuild, data),
              "golden": real.golden_precision_recall(rebuild.p_yes >= args.threshold, data),
              "released_golden": real.golden_precision_recall(data.released_scores >= real.DEFAULT_THRESHOLD, data),
              "images_kept": sum(1 for x in rebuild.labels if x),
              "labels": sum(len(x) for x in rebuild.labels)}
    if args.out:
        from harness.store import atomic_write_bytes

        atomic_write_bytes(Path(args.out), json.dumps(rebuild.labels).encode())
        print(f"wrote {args.out} (real.json format)", file=sys.stderr)
    if args.scores:
        q = rebuild.ratings.questions
        _write_csv(pd.DataFrame({"key": q["key"], "label": q["label"], "p_yes": rebuild.p_yes,
                                 "released": data.released_scores}), args.scores)
    if args.register:
        meta = register_label_set(_store(args), args.register, real.label_set_table(rebuild),
                                  dataset="imagenet-val",
                                  description=f"ReaL rebuilt from raw ratings ({args.method})",
                                  provenance={"relabel": report["config"],
                                              "agreement_with_release": report["release"]},
                                  replace=args.replace)
        report["registered"] = meta["name"]
    if args.json:
        _print_json(report)
    else:
        rel, gold = report["release"], report["golden"]
        print(f"method {args.method}: {rebuild.config['iterations']} iterations, "
              f"log-likelihood {rebuild.fit.log_likelihood:.2f} (never fell: {report['objective']['never_fell']})")
        print(f"vs released: {rel['equal_decisions']:.4%} equal decisions at {args.threshold} on "
              f"{rel['questions']:,} questions, Pearson r {rel['pearson_r']:.5f}; "
              f"{rel['rated_images_with_equal_label_sets']:,} of {rel['rated_images']:,} rated images "
              "have identical label sets")
        print(f"vs experts ({gold['golden_questions']} golden questions): precision {gold['precision']:.3f}, "
              f"recall {gold['recall']:.3f} (released: {report['released_golden']['precision']:.3f}, "
              f"{report['released_golden']['recall']:.3f})")
        print(f"{report['images_kept']:,} images keep {report['labels']:,} labels")
    return 0


def cmd_raters(args) -> int:
    from . import real

    table = real.rater_quality(real.load_real_data())
    if args.out:
        _write_csv(table, args.out)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


# ----- generic aggregation ----------------------------------------------------------------
def _kept_labels(questions: pd.DataFrame, keys: list, threshold: float) -> tuple[list, list]:
    """Per key, the labels whose ``p_yes`` reaches the threshold (sorted) and their posteriors."""
    kept = questions[questions["p_yes"] >= threshold].sort_values(["key", "label"])
    grouped = {k: g for k, g in kept.groupby("key", sort=True)}
    labels = [grouped[k]["label"].tolist() if k in grouped else [] for k in keys]
    weights = [grouped[k]["p_yes"].tolist() if k in grouped else [] for k in keys]
    return labels, weights


def _class_ids(scale: tuple, dataset: str) -> list[int]:
    """The dataset's class id of each multi-class answer: the answer itself when every answer is
    an integer, else the answer's position in the dataset's class order (its suite's class names)."""
    from .labelsets import dataset_suite

    suite = dataset_suite(dataset)
    if all(re.fullmatch(r"[0-9]+", s) for s in scale):
        ids = [int(s) for s in scale]
    else:
        index = suite.class_index() if suite.class_index else {}
        unknown = [s for s in scale if s not in index]
        if unknown:
            raise HarnessError(f"multi-class answers {unknown[:5]} are neither integer class ids nor class names "
                               f"of dataset {dataset}; expected ids 0-{suite.num_classes - 1} or its class names "
                               f"({', '.join(list(index)[:5])}, ...)")
        ids = [index[s] for s in scale]
    bad = [s for s, i in zip(scale, ids) if i >= suite.num_classes]
    if bad or len(set(ids)) < len(ids):
        raise HarnessError(f"multi-class answers {list(scale)} must name distinct classes of dataset {dataset} "
                           f"(ids 0-{suite.num_classes - 1}){f'; out of range: {bad[:5]}' if bad else ''}")
    return ids


def cmd_aggregate(args) -> int:
    from .labelsets import check_registration, label_set_frame, register_label_set
    from .proposals import integer_labels, read_answer_table
    from .ratings import YES_NO_MAYBE, Ratings, VirtualRater

    # Every argument and input is checked before anything is fitted or written.
    if args.register and not args.dataset:
        raise HarnessError("--register needs --dataset (the sample space the keys belong to)")
    classes = None
    if args.virtual_classes:
        from .real import parse_ranges

        classes = parse_ranges(args.virtual_classes)
    table = read_answer_table(Path(args.answers), "answer file",
                        ["rater", "key", "answer"] + ([] if args.multiclass else ["label"]))
    if args.scale:
        scale = tuple(s.strip() for s in args.scale.split(","))
    else:
        scale = None if args.multiclass else YES_NO_MAYBE
    ratings = Ratings.from_long(table, scale, label_col=None if args.multiclass else "label",
                                where=f"answers in {args.answers}")
    if args.virtual:
        ref = read_answer_table(Path(args.virtual), "virtual rater file", ["key", "label"])
        reference = dict(zip(ref["key"].str.strip(), integer_labels(ref, args.virtual, "virtual rater file")))
        ratings = ratings.with_virtual(VirtualRater(Path(args.virtual).stem, reference, classes))
    q = ratings.questions
    keys = sorted(q["key"].unique()) if ratings.is_label_questions else q["key"].tolist()
    if args.register:
        check_registration(_store(args), args.register, args.dataset, keys, args.replace)
        class_ids = None if ratings.is_label_questions else _class_ids(ratings.scale, args.dataset)

    fit = ratings.fit(args.aggregator, **_fit_options(args, None if ratings.is_label_questions
                                                      else len(ratings.scale), changed_only=True))
    if ratings.is_label_questions:
        out = q.assign(p_yes=fit.posterior[:, 1])
        labels, weights = _kept_labels(out, keys, args.threshold)
    else:
        out = q.assign(**{f"p_{c}": fit.posterior[:, i] for i, c in enumerate(ratings.scale)})
        out["aggregated"] = np.asarray(ratings.scale, dtype=object)[fit.posterior.argmax(1)]
        if args.register:
            labels = [[class_ids[i]] for i in fit.posterior.argmax(1)]
            weights = [[float(p)] for p in fit.posterior.max(1)]
    print(f"{ratings.n_answers:,} answers, {len(ratings.raters)} raters, {len(q):,} questions; {args.aggregator}: "
          f"{fit.iterations} iterations, converged {fit.converged}, log-likelihood {fit.log_likelihood:.3f}")
    if args.out:
        _write_csv(out, args.out)
    if args.register:
        register_label_set(_store(args), args.register, label_set_frame(keys, labels, weights),
                           dataset=args.dataset, description=f"{args.aggregator} on {args.answers}",
                           provenance={"answers": str(args.answers), "threshold": args.threshold,
                                       "aggregator": args.aggregator, "iterations": fit.iterations},
                           replace=args.replace)
        print(f"registered label set {args.register}")
    return 0


# ----- CIFAR ------------------------------------------------------------------------------
def cmd_cifar10s(args) -> int:
    from . import cifar

    if args.register:
        from .labelsets import check_registration

        check_registration(_store(args), args.register, args.dataset, replace=args.replace)
    ratings, original = cifar.cifar10s_ratings()
    summary, table = cifar.cifar10s_report(ratings, original,
                                           **_fit_options(args, len(cifar.CIFAR10_CLASSES)))
    if args.out:
        _write_csv(table, args.out)
    if args.register:
        from .labelsets import label_set_frame, register_label_set

        frame = label_set_frame(table["key"].tolist(),
                                [[cifar.CIFAR10_CLASSES.index(c)] for c in table["dawid_skene"]],
                                [[p] for p in table["posterior"]])
        register_label_set(_store(args), args.register, frame, dataset=args.dataset,
                           description="CIFAR-10S: multi-class Dawid–Skene", provenance=summary,
                           replace=args.replace)
        summary["registered"] = args.register
    _print_json(summary)
    return 0


def cmd_cifar10h(args) -> int:
    from . import cifar

    if args.register:
        from .labelsets import check_registration

        check_registration(_store(args), args.register, args.dataset, replace=args.replace)
    counts = cifar.cifar10h_counts()
    labels, weights = cifar.label_sets(counts, args.min_share)
    sizes = np.bincount([len(x) for x in labels])
    summary = {"images": len(labels), "min_share": args.min_share,
               "set_sizes": {str(i): int(n) for i, n in enumerate(sizes) if n},
               "mean_labels": float(np.mean([len(x) for x in labels])),
               "mean_annotators": float(counts.sum(1).mean())}
    if args.register:
        from .labelsets import label_set_frame, register_label_set

        keys = [str(i) for i in range(len(labels))]
        register_label_set(_store(args), args.register, label_set_frame(keys, labels, weights),
                           dataset=args.dataset, description=cifar.label_sets_description(args.min_share),
                           provenance=summary, replace=args.replace)
        summary["registered"] = args.register
    if args.soft_out:
        soft = cifar.soft_labels(counts)
        _write_csv(pd.DataFrame(soft, columns=list(cifar.CIFAR10_CLASSES)).assign(
            key=[str(i) for i in range(len(soft))])[["key", *cifar.CIFAR10_CLASSES]], args.soft_out)
    _print_json(summary)
    return 0


# ----- proposals and tasks ----------------------------------------------------------------
def _imagenet_ranked(store, runs: list[str], top_k: int) -> dict[str, dict]:
    from harness.imagenet import val_key

    from .proposals import ranked_labels_from_store
    from .real import val_indices

    out = {}
    for ref in runs:
        ranked = ranked_labels_from_store(store, ref, top_k, "imagenet-val")
        keys = list(ranked)
        out[ref] = {val_key(i): ranked[k] for i, k in zip(val_indices(keys), keys)}
    return out


def _expert_reference() -> dict[str, set]:
    """Expert-positive labels per golden image (the 5 experts' majority), by harness key."""
    from harness.imagenet import val_key

    from . import real

    golden = real.load_golden()
    truth = real.expert_truth(golden)
    ref: dict[str, set] = {}
    for key, label, yes in zip(real.val_indices(golden.questions["key"]), golden.questions["label"], truth):
        ref.setdefault(val_key(int(key)), set())
        if yes:
            ref[val_key(int(key))].add(int(label))
    return {k: v for k, v in ref.items() if v}


def cmd_propose(args) -> int:
    from harness.imagenet import val_key

    from . import proposals as P
    from .real import load_original_labels

    store = _store(args)
    runs = [r for r in args.runs.split(",") if r]
    models = _imagenet_ranked(store, runs, args.top_k)
    original = {val_key(i): int(c) for i, c in enumerate(load_original_labels())} if not args.no_original else None
    rules = {"top_k": args.top_k, "min_models": args.min_models, "add_top1": not args.no_top1,
             "add_original": not args.no_original}
    reference = _expert_reference()
    if args.target_recall:
        chosen, steps = P.select_models(models, reference, args.target_recall, original, **rules)
        print(steps.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        models = {m: models[m] for m in chosen}
    proposals = P.propose(models, original, **rules)
    stats = P.proposal_recall(proposals, reference)
    print(f"{len(proposals):,} images, {stats['mean_proposals_all']:.2f} proposals per image; "
          f"recall {stats['recall']:.4f} of {stats['reference_labels']} expert labels on "
          f"{stats['images']} golden images (models: {', '.join(models)})")
    if args.out:
        from harness.store import atomic_write_bytes

        lines = [json.dumps({"key": k, "labels": v}) for k, v in proposals.items()]
        atomic_write_bytes(Path(args.out), ("\n".join(lines) + "\n").encode())
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _read_proposals(path: str) -> dict[str, list]:
    out = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                item = json.loads(line)
                out[str(item["key"])] = [int(x) for x in item["labels"]]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise HarnessError(f"{path} line {n} is not a proposal ({exc!r})") from None
    return out


def cmd_tasks(args) -> int:
    from .proposals import export_tasks, split_tasks
    from .real import load_class_names

    tasks = split_tasks(_read_proposals(args.proposals), args.max_labels)
    export_tasks(tasks, Path(args.out), list(load_class_names()) if args.names else None)
    print(f"wrote {len(tasks):,} tasks for {tasks['key'].nunique():,} samples to {args.out}")
    return 0


def cmd_import_answers(args) -> int:
    from .labelsets import check_registration, label_set_frame, register_label_set
    from .proposals import read_answers, read_tasks

    tasks = read_tasks(Path(args.tasks))
    keys = sorted(tasks["key"].astype(str).unique())
    base = None
    if args.base:
        if not args.register:
            raise HarnessError("--base needs --register (the name of the corrected label set)")
        _store(args).label_set_meta(args.base)  # refuses an unknown name, listing the known ones
        base = _store(args).sql("SELECT key, labels, weights FROM labels WHERE label_set = ?", [args.base])
    if args.register:
        check_registration(_store(args), args.register, args.dataset,
                           keys if base is None else base["key"], args.replace)
    roster = None
    if args.raters:
        if not Path(args.raters).is_file():
            raise HarnessError(f"rater file {args.raters} does not exist; expected the allowed rater ids, one a line")
        roster = [line.strip() for line in Path(args.raters).read_text().splitlines() if line.strip()]
    ratings = read_answers(Path(args.answers), tasks, roster)
    fit = ratings.fit(args.aggregator, **_fit_options(args, changed_only=True))
    q = ratings.questions.assign(p_yes=fit.posterior[:, 1])
    print(f"{ratings.n_answers:,} answers from {len(ratings.raters)} raters on {len(q):,} questions; "
          f"{args.aggregator}: {fit.iterations} iterations, log-likelihood {fit.log_likelihood:.3f}")
    labels, weights = _kept_labels(q, keys, args.threshold)
    if args.out:
        _write_csv(q, args.out)
    if args.register:
        from harness.data import sha256_file

        store = _store(args)
        provenance = {"answers": str(args.answers), "answers_sha256": sha256_file(Path(args.answers)),
                      "tasks": str(args.tasks), "threshold": args.threshold, "aggregator": args.aggregator,
                      "reviewed_keys": len(keys)}
        frame = label_set_frame(keys, labels, weights)
        description = f"relabel of {args.tasks}"
        if base is not None:
            from .errors import apply_review

            frame = apply_review(base, keys, labels, weights)
            parent = store.label_set_meta(args.base)
            provenance.update(base=args.base, version=int(parent.get("version", 1)) + 1,
                              base_created_at=parent.get("created_at"))
            description = f"{args.base} with {len(keys):,} samples reviewed ({args.tasks})"
            if args.errors:
                ranking = store.label_set_meta(args.errors)
                provenance.update(ranking=args.errors, ranking_raters=ranking.get("raters"),
                                  ranking_aggregator=ranking.get("aggregator"))
        register_label_set(store, args.register, frame, dataset=args.dataset, description=description,
                           provenance=provenance, replace=args.replace)
        print(f"registered label set {args.register} ({sum(1 for x in labels if x):,} samples keep labels)")
    return 0


# ----- oracle -----------------------------------------------------------------------------
def cmd_oracle(args) -> int:
    from . import oracle as O
    from .real import load_class_names, load_original_labels, load_released_real

    original, names = load_original_labels(), load_class_names()
    store = _store(args) if (args.runs or args.labels) else None
    real_lists = O.label_lists_from_store(store, args.labels, len(original)) if args.labels else load_released_real()
    classes = O.oracle_classes(real_lists, original, names)
    ambiguous = O.ambiguous_classes(classes, args.threshold)
    tables = {"oracle_classes.csv": classes, "oracle_ambiguous.csv": ambiguous,
              "oracle_pairs.csv": O.confused_pairs(real_lists, original, ambiguous["class"], names, top=args.pairs),
              "oracle_duplicate_pairs.csv": O.duplicate_pairs(real_lists, original, names, args.min_share)}
    per_class = None
    if args.runs:
        models = {ref: O.top1_from_store(store, ref, len(original)) for ref in args.runs.split(",") if ref}
        per_class, summary = O.models_vs_oracle(models, real_lists, original, classes, args.threshold)
        tables.update({"oracle_models_per_class.csv": per_class, "oracle_models.csv": summary})
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    out = Path(args.out)
    for name, table in tables.items():
        O.write_table(table, out / name)
    O.plot_oracle(classes, per_class, out / "oracle.png", args.threshold)
    print(f"{len(ambiguous)} classes below oracle accuracy {args.threshold:.0%} "
          f"on {args.labels or 'real.json'}; worst:")
    print(ambiguous.head(args.show).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    pairs = tables["oracle_duplicate_pairs.csv"]
    print(f"{len(pairs)} duplicate-class pairs (each takes >= {args.min_share:.0%} of the other's oracle answers); "
          "most mutual:")
    print(pairs.head(args.show).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"tables and oracle.png in {out}")
    return 0


# ----- label errors -----------------------------------------------------------------------
def cmd_errors(args) -> int:
    from . import errors as E
    from .labelsets import dataset_suite

    store = _store(args)
    suite = dataset_suite(args.dataset)
    label_set = args.labels or suite.default_label_set
    if not store.has_label_set(label_set) and label_set in suite.label_sets:
        suite.ensure_label_sets(store, [label_set])
    name = args.name or f"{label_set}-errors"
    kept = store.has_label_set(name) and not args.replace
    if kept and not args.tasks:
        raise HarnessError(f"store {store.root} already holds {name!r}; give --replace to rewrite it or --name")
    runs = [r for r in args.runs.split(",") if r] if args.runs else None
    options = _fit_options(args, suite.num_classes, changed_only=True)
    table, raters = E.find_label_errors(store, args.dataset, label_set, suite.num_classes, runs,
                                        args.aggregator, learn_from=args.learn_from, top_k=args.top_k, **options)
    if kept:  # --tasks from the stored ranking (README: `errors`, then `errors --tasks`), if it is this one
        meta = store.label_set_meta(name)
        stored = store.read_label_table(name, E.ERRORS_TABLE, exclude=["agreeing"]).to_pandas()
        if (meta.get("label_set"), meta.get("raters"), meta.get("aggregator")) != (label_set, raters, args.aggregator) \
                or stored["key"].tolist() != table["key"].tolist():
            raise HarnessError(f"store {store.root} already holds a different ranking {name!r} (other runs, label set "
                               "or options); give --replace to rewrite it or --name")
        print(f"the ranking {name!r} in the store is this one; it is kept", file=sys.stderr)
    else:
        E.store_label_errors(store, name, table, dataset=args.dataset, label_set=label_set, raters=raters,
                             aggregator=args.aggregator, learn_from=args.learn_from)
    if args.out:
        _write_csv(table.assign(agreeing=table["agreeing"].map(" ".join)), args.out)
    if args.tasks:
        from .proposals import export_tasks, split_tasks

        tasks = split_tasks(E.review_proposals(table, args.review), max_labels=8)
        export_tasks(tasks, Path(args.tasks), list(suite.class_index()) if suite.class_index else None)
        print(f"wrote {len(tasks):,} rating tasks for the top {args.review:,} suspects to {args.tasks}; "
              f"import the answers with: import-answers --tasks {args.tasks} --base {label_set} "
              f"--errors {name} --dataset {args.dataset} --register NAME", file=sys.stderr)
    print(f"{len(table):,} samples of {label_set} ranked by {E.ranking_method(suite.num_classes, args.aggregator, args.learn_from)} "
          f"over {len(raters)} runs; {int((table['p_wrong'] >= 0.5).sum()):,} with p_wrong >= 0.5; "
          f"stored as {E.ERRORS_TABLE} (label_set = '{name}')")
    if args.learn_from is None and suite.num_classes > E.DENSE_MAX_CLASSES:
        print(f"note: without a reference, p_wrong is the rater model's posterior, which is not calibrated on "
              f"{suite.num_classes:,} classes (one dissenting run puts it near 1); use the ranking, or give "
              "--learn-from LABELSET (human labels of this dataset) for a calibrated, cross-fitted suspicion "
              "(relabel/README.md)", file=sys.stderr)
    kinds = table.loc[table["kind"] != "none", "kind"].value_counts()
    print("suspects by kind: " + ", ".join(f"{kind} {count:,}" for kind, count in kinds.items()))
    if args.show > 0:
        show = table.head(args.show).drop(columns="agreeing")
        print(show.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


# ----- parser -----------------------------------------------------------------------------
def _fit_args(p, multiclass: bool = False, diagonal: float = 0.0, aggregator: bool = False) -> None:
    if aggregator:
        from .aggregation import list_aggregators

        p.add_argument("--aggregator", choices=list_aggregators(), default="dawid-skene",
                       help="the aggregation model (relabel.aggregation); options it does not take are refused")
    p.add_argument("--iterations", type=int, default=FIT_DEFAULTS["iterations"], help="run exactly N EM iterations")
    p.add_argument("--max-iter", type=int, default=FIT_DEFAULTS["max_iter"])
    p.add_argument("--tol", type=float, default=FIT_DEFAULTS["tol"], help="stop when the log-likelihood rises "
                   "by less than tol × |log-likelihood|")
    p.add_argument("--smoothing", type=float, default=FIT_DEFAULTS["smoothing"], help="Dirichlet pseudo-count "
                   "on every confusion cell of the raters EM learns (dawid-skene)")
    if multiclass:
        p.add_argument("--diagonal-smoothing", type=float, default=diagonal,
                       help="extra pseudo-count on the diagonal (answer = class): with few answers "
                       "per annotator, plain multi-class EM overfits their 10×10 matrices")


def _replace_arg(p) -> None:
    p.add_argument("--replace", action="store_true", help="replace an existing label set of that name "
                   "(refused otherwise)")


def build_parser() -> argparse.ArgumentParser:
    common = common_options(quiet=False)
    parser = argparse.ArgumentParser(prog="python -m relabel", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("real", parents=[common], help="rebuild ReaL from the raw ratings")
    p.add_argument("--method", choices=["golden", "em"], default="golden",
                   help="golden: rater matrices measured on the golden questions; em: all learnt by EM")
    p.add_argument("--threshold", type=float, default=0.8, help="keep labels with posterior >= this")
    p.add_argument("--virtual-classes", default="0-397",
                   help="classes on which the original label acts as a virtual rater")
    p.add_argument("--no-virtual", action="store_true", help="no virtual rater")
    p.add_argument("--maybe", choices=MAYBE_HANDLING, default="maybe",
                   help="the raters' maybe answers: kept as a third answer (the released recipe), counted as "
                        "no or yes, or dropped (benchmarks/results/relabel.md shows what each costs)")
    p.add_argument("--golden-smoothing", type=float, default=1.0, help="pseudo-count per confusion cell")
    p.add_argument("--virtual-fit", choices=["golden", "golden-classes", "em"], default="golden",
                   help="with --method golden: measure the virtual rater on all golden questions, on "
                   "those of its classes, or learn it by EM")
    p.add_argument("--out", help="write the label lists (real.json format)")
    p.add_argument("--scores", help="write the posterior per question (CSV)")
    p.add_argument("--register", metavar="NAME", help="register the label set in the store")
    _replace_arg(p)
    p.add_argument("--json", action="store_true")
    _fit_args(p)

    p = sub.add_parser("raters", parents=[common], help="rater quality on the golden questions")
    p.add_argument("--out", help="CSV file")

    p = sub.add_parser("aggregate", parents=[common], help="aggregate a long CSV of answers")
    p.add_argument("answers", help="CSV with rater,key,label,answer (or rater,key,answer with --multiclass)")
    p.add_argument("--scale", default=None, help="answer names in order, comma-separated (default "
                   "no,maybe,yes; multi-class: the classes, default the answers seen, sorted)")
    p.add_argument("--multiclass", action="store_true", help="questions are samples, answers are classes")
    p.add_argument("--virtual", help="CSV key,label: a reference labelling acting as one more rater")
    p.add_argument("--virtual-classes", help="only on these label classes, e.g. 0-397")
    p.add_argument("--threshold", type=float, default=0.8)
    p.add_argument("--out", help="posteriors CSV")
    p.add_argument("--register", metavar="NAME")
    p.add_argument("--dataset", help="dataset of the sample keys, for --register")
    _replace_arg(p)
    _fit_args(p, multiclass=True, aggregator=True)

    p = sub.add_parser("cifar10s", parents=[common], help="multi-class Dawid–Skene on CIFAR-10S")
    p.add_argument("--out", help="per-image CSV")
    p.add_argument("--register", metavar="NAME")
    p.add_argument("--dataset", default="cifar10-test")
    _replace_arg(p)
    _fit_args(p, multiclass=True, diagonal=2.0)

    p = sub.add_parser("cifar10h", parents=[common], help="soft labels and label sets from CIFAR-10H")
    p.add_argument("--min-share", type=float, default=0.2)
    p.add_argument("--soft-out", help="soft labels CSV")
    p.add_argument("--register", metavar="NAME")
    p.add_argument("--dataset", default="cifar10-test")
    _replace_arg(p)

    p = sub.add_parser("propose", parents=[common], help="candidate labels from stored ImageNet runs")
    p.add_argument("--runs", required=True, help="run ids or names, separated by commas")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--min-models", type=int, default=2)
    p.add_argument("--no-top1", action="store_true", help="do not add each model's top-1")
    p.add_argument("--no-original", action="store_true", help="do not add the original label")
    p.add_argument("--target-recall", type=float, default=None,
                   help="greedily choose the fewest models reaching this recall on the expert labels")
    p.add_argument("--out", help="proposals JSONL (key, labels)")

    p = sub.add_parser("tasks", parents=[common], help="split proposals into rating tasks")
    p.add_argument("proposals", help="proposals JSONL")
    p.add_argument("--max-labels", type=int, default=8)
    p.add_argument("--out", required=True, help=".jsonl or .csv")
    p.add_argument("--names", action="store_true", help="add ImageNet class names")

    p = sub.add_parser("import-answers", parents=[common], help="aggregate raters' answers to tasks")
    p.add_argument("--tasks", required=True)
    p.add_argument("--answers", required=True, help="CSV rater,key,label,answer (no/maybe/yes)")
    p.add_argument("--raters", help="file with the allowed rater ids, one a line")
    p.add_argument("--threshold", type=float, default=0.8)
    p.add_argument("--out", help="posteriors CSV")
    p.add_argument("--register", metavar="NAME")
    p.add_argument("--dataset", default="imagenet-val")
    p.add_argument("--base", metavar="LABELSET", help="register the base label set with the reviewed samples "
                   "replaced (a new version of it) instead of the reviewed samples alone")
    p.add_argument("--errors", metavar="NAME", help="the label-error ranking the tasks came from (provenance)")
    _replace_arg(p)
    _fit_args(p, aggregator=True)

    p = sub.add_parser("oracle", parents=[common], help="ambiguous classes and models against the oracle")
    p.add_argument("--runs", default="", help="stored runs to compare, separated by commas")
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--labels", metavar="NAME", help="an imagenet-val label set from the store (e.g. a rebuilt "
                   "ReaL) instead of the released real.json")
    p.add_argument("--pairs", type=int, default=3, help="confused labels listed per class")
    p.add_argument("--min-share", type=float, default=0.1, help="duplicate-class pairs: each class takes at "
                   "least this share of the other's oracle answers")
    p.add_argument("--show", type=int, default=20)
    p.add_argument("--out", default="relabel-oracle", help="folder for the tables and the plot")
    p = sub.add_parser("errors", parents=[common], help="label errors found by the stored runs as raters")
    p.add_argument("--dataset", required=True, help="dataset of the label set and the runs, e.g. cifar10-test")
    p.add_argument("--labels", help="the label set under test (default: the dataset's original labels)")
    p.add_argument("--runs", help="run names to use as raters, separated by commas (default: every run "
                   "on the dataset, the latest complete one of each name)")
    p.add_argument("--name", help="name of the ranking in the store (default: <label set>-errors)")
    _replace_arg(p)
    p.add_argument("--out", help="the ranking as CSV")
    p.add_argument("--tasks", help="write rating tasks (.jsonl or .csv) for the top --review suspects: the "
                   "given label and the two most probable others")
    p.add_argument("--review", type=int, default=100, help="suspects to turn into tasks")
    p.add_argument("--show", type=int, default=20, help="rows to print")
    p.add_argument("--learn-from", metavar="LABELSET", help="a reference label set of the dataset (e.g. real) to "
                   "learn the suspicion from, cross-fitted: each half of the samples is scored by a model "
                   "fitted on the other half")
    p.add_argument("--top-k", type=int, default=5, help="classes of each run's list that become candidates "
                   "(datasets with more than 100 classes, or with --learn-from)")
    _fit_args(p, multiclass=True, aggregator=True)
    return parser


COMMANDS = {"real": cmd_real, "raters": cmd_raters, "aggregate": cmd_aggregate,
            "cifar10s": cmd_cifar10s, "cifar10h": cmd_cifar10h, "propose": cmd_propose,
            "tasks": cmd_tasks, "import-answers": cmd_import_answers, "oracle": cmd_oracle,
            "errors": cmd_errors}


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), argv, COMMANDS)
