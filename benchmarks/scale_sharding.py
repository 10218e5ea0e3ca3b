"""Sharded runs against one process, side by side: same model, images, batch size and threads in total.

    .venv/bin/python benchmarks/scale_sharding.py [--images 96] [--ranks 2] [--repeats 3]

Baseline: ``python -m harness run`` in one process with ``--ranks`` threads. Against it:
``torchrun --nproc_per_node RANKS -m harness run`` with one thread per rank. Runs alternate
(one process, sharded, one process, ...) so that machine noise hits both alike; medians of the
inference loop (from run.json; the slowest rank for the sharded run) and of the whole command
(start-up and model loading included) are reported. A second table compares publishing a chunk
by hard link (what the store does, so concurrent ranks never replace each other's chunks) against
a plain rename. Results are appended to benchmarks/results/scale.md.
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


def timed_run(command: list[str], threads: int, store: Path) -> tuple[float, float]:
    """(whole command seconds, inference loop seconds) of one harness run into a fresh store."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    subprocess.run(command + ["--store", str(store)], check=True, cwd=REPO, env=env, capture_output=True)
    total = time.perf_counter() - t0
    [meta] = [json.loads(p.read_text()) for p in store.glob("runs/run_id=*/run.json")]
    return total, meta["timings"]["inference_loop_s"]


def publish_times(n_chunks: int, rows: int) -> tuple[float, float]:
    """Seconds to publish ``n_chunks`` Parquet chunks by hard link (the store) and by plain rename."""
    import numpy as np
    import pyarrow as pa

    from harness.store import atomic_write_parquet, publish_new_parquet

    rng = np.random.default_rng(0)
    table = pa.table({"key": [f"k{i}" for i in range(rows)],
                      "top_classes": pa.array(list(rng.integers(0, 1000, (rows, 5), dtype=np.int32)),
                                              pa.list_(pa.int32()))})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        for part in range(n_chunks):
            publish_new_parquet(folder / "link", "predictions", table, part)
        linked = time.perf_counter() - t0
        t0 = time.perf_counter()
        for part in range(n_chunks):
            atomic_write_parquet(folder / "rename" / f"predictions-{part:05d}.parquet", table)
        renamed = time.perf_counter() - t0
    return linked, renamed


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
    one_total, one_loop, many_total, many_loop = [], [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            total, loop = timed_run(single, args.ranks, Path(a))
            one_total.append(total)
            one_loop.append(loop)
            total, loop = timed_run(sharded, 1, Path(b))
            many_total.append(total)
            many_loop.append(loop)
    linked, renamed = zip(*(publish_times(50, 4096) for _ in range(args.repeats)))

    med = statistics.median
    n = args.images
    load = os.getloadavg()[0]
    lines = [
        f"## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC — {platform.machine()}, "
        f"{os.cpu_count()} cores (load average {load:.1f} at the end), EfficientNet-Lite0 on the CPU, {n} images, "
        f"batch {args.batch_size}, {args.repeats} repeats (medians)",
        "",
        "| | inference loop s | images/s | whole command s | loop speed-up vs one process |",
        "|---|---|---|---|---|",
        f"| one process, {args.ranks} threads | {med(one_loop):.2f} | {n / med(one_loop):.1f} | "
        f"{med(one_total):.1f} | 1.00 |",
        f"| torchrun, {args.ranks} ranks x 1 thread (gloo) | {med(many_loop):.2f} | {n / med(many_loop):.1f} | "
        f"{med(many_total):.1f} | {med(one_loop) / med(many_loop):.2f} |",
        "",
        f"Publishing 50 chunks of 4,096 rows: hard link {med(linked) * 1000:.0f} ms, rename "
        f"{med(renamed) * 1000:.0f} ms (ratio {med(linked) / med(renamed):.2f}).",
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
