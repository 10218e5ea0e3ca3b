"""Harness throughput on the CPU against a bare PyTorch loop: same model, preprocessing and images.

    .venv/bin/python benchmarks/harness_throughput.py [--images 300] [--repeats 3]

The bare loop is what a researcher writes first: timm's eval transform in DataLoader workers
(min(4, cores)), the eager NCHW model, top-5 kept in memory. The harness runs as the README's
main command does, with its defaults (channels_last, TorchScript-frozen graph on the CPU, half the
cores as decoding workers, uint8 hand-over) and also stores every row (Parquet chunks, run
metadata, catalog). Runs alternate (bare, harness, bare, ...) so machine noise hits both alike;
medians are reported, with the load average before and after, and the top-1 of both sides is
compared image by image. Results are appended to benchmarks/results/harness.md.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("REALBENCH_MIRROR", str(REPO.parent / "shared" / "data"))


def bare_loop(model, transform, files, batch_size, workers) -> tuple[float, list[int]]:
    import torch
    from PIL import Image

    class Files(torch.utils.data.Dataset):
        def __len__(self):
            return len(files)

        def __getitem__(self, i):
            with Image.open(files[i]) as img:
                return transform(img.convert("RGB"))

    loader = torch.utils.data.DataLoader(Files(), batch_size=batch_size, num_workers=workers,
                                         prefetch_factor=4 if workers else None)
    results = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for x in loader:
            scores, classes = model(x).softmax(-1).topk(5)
            results.append((classes.numpy(), scores.numpy()))
    elapsed = time.perf_counter() - t0
    assert sum(len(c) for c, _ in results) == len(files)
    return elapsed, [int(c[0]) for classes, _ in results for c in classes]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=65)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="the bare loop's")
    args = parser.parse_args()

    from timm.data import create_transform

    from harness.data import resolve
    from harness.inference import default_workers
    from harness.models import load_model
    from harness.runner import run_classification
    from harness.store import Store
    from harness.suites import get_suite

    folder = resolve("imagenet-val-subset") / "imagenet-val-subset"
    files = sorted(folder.iterdir())[: args.images]
    loaded = load_model("efficientnet-lite0")
    cfg = loaded.preprocessing
    transform = create_transform(input_size=tuple(cfg["input_size"]), interpolation=cfg["interpolation"],
                                 mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), crop_pct=cfg["crop_pct"],
                                 crop_mode=cfg["crop_mode"], is_training=False)
    suite = get_suite("real")
    load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
    bare, harness_loop, harness_total, storage = [], [], [], []
    disagree = []
    for _ in range(args.repeats):
        seconds, bare_top1 = bare_loop(loaded.model, transform, files, args.batch_size, args.workers)
        bare.append(seconds)
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(tmp)
            suite.ensure_label_sets(store)  # one-off per store, not per run
            t0 = time.perf_counter()
            run_id = run_classification(store, suite, "efficientnet-lite0", limit=args.images,
                                        batch_size=args.batch_size, quiet=True, chunk_images=1024)
            total = time.perf_counter() - t0
            timings = store.run_meta(run_id)["timings"]
            harness_loop.append(timings["inference_loop_s"])
            harness_total.append(total)
            storage.append(timings["storage_s"])
            meta = store.run_meta(run_id)
            rows = store.sql(f"SELECT key, top_classes[1] AS top1 FROM predictions WHERE run_id = '{run_id}'")
            theirs = dict(zip(rows["key"], rows["top1"]))
            disagree.append(sum(theirs[f.stem] != c for f, c in zip(files, bare_top1)))
    load_after = os.getloadavg()[0]
    n = args.images
    med = statistics.median
    lines = [
        f"## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC — {platform.machine()}, "
        f"{os.cpu_count()} cores, EfficientNet-Lite0, {n} images, batch {args.batch_size}, "
        f"{args.repeats} interleaved repeats (medians); 1-minute load average {load_before:.1f} before, "
        f"{load_after:.1f} after",
        "",
        f"Bare loop: eager NCHW model, {args.workers} decoding workers. Harness: its defaults, as the README's main "
        f"command runs ({meta['environment'].get('cpu_threads')} intra-op threads, graph {meta['graph']}, "
        f"channels_last {meta['channels_last']}, precision {meta['precision']}, "
        f"{default_workers('cpu')} decoding worker(s)).",
        "",
        "| | seconds | images/s | ratio vs bare |",
        "|---|---|---|---|",
        f"| bare PyTorch loop | {med(bare):.2f} | {n / med(bare):.1f} | 1.00 |",
        f"| harness loop incl. storage | {med(harness_loop):.2f} | {n / med(harness_loop):.1f} | "
        f"{med(bare) / med(harness_loop):.3f} |",
        f"| harness end to end (model load, listing, storage, catalog) | {med(harness_total):.2f} | "
        f"{n / med(harness_total):.1f} | {med(bare) / med(harness_total):.3f} |",
        "",
        f"Storage (Parquet chunks) took {med(storage) * 1000:.1f} ms, "
        f"{100 * med(storage) / med(harness_loop):.2f}% of the harness loop. Top-1 differs from the bare loop's on "
        f"{max(disagree)} of {n} images (per repeat: {', '.join(map(str, disagree))}). Goal: ratio ≥ 1.5 "
        f"(issue 18), storage ≤ 3%, top-1 unchanged.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = REPO / "benchmarks" / "results" / "harness.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    header = "" if out.exists() else "# Harness throughput vs a bare PyTorch loop (CPU)\n\n"
    with open(out, "a") as f:
        f.write(header + text + "\n")


if __name__ == "__main__":
    main()
