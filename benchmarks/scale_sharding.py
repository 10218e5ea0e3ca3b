"""Sharded runs against one process, side by side: same model, images, batch size and threads in total.

    .venv/bin/python benchmarks/scale_sharding.py [--images 96] [--ranks 2] [--repeats 3]

Baseline: ``python -m harness run`` in one process with ``--ranks`` threads (and with one). Against
it: ``torchrun --nproc_per_node RANKS -m harness run`` with one thread per rank. Runs alternate
(one process, one process, sharded, one process, ...) so that machine noise hits all alike; medians of the
inference loop (from run.json; the slowest rank for the sharded run) and of the whole command
(start-up and model loading included) are reported. A last line compares publishing a chunk by
hard link (what the store does, so concurrent ranks never replace each other's chunks) against a
plain rename. Results are appended to benchmarks/results/scale.md.
"""
from __future__ import annotations

import argparse
import datetime
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


def timed_run(command: list[str], threads: int, store: Path) -> tuple[float, float]:
    """(whole command seconds, inference loop seconds) of one harness run into a fresh store."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    subprocess.run(command + ["--store", str(store)], check=True, cwd=REPO, env=env, capture_output=True)
    total = time.perf_counter() - t0
    from harness.store import Store

    [meta] = Store(store).list_runs()
    return total, meta["timings"]["inference_loop_s"]


def publish_times(n_chunks: int, rows: int) -> tuple[float, float]:
    """Median seconds to publish one Parquet chunk by hard link (the store) and by plain rename,
    alternating the two so that neither gets the warm caches."""
    import numpy as np
    import pyarrow as pa

    from harness.store import atomic_write_parquet, publish_new_parquet

    rng = np.random.default_rng(0)
    table = pa.table({"key": [f"k{i}" for i in range(rows)],
                      "top_classes": pa.array(list(rng.integers(0, 1000, (rows, 5), dtype=np.int32)),
                                              pa.list_(pa.int32()))})
    linked, renamed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for part in range(n_chunks):
            t0 = time.perf_counter()
            publish_new_parquet(folder / "link", "predictions", table, part)
            t1 = time.perf_counter()
            atomic_write_parquet(folder / "rename" / f"predictions-{part:05d}.parquet", table)
            t2 = time.perf_counter()
            linked.append(t1 - t0)
            renamed.append(t2 - t1)
    return statistics.median(linked), statistics.median(renamed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    run = ["-m", "harness", "run", "--model", "efficientnet-lite0", "--suite", "real", "--limit", str(args.images),
           "--batch-size", str(args.batch_size), "--workers", "0", "--quiet"]
    single = [sys.executable, *run]
    sharded = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node", str(args.ranks),
               *run]
    setups = {f"one process, {args.ranks} threads": (single, args.ranks),
              "one process, 1 thread": (single, 1),
              f"torchrun, {args.ranks} ranks x 1 thread (gloo)": (sharded, 1)}
    totals: dict[str, list[float]] = {name: [] for name in setups}
    loops: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(args.repeats):
        for name, (command, threads) in setups.items():
            with tempfile.TemporaryDirectory() as tmp:
                total, loop = timed_run(command, threads, Path(tmp))
            totals[name].append(total)
            loops[name].append(loop)
    linked, renamed = publish_times(60, 4096)

    med = statistics.median
    n = args.images
    load = os.getloadavg()[0]
    lines = [
        f"## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC — {platform.machine()}, "
        f"{os.cpu_count()} cores (load average {load:.1f} at the end), EfficientNet-Lite0 on the CPU, {n} images, "
        f"batch {args.batch_size}, {args.repeats} repeats (medians)",
        "",
        "| | inference loop s | images/s | whole command s | loop speed-up vs the first row |",
        "|---|---|---|---|---|",
        *(f"| {name} | {med(loops[name]):.2f} | {n / med(loops[name]):.1f} | {med(totals[name]):.1f} | "
          f"{med(next(iter(loops.values()))) / med(loops[name]):.2f} |" for name in setups),
        "",
        f"Publishing a chunk of 4,096 rows (median of 60, alternating): hard link {linked * 1000:.1f} ms, "
        f"rename {renamed * 1000:.1f} ms (ratio {linked / renamed:.2f}).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = REPO / "benchmarks" / "results" / "scale.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    header = "" if out.exists() else "# Sharded runs vs one process (CPU)\n\n"
    with open(out, "a") as f:
        f.write(header + text + "\n")


if __name__ == "__main__":
    main()
