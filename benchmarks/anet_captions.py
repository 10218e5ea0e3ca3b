"""Dense-captioning scoring speed: realbench's densevid scorer vs the official densevid_eval, side by side.

The baseline is the official ``evaluate.py`` that MDVC and BMT use (v-iashin/BMT
``evaluation/evaluate.py``, the Python 3 port of ranjaykrishna/densevid_eval
9d4045a); it is not part of this repository, so pass its path::

    .venv/bin/python benchmarks/anet_captions.py --official /path/to/evaluate.py [--repeats 3]

Both scorers run as fresh subprocesses on the same files, alternating, and
their printed averages (percent, 4 decimals) must be identical.  Without
``--official`` only realbench's numbers and times are measured.  Results go to
``benchmarks/results/anet.md``.  The published numbers checked at the end are
MDVC's README (full val_1 / val_2, METEOR) and the MDVC/BMT papers (ground-truth
proposals, mean of val_1 and val_2 over the available videos).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("REALBENCH_MIRROR", str(REPO.parent / "shared" / "data"))

PUBLISHED = {
    # MDVC README: official tool on results_val_*_e30.json against the full val_1 / val_2.
    ("mdvc", "anet-captions-val_1"): {"METEOR": 9.9407},
    ("mdvc", "anet-captions-val_2"): {"METEOR": 10.2478},
    # MDVC and BMT papers (and BMT README): ground-truth proposals, available videos, mean of the splits.
    ("mdvc", "gt-proposals"): {"Bleu_3": 4.52, "Bleu_4": 1.98, "METEOR": 11.07},
    ("bmt", "gt-proposals"): {"Bleu_3": 4.63, "Bleu_4": 1.99, "METEOR": 10.90},
}
SUBMISSIONS = {
    "mdvc": {1: "activitynet/mdvc_results_val_1_e30.json", 2: "activitynet/mdvc_results_val_2_e30.json"},
    "bmt": {1: "activitynet/bmt_captioning_results_val_1_e26.json",
            2: "activitynet/bmt_captioning_results_val_2_e26.json"},
}
METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "Recall", "Precision")


def reference_file(label_set: str, folder: Path) -> Path:
    """The label set as a ground-truth JSON file the official tool can read."""
    from harness.activitynet import formats
    from harness.activitynet.suites import AVAILABLE_LIST, CAPTION_LABEL_SETS, MANIFEST
    from harness.data import resolve_file

    ref = CAPTION_LABEL_SETS[label_set]
    path = resolve_file(MANIFEST, ref.path)
    if not ref.available_only:
        return path
    available = set(resolve_file(MANIFEST, AVAILABLE_LIST).read_text().split())
    data = formats.read_json(path, "ground truth")
    out = folder / f"{label_set}.json"
    out.write_text(json.dumps({k: v for k, v in data.items() if k in available}))
    return out


def run_ours(submission: str, references: list[str]) -> dict:
    """Averages in percent, as the official tool prints them."""
    import numpy as np

    from harness.activitynet import densevid, formats

    def segments(frame):
        return {k: densevid.Segments(g[["start", "end"]].to_numpy(dtype=float), tuple(g["sentence"]))
                for k, g in frame.groupby("key", sort=False)}

    preds, _ = formats.read_caption_submission(submission)
    refs = [segments(formats.read_caption_ground_truth(r)) for r in references]
    result = densevid.evaluate(segments(preds), refs, progress=False)
    return {m: round(100 * float(np.float64(result[m])), 4) for m in METRICS}


def published_scores(submission) -> dict:
    """(model, label set or "gt-proposals") -> averages in percent, scored through a store."""
    from harness.activitynet.cocotext import MeteorSession
    from harness.activitynet.suites import ANET_CAPTIONS
    from harness.store import Store

    store = Store(Path(tempfile.mkdtemp(prefix="anet-bench-store-")))
    percent = lambda result: {m: 100 * result[m] for m in METRICS}
    out = {}
    with MeteorSession() as meteor:
        for model in SUBMISSIONS:
            runs = {split: ANET_CAPTIONS.import_predictions(store, submission(model, split), f"{model}-val_{split}")
                    for split in (1, 2)}
            per_split = ANET_CAPTIONS.score_per_split(
                store, {f"anet-captions-val_{s}-available": run for s, run in runs.items()}, meteor=meteor,
                progress=False)
            out[(model, "gt-proposals")] = percent(per_split)
            for split, run in runs.items():
                full = f"anet-captions-val_{split}"
                out[(model, full)] = percent(ANET_CAPTIONS.score(store, run, full, meteor=meteor, progress=False))
                out[(model, f"{full}-available")] = percent(per_split["splits"][f"{full}-available"])
    return out


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds of the process and the children it waited for (JVMs), stdout."""
    start, cpu = time.perf_counter(), cpu_seconds()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{proc.stderr[-2000:]}")
    return elapsed, cpu_seconds() - cpu, proc.stdout


