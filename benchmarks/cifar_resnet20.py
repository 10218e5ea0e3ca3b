"""CIFAR-10 test set (10,000 JPEGs) through ResNet-20 on the CPU: the harness vs a bare PyTorch loop.

Both sides run in this process, interleaved, on the same images with the same weights and batch
size; the medians of the repeats are compared. The baseline is the loop one writes by hand:
an ImageFolder-style dataset (PIL decode, ToTensor, Normalize) in a DataLoader, the eager model as
published (NCHW, batch norm as separate layers), top-1 kept in memory. The harness side is the full
``run_classification`` call: listing and checking the images, loading the model, decoding in
workers, storing top-5 classes and scores per image in Parquet chunks, finishing the run.

    python benchmarks/cifar_resnet20.py [--repeats 3] [--images 10000] [--batch-size 256]

Results go to ``benchmarks/results/cifar.md`` (the table is printed as well).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("REALBENCH_MIRROR", str(ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(ROOT))

from harness.cifar import CIFAR10_CLASSES, cifar10_key_of  # noqa: E402
from harness.cifar.resnet import (PREPROCESSING, WEIGHT_FILES, WEIGHTS_DATASET, cifar_resnet,  # noqa: E402
                                  inference_form)
from harness.data import resolve, resolve_file  # noqa: E402
from harness.models import read_checkpoint  # noqa: E402
from harness.runner import run_classification  # noqa: E402
from harness.store import Store  # noqa: E402
from harness.suites import get_suite  # noqa: E402


def bare_loop(files: list[Path], batch_size: int, workers: int, fused: bool = False) -> tuple[float, np.ndarray]:
    import torch
    from PIL import Image
    from torchvision import transforms

    t0 = time.perf_counter()
    model = cifar_resnet(20)
    model.load_state_dict(read_checkpoint(resolve_file(WEIGHTS_DATASET, WEIGHT_FILES[20])))
    model.eval()
    if fused:
        model = inference_form(model)
    transform = transforms.Compose([transforms.ToTensor(),
                                    transforms.Normalize(PREPROCESSING["mean"], PREPROCESSING["std"])])

    class Folder(torch.utils.data.Dataset):
        def __len__(self):
            return len(files)

        def __getitem__(self, i):
            with Image.open(files[i]) as img:
                return transform(img.convert("RGB"))

    loader = torch.utils.data.DataLoader(Folder(), batch_size=batch_size, num_workers=workers)
    out = []
    with torch.inference_mode():
        for x in loader:
            out.append(model(x).argmax(1).numpy())
    return time.perf_counter() - t0, np.concatenate(out)


def harness_run(limit: int, batch_size: int) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        suite = get_suite("cifar10")
        suite.ensure_label_sets(store)  # label sets are registered once per store, not per run
        t0 = time.perf_counter()
        run_id = run_classification(store, suite, "resnet20-cifar", limit=limit, batch_size=batch_size, quiet=True)
        elapsed = time.perf_counter() - t0
        rows = store.sql(f"SELECT key, top_classes[1] AS top1 FROM predictions WHERE run_id = '{run_id}'")
        return elapsed, dict(zip(rows.key, rows.top1))


def main() -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    import timm  # noqa: F401  imported up front: the first repeat of either side should not pay for it
    import torchvision  # noqa: F401

    folder = resolve("cifar10-test-jpeg") / "cifar/cifar10-test-jpeg"
    load_before = os.getloadavg()[0]
    files = sorted(folder.glob("*/*.jpg"), key=lambda f: cifar10_key_of(str(f.relative_to(folder))))
    files = files[: args.images]  # the harness's --limit takes the first keys in the same (text) order
    keys = [cifar10_key_of(str(f.relative_to(folder))) for f in files]
    labels = np.array([CIFAR10_CLASSES.index(f.parent.name) for f in files])
    bare_s, fused_s, ours_s = [], [], []
    for rep in range(args.repeats):
        t, pred = bare_loop(files, args.batch_size, args.workers)
        bare_s.append(t)
        fused_s.append(bare_loop(files, args.batch_size, args.workers, fused=True)[0])
        t, stored = harness_run(args.images, args.batch_size)
        ours_s.append(t)
        same = np.mean([stored[k] == p for k, p in zip(keys, pred)])
        print(f"repeat {rep + 1}: bare loop {bare_s[-1]:.1f} s, bare loop with the inference-form model "
              f"{fused_s[-1]:.1f} s, harness {ours_s[-1]:.1f} s; top-1 bare "
              f"{100 * np.mean(pred == labels):.2f}%, harness {100 * np.mean([stored[k] for k in keys] == labels):.2f}%, "
              f"same top-1 on {100 * same:.2f}% of images", flush=True)
    bare, fused, ours = statistics.median(bare_s), statistics.median(fused_s), statistics.median(ours_s)
    ratios = [b / o for b, o in zip(bare_s, ours_s)]
    n = len(files)
    lines = [
        "# CIFAR benchmarks", "",
        "## CIFAR-10 test set through ResNet-20 on the CPU: harness vs a bare PyTorch loop", "",
        f"`python benchmarks/cifar_resnet20.py --repeats {args.repeats} --images {args.images} "
        f"--batch-size {args.batch_size}`; {n:,} JPEGs, batch {args.batch_size}, {args.workers} decoding workers on "
        f"both sides, medians of {args.repeats} interleaved repeats.", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} intra-op threads; 1-minute load average {load_before:.1f} before and "
        f"{os.getloadavg()[0]:.1f} after (the machine is shared: absolute times are noisy, the repeats are "
        "interleaved so both sides see the same load).", "",
        "| side | median s | images/s | runs (s) |", "|---|---|---|---|",
        f"| bare loop (eager NCHW model, PIL + ToTensor + Normalize, top-1 in memory) | {bare:.1f} | {n / bare:.0f} | "
        f"{', '.join(f'{t:.1f}' for t in bare_s)} |",
        f"| bare loop, the same model in inference form (reference for the harness's own overhead) | {fused:.1f} | "
        f"{n / fused:.0f} | {', '.join(f'{t:.1f}' for t in fused_s)} |",
        f"| harness `run_classification` (full run: checks, top-5 rows stored in Parquet) | {ours:.1f} | {n / ours:.0f} | "
        f"{', '.join(f'{t:.1f}' for t in ours_s)} |", "",
        f"**Speed-up over the bare loop: {bare / ours:.2f}x** (median / median); per repeat "
        f"{', '.join(f'{r:.2f}x' for r in ratios)} (median {statistics.median(ratios):.2f}x). Harness vs the bare "
        f"loop with the same inference-form model: {fused / ours:.2f}x.", "",
        "What differs: the CIFAR ResNet loader hands the runner the inference form of the model (batch norm "
        "folded into the convolutions, channels_last weights, so oneDNN keeps activations NHWC, and each "
        "convolution run with its ReLU and residual sum fused in one oneDNN call); the harness "
        "also verifies the 10,000 files against their manifest, lists and keys them, and stores every row. "
        "Its decoding workers run only the PIL half of timm's eval transform (resize and center crop, skipped "
        "when the image already has the input size, as CIFAR's 32x32 do) and hand over uint8 tensors; the "
        "batch is converted and normalised at once in the main process, bit-identical to ToTensor + Normalize. "
        "Workers and batch size are the same on both sides.", "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        out = ROOT / "benchmarks" / "results" / "cifar.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
