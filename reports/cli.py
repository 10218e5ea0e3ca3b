"""``python -m reports``: statistics and leaderboards from the store.

    python -m reports build-store              # label sets, the shipped predictions, timm's tables
    python -m reports cifar-study              # the CIFAR-10 study: leaderboards/cifar-study.md|csv|png
    python -m reports leaderboard [NAME ...]   # regenerate leaderboards/<name>.md|html|png
    python -m reports leaderboard --check      # fail if a committed leaderboard is stale
    python -m reports import-timm [FILE ...]   # timm's four shipped result tables, or any in timm's format
    python -m reports shift-study              # ReaL gains vs ImageNetV2 gains across timm's models
    python -m reports compare A B --label-set real
    python -m reports robustness --run R --shift imagenetv2-matched-frequency   # an own model on timm's line

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
    from harness.score import per_sample

    from . import stats

    store = _store(args)
    runs = [store.resolve_run(ref) for ref in (args.a, args.b)]
    series = [per_sample(store, m["run_id"], args.label_set).set_index("key")["correct_top1"].astype(bool)
              for m in runs]
    keys = series[0].index.intersection(series[1].index).sort_values()
    if keys.empty:
        raise HarnessError(f"runs {args.a} and {args.b} share no sample labelled by {args.label_set}")
    a, b = (s.loc[keys].to_numpy() for s in series)
    test = stats.mcnemar_test(a, b)
    diff = stats.paired_bootstrap_difference(a, b, args.confidence, args.resamples, args.seed)
    conf = f"{round(100 * args.confidence)}%"
    print(f"{label_set_text(store, args.label_set)}, n = {len(keys):,} shared samples")
    for name, correct in ((args.a, a), (args.b, b)):
        wilson = stats.accuracy_wilson(correct, args.confidence)
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
    return p


COMMANDS = {"build-store": cmd_build_store, "import-timm": cmd_import_timm, "cifar-study": cmd_cifar_study,
            "shift-study": cmd_shift_study, "leaderboard": cmd_leaderboard, "compare": cmd_compare,
            "robustness": cmd_robustness}


def main(argv: list[str] | None = None) -> int:
    return run_main(parser(), argv, COMMANDS)
