"""``python -m reports``: statistics and leaderboards from the store.

    python -m reports build-store              # label sets, the shipped predictions, timm's tables
    python -m reports cifar-study              # the CIFAR-10 study: leaderboards/cifar-study.md|csv|png
    python -m reports leaderboard [NAME ...]   # regenerate leaderboards/<name>.md|html|png
    python -m reports leaderboard --check      # fail if a committed leaderboard is stale
    python -m reports import-timm [FILE ...]   # timm's four shipped result tables, or any in timm's format
    python -m reports shift-study              # ReaL gains vs ImageNetV2 gains across timm's models
    python -m reports compare A B --label-set real
    python -m reports robustness --run R --shift imagenetv2-matched-frequency   # an own model on timm's line
    python -m reports serve [--port N]         # the local web app over the store (boards, runs, samples)
    python -m reports run-report RUN [--labels L] [--json]   # per-class, confused pairs, ECE, NLL, Brier
    python -m reports classes                  # class names of the store's datasets into the classes table
    python -m reports review-aggregate RANKING --name NEW    # a browser review's answers -> a new label set

--store DIR and --quiet go before or after the command.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.cliargs import common_options, open_store, run_main
from harness.errors import HarnessError
from harness.store import Store

from .spec import LEADERBOARD_DIR, spec_names

_store = open_store


def _folders(args) -> tuple[Path, Path]:
    """(specs folder, output folder): ``--dir`` holds the specs (default: those shipped with realbench);
    outputs go to ``--out``, else to ``--dir`` when given, else to ``leaderboards/`` in the current folder
    (never into the installed package unless it is where you are)."""
    directory = Path(args.dir) if args.dir else LEADERBOARD_DIR
    out = Path(args.out) if args.out else (directory if args.dir else Path.cwd() / "leaderboards")
    if not args.check:
        out.mkdir(parents=True, exist_ok=True)
    return directory, out


def cmd_build_store(args) -> int:
    from .shipped import build_store

    done = build_store(_store(args), quiet=args.quiet)
    for kind, run_ids in done.items():
        for run_id in run_ids:
            print(f"{kind}: {run_id}")
    return 0


def cmd_import_timm(args) -> int:
    from .external import import_timm, import_timm_file

    if args.files:
        for path in args.files:
            print(import_timm_file(_store(args), Path(path), suite=args.suite))
        return 0
    for run_id in import_timm(_store(args)):
        print(run_id)
    return 0


def cmd_leaderboard(args) -> int:
    from .publish import render_leaderboard, write_files

    directory, out = _folders(args)
    names = args.names or spec_names(directory)
    if not names:
        raise HarnessError(f"no leaderboard specs (*.toml) in {directory}")
    store = _store(args)
    stale, failed = [], []
    for name in names:
        try:
            files = render_leaderboard(store, name, directory, left_out=lambda note: None if args.quiet else print(
                f"{name}: {note}", file=sys.stderr), out=out)
        except HarnessError as exc:
            # one leaderboard whose inputs are not in this store must not stop the others
            print(f"{name}: error: {exc}", file=sys.stderr)
            failed.append(name)
            continue
        if args.check:
            stale += [p for p, data in files.items() if not p.is_file() or p.read_bytes() != data]
            continue
        changed = write_files(files)
        if not args.quiet:
            print(f"{name}: {len(changed)} of {len(files)} files changed"
                  + (f" ({', '.join(p.name for p in changed)})" if changed else ""))
    if stale:
        print("stale: " + ", ".join(str(p) for p in stale) + "; run `python -m reports leaderboard`",
              file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(names)} leaderboards failed: {', '.join(failed)}", file=sys.stderr)
        return 2
    return 1 if stale else 0


def label_set_text(store: Store, label_set: str) -> str:
    """``label set NAME (suite S, dataset D)``: the suite whose own labels these are, if any (a relabelled
    set such as ``real-rebuilt`` has none; it labels a dataset that suites run on)."""
    from harness.suites import list_suites

    dataset = store.label_set_meta(label_set).get("dataset")
    suites = sorted({s.alias_of or s.name for s in list_suites() if s.default_label_set == label_set})
    where = (f"suite {', '.join(suites)}, " if suites else "relabelled, ") + f"dataset {dataset}"
    return f"label set {label_set} ({where})"


def cmd_compare(args) -> int:
    from .app.compare import compare_runs

    store = _store(args)
    c = compare_runs(store, args.a, args.b, args.label_set, args.confidence, args.resamples, args.seed)
    test, diff, keys = c.mcnemar, c.difference, c.keys
    conf = f"{round(100 * args.confidence)}%"
    print(f"{label_set_text(store, args.label_set)}, n = {len(keys):,} shared samples")
    for name, wilson in ((args.a, c.wilson[0]), (args.b, c.wilson[1])):
        print(f"  {name}: top-1 {100 * wilson.estimate:.2f}% ({conf} Wilson {100 * wilson.low:.2f}"
              f"-{100 * wilson.high:.2f})")
    print(f"  difference {100 * diff.estimate:+.2f} points ({conf} paired bootstrap {100 * diff.low:+.2f} to "
          f"{100 * diff.high:+.2f}, {args.resamples:,} resamples)")
    print(f"  McNemar ({test.method}): only {args.a} right {test.only_a:,}, only {args.b} right "
          f"{test.only_b:,}, p = {test.pvalue:.3g}")
    return 0


def cmd_cifar_study(args) -> int:
    from .cifar_study import OWN_RUNS, run_study

    directory, out = _folders(args)
    changed, stale = run_study(_store(args), directory, check=args.check,
                               own_runs=() if args.no_runs else OWN_RUNS, quiet=args.quiet, out=out)
    if args.check:
        for path in stale:
            print(f"stale: {path}; run `python -m reports cifar-study`", file=sys.stderr)
        return 1 if stale else 0
    print(f"cifar-study: {len(changed)} files changed" + (f" ({', '.join(p.name for p in changed)})" if changed
                                                          else ""))
    return 0


def cmd_shift_study(args) -> int:
    from .shift_study import describe, gap_study

    for line in describe(gap_study(_store(args))):
        print(line)
    return 0


def cmd_robustness(args) -> int:
    from .robustness import describe, place

    placement = place(_store(args), args.run, args.shift, args.reference_run, args.allow_subset,
                      resamples=args.resamples, seed=args.seed)
    for line in describe(placement):
        print(line)
    return 0


def cmd_serve(args) -> int:
    from .app.server import serve

    serve(_store(args), host=args.host, port=args.port, leaderboards=Path(args.dir) if args.dir else LEADERBOARD_DIR,
          quiet=args.quiet, reviews=args.review, review_top=args.review_top, reviewers_file=args.reviewers)
    return 0


def cmd_classes(args) -> int:
    from .app.classes import ensure_classes

    store = _store(args)
    written = ensure_classes(store, refresh=args.refresh)
    print(f"class names written for {', '.join(written)}" if written else "class names already stored")
    return 0


def cmd_review_aggregate(args) -> int:
    from .app.review import aggregate, open_review

    store = _store(args)
    meta = aggregate(open_review(store, args.ranking, args.review_top), args.name, args.aggregator, args.threshold,
                     replace=args.replace)
    print(f"registered label set {meta['name']} (version {meta['version']}, {meta['reviewed_keys']:,} samples "
          f"reviewed, {meta['answers']:,} answers of {', '.join(meta['reviewers'])}, {args.aggregator})")
    return 0


def cmd_run_report(args) -> int:
    import json

    from .app.classes import ensure_classes
    from .app.runpage import run_summary

    store = _store(args)
    ensure_classes(store)
    summary = run_summary(store, args.run, args.labels)
    if args.json:
        print(json.dumps(summary, indent=2, allow_nan=False))
        return 0
    run = summary["run"]
    print(f"run {run['run_id']} ({run['name']}, suite {run['suite']}, dataset {run['dataset']})")
    for h in summary["headline"]:
        print(f"  top-1 on {h['label_set']}: {100 * h['top1']:.2f}% (95% Wilson {100 * h['low']:.2f}-"
              f"{100 * h['high']:.2f}), n={h['n']:,}")
    print(f"on label set {summary['label_set']} ({summary['n']:,} single-label samples):")
    for name, label in (("ece", "ECE (15 bins)"), ("nll", "NLL"), ("brier", "Brier score")):
        value = summary[name]
        print(f"  {label}: " + (f"{value:.4f}" if value is not None else f"- ({summary['unavailable'][name]})"))
    worst = sorted((c for c in summary["per_class_accuracy"] if c["n"]), key=lambda c: (c["accuracy"], c["class_index"]))
    print("  lowest per-class accuracy: " + "; ".join(
        f"{c['class_index']} {c['name']} {100 * c['accuracy']:.1f}% of {c['n']}" for c in worst[:args.top]))
    print("  most-confused pairs (true -> predicted: samples): " + "; ".join(
        f"{p['true_name'] or p['true']} -> {p['predicted_name'] or p['predicted']}: {p['n']}"
        for p in summary["confused_pairs"][:args.top]))
    return 0


def parser() -> argparse.ArgumentParser:
    common = common_options()
    p = argparse.ArgumentParser(prog="python -m reports", description=__doc__, parents=[common],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("build-store", parents=[common], help="fill the store from the shipped data")
    it = sub.add_parser("import-timm", parents=[common],
                        help="import timm's shipped result tables (ImageNet, ReaL, ImageNetV2, Sketch), or the "
                             "given files in timm's results format")
    it.add_argument("files", nargs="*", help="results-*.csv files (default: the four shipped ones)")
    it.add_argument("--suite", default=None, help="the suite a file measures (default: from timm's file name, "
                                                  "e.g. results-imagenet-a.csv -> imagenet-a)")
    cs = sub.add_parser("cifar-study", parents=[common], help="the CIFAR-10 relabelling study (fills the store "
                        "with the shipped CIFAR files and runs the four CIFAR ResNets where missing)")
    cs.add_argument("--dir", default=None, help="folder of cifar10h.toml (default: realbench's leaderboards/)")
    cs.add_argument("--out", default=None, help="folder the files are written to (default: --dir when given, "
                    "else leaderboards/ in the current folder)")
    cs.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file would change")
    cs.add_argument("--no-runs", action="store_true",
                    help="do not run the CIFAR ResNets; own runs already in the store still join the table")
    sub.add_parser("shift-study", parents=[common], help="do models that gain most on ReaL gain on ImageNetV2? "
                   "(correlations across timm's tables, with intervals)")
    lb = sub.add_parser("leaderboard", parents=[common], help="regenerate leaderboards from the store")
    lb.add_argument("names", nargs="*", metavar="NAME", help="spec names (default: every leaderboards/*.toml)")
    lb.add_argument("--dir", default=None, help="folder of the specs (default: realbench's leaderboards/)")
    lb.add_argument("--out", default=None, help="folder the files are written to (default: --dir when given, "
                    "else leaderboards/ in the current folder)")
    lb.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file would change")
    rb = sub.add_parser("robustness", parents=[common], help="an own model's effective robustness on a shifted "
                        "test set, on the line of timm's published models (full runs only, or --allow-subset)")
    rb.add_argument("--run", required=True, help="the model's run on the shifted test set (id, or name)")
    rb.add_argument("--shift", required=True, help="the shifted suite, e.g. imagenetv2-matched-frequency")
    rb.add_argument("--reference-run", default=None, help="its run on the ImageNet validation set (default: the "
                    "run of the same name there)")
    rb.add_argument("--allow-subset", action="store_true", help="place runs on part of a test set too, marked SUBSET")
    rb.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of the line's fit")
    rb.add_argument("--seed", type=int, default=0)
    cmp = sub.add_parser("compare", parents=[common], help="McNemar and paired bootstrap of two runs on one label set")
    cmp.add_argument("a", help="run id or name")
    cmp.add_argument("b", help="run id or name")
    cmp.add_argument("--label-set", required=True)
    cmp.add_argument("--confidence", type=float, default=0.95)
    cmp.add_argument("--resamples", type=int, default=10_000)
    cmp.add_argument("--seed", type=int, default=0)
    sv = sub.add_parser("serve", parents=[common], help="the local web app over the store: boards, runs, samples")
    sv.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=8008)
    sv.add_argument("--dir", default=None, help="folder of the leaderboard specs (default: realbench's leaderboards/)")
    sv.add_argument("--review", action="append", default=[], metavar="RANKING",
                    help="open the review of a label-error ranking (python -m relabel errors); repeatable")
    sv.add_argument("--review-top", type=int, default=500, help="suspects of each ranking to review (default 500)")
    sv.add_argument("--reviewers", default=None, metavar="FILE", help="reviewers, one a line: name [token]; missing "
                    "tokens are added to the file (default: one reviewer with a new token each start)")
    cl = sub.add_parser("classes", parents=[common], help="store the class names of the store's datasets (table "
                        "classes: dataset, class_index, name, ident)")
    cl.add_argument("--refresh", action="store_true", help="write them again even where stored")
    ra = sub.add_parser("review-aggregate", parents=[common], help="aggregate the answers of a browser review into "
                        "a new label set (what the review page's aggregate button does)")
    ra.add_argument("ranking", help="the label-error ranking reviewed (serve --review RANKING)")
    ra.add_argument("--name", required=True, help="name of the new label set")
    ra.add_argument("--review-top", type=int, default=500, help="as given to serve (default 500)")
    ra.add_argument("--aggregator", default="majority-vote", help="aggregation model (relabel.aggregation)")
    ra.add_argument("--threshold", type=float, default=0.5, help="posterior of yes a label needs (default 0.5)")
    ra.add_argument("--replace", action="store_true", help="replace a label set of that name")
    rr = sub.add_parser("run-report", parents=[common], help="per-class accuracy, most-confused pairs, ECE, NLL and "
                        "Brier of a run (what the app's run page shows)")
    rr.add_argument("run", help="run id or name")
    rr.add_argument("--labels", default=None, help="label set (default: the run's suite's)")
    rr.add_argument("--json", action="store_true", help="everything as JSON")
    rr.add_argument("--top", type=int, default=10, help="classes and pairs printed (default 10)")
    return p


COMMANDS = {"build-store": cmd_build_store, "import-timm": cmd_import_timm, "cifar-study": cmd_cifar_study,
            "shift-study": cmd_shift_study, "leaderboard": cmd_leaderboard, "compare": cmd_compare,
            "robustness": cmd_robustness, "serve": cmd_serve, "classes": cmd_classes, "run-report": cmd_run_report,
            "review-aggregate": cmd_review_aggregate}


def main(argv: list[str] | None = None) -> int:
    return run_main(parser(), argv, COMMANDS)
