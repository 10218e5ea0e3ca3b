"""Stored scores: the first and the second `harness score` of an ActivityNet run, each a whole command.

    .venv/bin/python benchmarks/stored_scores.py [--suite anet-captions|anet-detection] [--repeats 3]

The run is MDVC's val_1 submission (`../shared/data/activitynet/mdvc_results_val_1_e30.json`),
imported into a fresh store: as a dense-captioning run (`anet-captions`, scored with densevid_eval
against val_1 and val_2), or its segments as class-agnostic temporal detections (`anet-detection`,
mAP against val_1). Each `python -m harness score --run mdvc` is timed from outside, process
start-up included: the first computes and stores the score, the next ones read it back. The
numbers printed must be the same. Writes a section of benchmarks/results/stored_scores.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("REALBENCH_MIRROR", str(REPO.parent / "shared" / "data"))
MDVC = REPO.parent / "shared" / "data" / "activitynet" / "mdvc_results_val_1_e30.json"


def as_detections(path: Path, out: Path) -> Path:
    """MDVC's segments as a v1.3 detection submission (one class, score 1 / (rank + 1))."""
    results: dict = {}
    for key, entries in json.loads(path.read_text())["results"].items():
        results[key] = [{"label": "event", "score": 1 / (rank + 1), "segment": e["timestamp"]}
                        for rank, e in enumerate(entries)]
    out.write_text(json.dumps({"version": "VERSION 1.3", "external_data": {}, "results": results}))
    return out


def harness(store: Path, *args: str) -> tuple[float, str, float]:
    """(wall seconds, stdout, CPU seconds) of one whole command."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "harness", "--store", str(store), *args], capture_output=True,
                          text=True, cwd=REPO, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, proc.stdout, cpu


def in_process(store: Path, suite_name: str) -> float:
    """Seconds of the stored-score read alone (``scoring.score`` in this process, imports done)."""
    from harness import scoring
    from harness.store import Store
    from harness.suites import get_suite

    s = Store(store)
    run_id = s.resolve_run("mdvc")["run_id"]
    suite = get_suite(suite_name)
    scoring.score(s, suite, run_id)
    t0 = time.perf_counter()
    scoring.score(s, suite, run_id)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=["anet-captions", "anet-detection"], default="anet-captions")
    parser.add_argument("--repeats", type=int, default=3, help="second and later scores timed")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="stored-scores-"))
    store = work / "store"
    source = MDVC if args.suite == "anet-captions" else as_detections(MDVC, work / "mdvc-detections.json")
    harness(store, "import", "--suite", args.suite, "--name", "mdvc", str(source))
    first, printed, first_cpu = harness(store, "score", "--run", "mdvc", "--json")
    again, again_cpu = [], []
    for _ in range(args.repeats):
        seconds, out, cpu = harness(store, "score", "--run", "mdvc", "--json")
        if out != printed:
            raise SystemExit("the stored score differs from the computed one")
        again.append(seconds)
        again_cpu.append(cpu)
    _, _, bare_cpu = harness(store, "suites")  # start-up and imports alone, for the bound
    quick, quick_cpu = statistics.median(again), statistics.median(again_cpu)
    read = in_process(store, args.suite)
    print(f"{args.suite}: first score {first:.2f} s ({first_cpu:.2f} s CPU), stored score {quick:.2f} s "
          f"({quick_cpu:.2f} s CPU, median of {len(again)}), the read alone {read:.3f} s")
    write_results(args.suite, (first, first_cpu), (quick, quick_cpu), len(again), json.loads(printed), read,
                  bare_cpu)


def write_results(suite: str, first: tuple, again: tuple, repeats: int, result: dict, read: float,
                  bare_cpu: float) -> None:
    path = REPO / "benchmarks" / "results" / "stored_scores.md"
    sections: dict[str, list[str]] = {}
    if path.exists():
        current = None
        for line in path.read_text().splitlines():
            if line.startswith("## "):
                current = line[3:].split(" ")[0]
                sections[current] = []
            if current:
                sections[current].append(line)
    headline = (f"METEOR {100 * result['METEOR']:.2f}, CIDEr {100 * result['CIDEr']:.2f}" if "METEOR" in result
                else f"average mAP {100 * result['average_mAP']:.2f}")
    sections[suite] = [
        f"## {suite} ({datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f})",
        "",
        "| `python -m harness score --run mdvc` (whole command, process start-up included) | wall s | CPU s |",
        "|---|---:|---:|",
        f"| first: computed and stored | {first[0]:.2f} | {first[1]:.2f} |",
        f"| second and later: read from the store (median of {repeats}) | {again[0]:.2f} | {again[1]:.2f} |",
        f"| **ratio** | **{first[0] / again[0]:.0f}x** | **{first[1] / again[1]:.0f}x** |",
        f"| the stored-score read alone, in process (`scoring.score`, imports done) | {1000 * read:.1f} ms | |",
        f"| `python -m harness suites` (start-up and imports, no store read), for comparison | | {bare_cpu:.2f} |",
        "",
        f"Same JSON printed every time ({headline}, label set {result['label_set']}).",
        "",
    ]
    header = ["# Stored scores", "", "`.venv/bin/python benchmarks/stored_scores.py [--suite anet-captions|"
              "anet-detection]`: a score is computed once per run, label set, metric version and options, and "
              "read back after that (`harness/scoring.py`).", "",
              "What bounds the second command: reading the stored score takes well under a millisecond; the "
              "rest is Python start-up and imports (pandas, DuckDB, pyarrow), as much CPU as `harness suites` "
              "which reads nothing. On this 2-core machine that is about 1.2 s of CPU, so the goal of under a "
              "second for the whole command is not met until the score path imports less (store.py imports "
              "DuckDB and pyarrow at module level); the wall seconds are inflated by the machine's load.", ""]
    path.write_text("\n".join(header + [line for key in sorted(sections) for line in sections[key]]) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
