"""Harness throughput on the CPU against a bare PyTorch loop: same model, preprocessing, images, loader.

    .venv/bin/python benchmarks/harness_throughput.py [--images 390] [--repeats 3]

The bare loop decodes, preprocesses, runs the model and keeps the top-5 in memory; the harness
does the same and also stores every row (Parquet chunks, run metadata, catalog). Runs alternate
(bare, harness, bare, ...) so machine noise hits both alike; medians are reported. Results are
appended to benchmarks/results/harness.md.
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


def bare_loop(model, transform, files, batch_size, workers) -> float:
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
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=390)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=65)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    args = parser.parse_args()

    from timm.data import create_transform

    from harness.data import resolve
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
    for _ in range(args.repeats):
        bare.append(bare_loop(loaded.model, transform, files, args.batch_size, args.workers))
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(tmp)
            suite.ensure_label_sets(store)  # one-off per store, not per run
            t0 = time.perf_counter()
            run_id = run_classification(store, suite, "efficientnet-lite0", limit=args.images,
                                        batch_size=args.batch_size, workers=args.workers, quiet=True,
                                        chunk_images=1024)
            total = time.perf_counter() - t0
            timings = store.run_meta(run_id)["timings"]
            harness_loop.append(timings["inference_loop_s"])
            harness_total.append(total)
            storage.append(timings["storage_s"])
    n = args.images
    med = statistics.median
    lines = [
        f"## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC — {platform.machine()}, "
        f"{os.cpu_count()} cores, EfficientNet-Lite0, {n} images, batch {args.batch_size}, "
        f"{args.workers} workers, {args.repeats} repeats (medians); load average before: {load_before:.1f}",
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
        f"{100 * med(storage) / med(harness_loop):.2f}% of the harness loop. Goal: ratio ≥ 0.95, storage ≤ 3%.",
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