def parse_official(stdout: str) -> dict:
    block = stdout.split("Average across all tIoUs", 1)[1]
    out = {}
    for line in block.splitlines():
        if line.startswith("| "):
            name, value = line[2:].split(":")
            out[name.strip()] = round(float(value), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, help="path to densevid_eval's evaluate.py (BMT's Python 3 port)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "anet.md")
    parser.add_argument("--run-ours", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_ours:
        print(json.dumps(run_ours(args.run_ours[0], args.run_ours[1:])))
        return

    from harness.data import resolve_file

    tmp = Path(tempfile.mkdtemp(prefix="anet-bench-"))
    sub = lambda model, split: str(resolve_file("activitynet-captions-predictions", SUBMISSIONS[model][split]))
    ours_cmd = lambda s, refs: [sys.executable, __file__, "--run-ours", s, *map(str, refs)]

    # 1. Speed, side by side: one split, the ground-truth-proposal setting MDVC/BMT report.
    speed_sub, speed_ref = sub("mdvc", 1), reference_file("anet-captions-val_1-available", tmp)
    times = {"official": [], "realbench": []}
    cpu = {"official": [], "realbench": []}
    numbers = {}
    for r in range(args.repeats):
        order = ["official", "realbench"] if r % 2 == 0 else ["realbench", "official"]
        for who in order:
            if who == "official" and not args.official:
                continue
            if who == "official":
                cmd = [sys.executable, str(args.official.resolve()), "-s", speed_sub, "-r", str(speed_ref), "-v"]
                elapsed, used, out = timed(cmd)
                numbers[who] = parse_official(out)
            else:
                elapsed, used, out = timed(ours_cmd(speed_sub, [speed_ref]))
                numbers[who] = json.loads(out)
            times[who].append(elapsed)
            cpu[who].append(used)
            print(f"{who:>9}: {elapsed:6.1f} s wall, {used:6.1f} s CPU", file=sys.stderr, flush=True)

    # 2. Every published number, with realbench's library: the runs in a store, the ground-truth-proposal
    # protocol through score_per_split (whose per-split parts fill the available-video rows).
    split_results = published_scores(sub)
    checks = []
    for (model, what), expected in PUBLISHED.items():
        got = split_results[(model, what)]
        for m, value in expected.items():
            decimals = len(str(value).split(".")[1])
            checks.append((model, what, m, value, round(got[m], decimals), round(got[m], decimals) == value))

    lines = ["# ActivityNet benchmarks", "",
             f"Machine: {os.cpu_count()} cores, shared with other jobs (load average "
             f"{os.getloadavg()[0]:.1f} at the end), so wall times swing; CPU seconds (the process and "
             "the JVMs it waited for) are the steadier comparison.", "",
             "## Dense-captioning scoring: realbench vs official densevid_eval", "",
             f"MDVC `results_val_1_e30.json` against val_1 (available videos, 4,483), tIoU 0.3/0.5/0.7/0.9, "
             f"both as fresh processes, alternating, {args.repeats} repeats (median).", ""]
    if times["official"]:
        off, ours = statistics.median(times["official"]), statistics.median(times["realbench"])
        same = numbers["official"] == {m: numbers["realbench"][m] for m in numbers["official"]}
        off_cpu, ours_cpu = statistics.median(cpu["official"]), statistics.median(cpu["realbench"])
        runs = lambda xs: ", ".join(f"{t:.0f}" for t in xs)
        lines += ["| scorer | median wall s | median CPU s | wall runs | CPU runs |", "|---|---|---|---|---|",
                  f"| official densevid_eval | {off:.1f} | {off_cpu:.1f} | {runs(times['official'])} | "
                  f"{runs(cpu['official'])} |",
                  f"| realbench | {ours:.1f} | {ours_cpu:.1f} | {runs(times['realbench'])} | "
                  f"{runs(cpu['realbench'])} |", "",
                  f"Speed-up: **{off / ours:.2f}x** wall, **{off_cpu / ours_cpu:.2f}x** CPU; all printed averages "
                  f"identical to 4 decimals: **{same}**.", "",
                  "| metric | official | realbench |", "|---|---|---|"]
        lines += [f"| {m} | {numbers['official'][m]:.4f} | {numbers['realbench'][m]:.4f} |" for m in numbers["official"]]
    else:
        lines += [f"realbench median: {statistics.median(times['realbench']):.1f} s (no --official given)"]
    lines += ["", "## Published numbers reproduced (percent)", "",
              "| model | protocol | metric | published | realbench | equal |", "|---|---|---|---|---|---|"]
    lines += [f"| {m} | {w} | {k} | {v} | {g} | {'yes' if ok else 'NO'} |" for m, w, k, v, g, ok in checks]
    lines += ["", "## Full-split scores (percent, realbench)", "",
              "| model | label set | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    lines += [f"| {model} | {ls} | " + " | ".join(f"{r[m]:.4f}" for m in METRICS) + " |"
              for (model, ls), r in split_results.items() if ls != "gt-proposals"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
