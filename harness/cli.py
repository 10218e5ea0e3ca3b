"""``python -m harness``: run models, import predictions, score, ask with SQL, manage data."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import runscmd
from .cliargs import common_options, given_options, open_store, run_main
from .errors import HarnessError
from .inference import DECODERS, INTERPOLATIONS, PRECISIONS
from .resultsfile import check_results_file, results_row, write_results_file
from .runoptions import RUN_NUMBERS, check_run_options

_store = open_store


def cmd_models(args) -> int:
    from .models import list_models

    print(f"{'alias':<20} {'timm model':<42} description")
    for spec in list_models():
        print(f"{spec.alias:<20} {spec.timm_name:<42} {spec.description}")
    print("\nAny timm model name (arch or arch.tag) works as well; weights come from the timm hub "
          "when online, or from --checkpoint FILE.")
    return 0


def cmd_suites(args) -> int:
    from .suites import list_suites

    for suite in list_suites():  # declarations: no suite module is imported
        print(f"{suite.name:<28} {suite.dataset:<28} {suite.description}")
    return 0


# `run` options a suite may take, by argparse dest; each suite's contract says which it does take.
_RUN_OPTIONS = ("checkpoint", "batch_size", "workers", "device", "topk", "save_logits", "limit", "name", "labels",
                "fresh", "resume", "chunk_images", "img_size", "crop_pct", "interpolation", "precision", "amp",
                "channels_last", "decode")


def cmd_run(args) -> int:
    from .bulk import read_model_requests
    from .suites import get_suite

    check_run_options(**{name: getattr(args, name) for name in RUN_NUMBERS})

    suite = get_suite(args.suite)
    suite = suite.configure(args.data_dir, **({"classes": args.classes} if args.classes else {}))
    # Every name and checkpoint is checked before the store is opened or torch imported.
    requests = read_model_requests(args.model, args.models_file, args.checkpoint,
                                   registry=suite.runner == "classification")
    if args.results_file:
        check_results_file(args.results_file)
    inference = inference_options(args)
    if inference.precision == "fp16":  # refused on the CPU now, not as a failed run after the model has loaded
        from .inference import pick_device

        inference.precision_on(pick_device(args.device))
    store = _store(args)
    if args.resume and len(requests) > 1:
        raise HarnessError("--resume RUN_ID continues one run; give exactly one model")
    if args.name and len(requests) > 1:
        raise HarnessError("--name names one run; with several models each run is named after its model")
    given = given_options(args, build_parser().parse_args(["run", "--suite", suite.name]), _RUN_OPTIONS,
                          {"labels": "label_set"})
    if given.pop("amp", False):
        given["precision"] = "fp16"
    suite.check_options("run", given)
    if args.results_file and suite.runner != "classification":
        raise HarnessError(f"--results-file writes timm's classification columns; suite {suite.name} is a "
                           f"{suite.task} suite")
    options = dict(data_dir=args.data_dir, device=args.device, limit=args.limit, fresh=args.fresh, name=args.name,
                   quiet=args.quiet, resume=args.resume)
    if suite.runner == "detection":
        if args.labels:
            check_label_sets(suite, store, [args.labels])
        options.update(batch_size=args.batch_size or 2, chunk_images=args.chunk_images or 64, label_set=args.labels)
    else:
        options.update(batch_size=args.batch_size or 64, workers=args.workers, topk=args.topk,
                       save_logits=args.save_logits, chunk_images=args.chunk_images or 4096, inference=inference)
    return _run_models(args, suite, store, requests, options)


def inference_options(args):
    """The run flags of :mod:`harness.inference` as its options (checked there)."""
    from .inference import InferenceOptions

    if args.amp and args.precision not in (None, "fp16"):
        raise HarnessError(f"--amp is --precision fp16; it cannot be combined with --precision {args.precision}")
    return InferenceOptions(img_size=args.img_size, crop_pct=args.crop_pct, interpolation=args.interpolation,
                            precision="fp16" if args.amp else args.precision, channels_last=args.channels_last,
                            decode=args.decode)


def _run_models(args, suite, store, requests, options: dict) -> int:
    """Run the models one after another through the run engine (under torchrun every rank runs each)."""
    from . import distributed
    from .bulk import run_bulk
    from .distributed import describe_error

    shard = distributed.from_environment()
    label_sets = [suite.default_label_set] + [n for n in suite.label_sets if n != suite.default_label_set]

    unscored = []
    rows = []

    def report(result) -> None:
        if not shard.is_leader:
            return
        if result.status == "failed":
            print(f"error: {result.request.model}: {result.error}", file=sys.stderr)
            return
        how = "already complete" if result.status == "skipped" else "stored"
        try:
            if suite.task == "detection":
                print(f"{how} as run {result.run_id} in {store.root}")
                _print_scores(suite, store, result.run_id, [None])
                return
            scores = [suite.score(store, result.run_id, label_set) for label_set in label_sets]
            for score in scores:
                print(suite.describe(score))
            rows.append(results_row(store.run_meta(result.run_id), scores))
        except Exception as exc:  # noqa: BLE001 - the run is stored; the next model must still run
            unscored.append(result.run_id)
            print(f"error: {result.request.model}: run {result.run_id} is stored but could not be scored: "
                  f"{describe_error(exc)}", file=sys.stderr)
        unreadable = f", {result.n_errors:,} unreadable (stored as error rows)" if result.n_errors else ""
        print(f"{how} as run {result.run_id} in {store.root}: {result.n_images:,} images{unreadable}")

    try:
        results = run_bulk(store, suite, requests, shard, on_result=report, **options)
    finally:
        distributed.shutdown(shard)
    if len(results) > 1 and shard.is_leader:
        counts = {s: sum(r.status == s for r in results) for s in ("complete", "skipped", "failed")}
        print(f"{len(results)} models: {counts['complete']} complete, {counts['skipped']} skipped (complete "
              f"before), {counts['failed']} failed" + "".join(
                  f"\n  failed: {r.request.model}: {r.error}" for r in results if r.status == "failed"))
    if args.results_file and shard.is_leader and rows:
        write_results_file(Path(args.results_file), rows)
        print(f"results of {len(rows)} models written to {args.results_file}")
    failed = unscored or any(r.status == "failed" for r in results)
    # Under torchrun a failed model is a recorded outcome, not a crash: exiting non-zero would make torchrun
    # restart the whole group (--max-restarts), which cannot mend bad weights.
    return 2 if failed and not shard.sharded else 0


def _print_scores(suite, store, run_id, label_sets) -> None:
    from . import scoring

    for label_set in label_sets:
        print(suite.describe(scoring.score(store, suite, run_id, label_set)))


def cmd_import(args) -> int:
    from .identity import stored_import
    from .suites import get_suite

    suite = get_suite(args.suite)
    options = {k: v for k, v in (("label_set", args.labels), ("drop_unknown_images", args.drop_unknown_images)) if v}
    suite.check_options("import", options)
    store = _store(args)
    with store.import_lock(), store.rollback_on_error():  # one sha256, one run; a failed import leaves nothing
        existing = stored_import(store, suite.dataset, args.file, say=print)
        suite.ensure_label_sets(store)
        run_id = existing or suite.import_predictions(store, args.file, args.name or Path(args.file).stem, **options)
    if not existing:
        print(f"imported {args.file} as run {run_id} ({suite.name})")
    report = suite.import_report(store, run_id)
    if report:
        print(report)
    return 0


def cmd_import_labels(args) -> int:
    from .suites import get_suite

    from .removal import remove_label_set, restore

    suite = get_suite(args.suite)
    store = _store(args)
    aside = None
    if store.has_label_set(args.name) and not args.replace:  # a label set is a fact: never replaced unasked
        from .data import sha256_file

        held = store.label_set_meta(args.name)
        if held.get("dataset") == suite.dataset and held.get("source_sha256") == sha256_file(args.file):
            print(f"label set {args.name} already holds {args.file} (same sha256); nothing to do")
            return 0
        raise HarnessError(f"label set name {args.name!r} is taken by a label set of dataset {held.get('dataset')!r} "
                           f"in store {store.root} (from {held.get('source_file') or 'elsewhere'}); give another "
                           "--name, or --replace to replace it (the old one is moved aside under removed/)")
    if args.replace and store.has_label_set(args.name):
        aside = remove_label_set(store, args.name)  # kept under removed/, put back if the import fails
    try:
        name = suite.import_ground_truth(store, args.file, args.name)
    except BaseException:
        if aside is not None:
            restore(store, aside)
        raise
    if aside is not None:
        print(f"the label set {args.name} it replaces was moved to {aside} (undo: python -m harness rm --undo "
              f"{aside})")
    print(f"registered {args.file} as label set {name} ({suite.name})")
    return 0


def _score_options(args) -> dict:
    return {k: v for k, v in (("max_dets", args.max_dets), ("iou_types", args.iou_type)) if v}


def cmd_score(args) -> int:
    from . import scoring
    from .suites import get_suite

    store = _store(args)
    if args.per_split:
        return _score_per_split(args, store)
    run = runscmd.resolve(store, args.run, args.labels or (), args.suite, args.dataset)
    suite = get_suite(run["suite"])
    options = _score_options(args)
    suite.check_options("score", options)
    check_label_sets(suite, store, args.labels or [])
    for label_set in args.labels or [None]:
        result = scoring.score(store, suite, run["run_id"], label_set, recompute=args.recompute, **options)
        print(json.dumps(result, default=str) if args.json else suite.describe(result))
    return 0


def check_label_sets(suite, store, names: list[str]) -> None:
    """Refuse a label set neither the suite ships nor the store holds, naming the closest ones."""
    from .errors import did_you_mean

    known = list(dict.fromkeys([*suite.label_sets, *(m["name"] for m in store.list_label_sets())]))
    for name in names:
        if name not in known:
            raise HarnessError(f"no label set {name!r} for suite {suite.name}{did_you_mean(name, known)} (known: "
                               f"{', '.join(known) or 'none'})")


def _score_per_split(args, store) -> int:
    """The ground-truth-proposal protocol: each label set scored on its own (by its own run), then averaged."""
    from .suites import get_suite

    runs = [runscmd.resolve(store, name, args.labels or (), args.suite, args.dataset) for name in args.run.split(",")]
    suite = get_suite(runs[0]["suite"])
    options = _score_options(args)
    suite.check_options("score-per-split", options)
    label_sets = args.labels or suite.default_label_set.split("+")
    if len(runs) not in (1, len(label_sets)):
        raise HarnessError(f"--per-split pairs runs with label sets: {len(runs)} runs for {len(label_sets)} label "
                           f"sets ({', '.join(label_sets)}); give one run, or one per label set in that order")
    from . import scoring

    pairs = {ls: run["run_id"] for ls, run in zip(label_sets, runs * len(label_sets))}
    result = scoring.score_per_split(store, suite, pairs, recompute=args.recompute)
    print(json.dumps(result, default=str) if args.json else suite.describe(result))
    return 0


def cmd_sql(args) -> int:
    from .tables import format_frame

    store = _store(args)
    query = args.query if args.query != "-" else sys.stdin.read()
    print(format_frame(store.sql(query, write=args.write), args.format, args.max_rows))
    return 0


def cmd_catalog(args) -> int:
    store = _store(args)
    path = store.refresh_catalog()
    print(f"catalog rebuilt from the Parquet files: {path} (open with: duckdb {path})")
    return 0


def cmd_check(args) -> int:
    store = _store(args)
    findings = store.check(repair=args.repair)
    for item in findings:
        action = f" -> {item['action']}" if item.get("action") else ""
        print(f"{item['what']}: {item['problem']}{action}")
    unrepaired = [f for f in findings if not f.get("action")]
    print(f"store {store.root}: " + (f"{len(findings)} problems found" if findings else "no problems found")
          + (f", {len(findings) - len(unrepaired)} repaired; catalog rebuilt" if args.repair else
             ("; python -m harness check --repair moves damage aside (it deletes no data)" if findings else "")))
    return 1 if unrepaired else 0


def cmd_data(args) -> int:
    from . import data

    names = args.datasets or data.manifest_names()
    if args.action == "list":
        for name in names:
            m = data.load_manifest(name)
            if not m.files:
                for a in m.archives:
                    print(f"{name:<28} {a.images:>6} images in {(a.size or 0) / 1e6:>9.1f} MB, not fetched: download "
                          f"{a.url}, extract, --data-dir .../{a.folder}  {m.license}")
                continue
            size = sum(f.size for f in m.files)
            print(f"{name:<28} {len(m.files):>6} files {size / 1e6:>9.1f} MB  {m.license}  ({m.source})")
        return 0
    if args.action == "fetch":
        for name in names:
            root = data.resolve(name, progress=not args.quiet)
            print(f"{name}: ready under {root}")
        return 0
    bad = 0
    names = [n for n in names if data.load_manifest(n).files or args.datasets]
    for name in names:
        ok, problems = data.verify(name)
        print(f"{name}: {ok} files verified" + (f", {len(problems)} problems" if problems else ""))
        for p in problems[:10]:
            print(f"  {p}")
        bad += len(problems)
    return 1 if bad else 0


def _max_dets(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, e.g. 1,10,100") \
            from None


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__, parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("models", parents=[common], help="list model aliases (imports nothing heavy)")
    sub.add_parser("suites", parents=[common], help="list suites")

    p = sub.add_parser("run", parents=[common], help="run models on a suite and store every prediction")
    p.add_argument("--model", default=None, help="alias or timm name; several separated by commas")
    p.add_argument("--models-file", default=None,
                   help="a file with one model per line (optionally followed by its checkpoint); '#' comments")
    p.add_argument("--suite", required=True)
    p.add_argument("--data-dir", default=None, help="image folder (default: the suite's shipped images)")
    p.add_argument("--checkpoint", default=None, help="weights file (state_dict) instead of downloading")
    p.add_argument("--classes", default=None, metavar="FILE",
                   help="suite image-folder: class names one per line, or 'folder,class' lines onto ImageNet classes")
    p.add_argument("--batch-size", type=int, default=None, help="default: 64; detection suites: 2")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: min(4, cores))")
    p.add_argument("--device", default=None, help="cuda, cuda:1 or cpu (default: cuda if available)")
    p.add_argument("--topk", type=int, default=5, help="classes and scores stored per image")
    p.add_argument("--save-logits", action="store_true", help="also store the full logits")
    p.add_argument("--limit", type=int, default=None, help="only the first N images (by key)")
    p.add_argument("--name", default=None, help="run name (default: the model name)")
    p.add_argument("--labels", default=None,
                   help="detection suites: the label set the images belong to (default: found by file name)")
    p.add_argument("--fresh", action="store_true",
                   help="start a new run even when a run of the same configuration is complete or unfinished")
    p.add_argument("--resume", default=None, metavar="RUN_ID",
                   help="continue this unfinished run (by default the newest unfinished run of the same "
                        "configuration is resumed and a complete one is skipped)")
    p.add_argument("--chunk-images", type=int, default=None,
                   help="images per stored Parquet chunk (default: 4096; detection suites: 64)")
    g = p.add_argument_group("how the model runs (timm validate.py's flags; each is part of the run's configuration)")
    g.add_argument("--img-size", type=int, default=None, help="input side in pixels (default: the model's)")
    g.add_argument("--crop-pct", type=float, default=None, help="center crop fraction (default: the model's)")
    g.add_argument("--interpolation", default=None, choices=INTERPOLATIONS, help="resize interpolation "
                   "(default: the model's)")
    g.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="fp16 and bf16 are mixed precision (autocast); default: fp16 on CUDA, fp32 on the CPU "
                        "(fp16 is refused on the CPU)")
    g.add_argument("--amp", action="store_true", help="timm's name for --precision fp16 (CUDA)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="channels_last memory format (default: on; on the CPU the fp32 model is also traced and "
                        "frozen, batch norm folded)")
    g.add_argument("--decode", default="pil", choices=DECODERS,
                   help="JPEG decoding: pil in the loader's workers (default), or device: torchvision's decode_jpeg "
                        "on the run's device (nvjpeg on CUDA), PIL for other formats")
    g.add_argument("--results-file", default=None, metavar="FILE.csv|FILE.json",
                   help="also write one row per model in timm validate.py's columns (model, top1, top1_err, top5, "
                        "top5_err, param_count, img_size, crop_pct, interpolation) plus n, label_set and top-1/5 "
                        "per label set")

    p = sub.add_parser("import", parents=[common], help="import predictions made elsewhere as a run")
    p.add_argument("file")
    p.add_argument("--suite", required=True)
    p.add_argument("--name", default=None, help="run name (default: the file name)")
    p.add_argument("--labels", default=None,
                   help="label set the predictions refer to (detection suites: the ground truth to check ids against)")
    p.add_argument("--drop-unknown-images", action="store_true",
                   help="detection suites: skip detections on images outside the label set instead of refusing")

    p = sub.add_parser("import-labels", parents=[common],
                       help="register a ground-truth file (COCO/LVIS annotations, ActivityNet v1.3) as a label set")
    p.add_argument("file")
    p.add_argument("--suite", required=True)
    p.add_argument("--name", required=True, help="label set name")
    p.add_argument("--replace", action="store_true", help="replace a label set of that name, also one of another "
                   "dataset (the old one is moved under removed/ in the store)")

    p = sub.add_parser("score", parents=[common], help="score a stored run (no model needed)")
    p.add_argument("--run", required=True, help="run id, or the name of the latest complete run so named "
                   "(refused when the name has runs on several datasets); with --per-split, one run per label "
                   "set may be given as RUN1,RUN2")
    p.add_argument("--labels", action="append", help="label set (repeatable; default: the suite's); a run name "
                   "resolves on its dataset")
    p.add_argument("--dataset", default=None, help="the dataset a run name resolves on (default: that of --labels)")
    p.add_argument("--suite", default=None, help="a run name resolves on this suite's dataset")
    p.add_argument("--per-split", action="store_true",
                   help="anet-captions: score against each label set separately (default val_1 and val_2) and "
                        "average, the ground-truth-proposal protocol (harness/activitynet/README.md)")
    p.add_argument("--json", action="store_true", help="the whole result as one JSON object per label set")
    p.add_argument("--recompute", action="store_true",
                   help="compute again and replace the stored score (COCO, LVIS and ActivityNet scores are kept "
                        "per run, label set, metric version and options, and returned from the store)")
    p.add_argument("--max-dets", type=_max_dets, default=None, metavar="N,N,...",
                   help="COCO: detections per image counted, e.g. 1,10,100 (the official default; AP is read at "
                        "the largest, see harness/detection/README.md)")
    p.add_argument("--iou-type", action="append", choices=["bbox", "segm", "keypoints"],
                   help="COCO/LVIS: score only this IoU type (repeatable; default: every type the run has)")

    p = sub.add_parser("sql", parents=[common], help="query the catalog with SQL")
    p.add_argument("query", help="SQL text, or - to read it from standard input")
    p.add_argument("--format", choices=["table", "csv", "json", "markdown"], default="table")
    p.add_argument("--max-rows", type=int, default=100)
    p.add_argument("--write", action="store_true",
                   help="allow statements that write (COPY TO, CREATE, ATTACH, INSTALL...); by default only "
                        "reading statements run")

    runscmd.add_parsers(sub, common)
    sub.add_parser("catalog", parents=[common], help="rebuild catalog.duckdb from the Parquet files")
    p = sub.add_parser("check", parents=[common],
                       help="verify the store (Parquet footers, row counts, unique keys, label sets, temporary files)")
    p.add_argument("--repair", action="store_true",
                   help="rebuild the catalog, remove what dead writers left, move damaged runs and label sets "
                        "under damaged/ (never deletes data)")

    p = sub.add_parser("data", parents=[common], help="list, fetch or verify the datasets in data_manifests/")
    p.add_argument("action", choices=["list", "fetch", "verify"])
    p.add_argument("datasets", nargs="*")
    return parser


COMMANDS = {"models": cmd_models, "suites": cmd_suites, "run": cmd_run, "import": cmd_import,
            "import-labels": cmd_import_labels,
            "score": cmd_score, "sql": cmd_sql, "runs": runscmd.cmd_runs, "rm": runscmd.cmd_rm, "catalog": cmd_catalog,
            "check": cmd_check,
            "data": cmd_data}


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), argv, COMMANDS, interrupted="interrupted; run the same command again to resume")


if __name__ == "__main__":
    sys.exit(main())
