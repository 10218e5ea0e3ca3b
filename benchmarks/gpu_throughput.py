"""One model over a folder of JPEGs on a CUDA GPU, with CPU (PIL) decoding and with GPU (nvjpeg) decoding.

    .venv/bin/python benchmarks/gpu_throughput.py [--model efficientnet-lite0] [--images 1300] [--repeats 3]
                                                  [--batch-size 256] [--data-dir FOLDER]

Each side is a full harness run (``run_classification``: listing, decoding, model, storage), the
two alternating so that both see the same machine; medians are reported. For each side it prints
images/s, and whether the run is bound by decoding or by the model: the model's own throughput
(the same batches, already on the GPU, timed alone) against the run's. The top-1 of both sides is
compared image by image (tensor resizing on the GPU is close to PIL's, not identical).

On a machine without CUDA it says so and exits 0 (``benchmarks/results/gpu.md`` says whether it
has run on a GPU). Results are appended to benchmarks/results/gpu.md.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("REALBENCH_MIRROR", str(REPO.parent / "shared" / "data"))


def model_only_images_per_s(model_name: str, batch_size: int, precision: str, repeats: int = 20) -> float:
    """The model's forward alone on random batches already on the GPU, as the harness runs it."""
    import torch

    from harness.inference import InferenceOptions, autocast, prepare_model
    from harness.models import load_model

    loaded = load_model(model_name)
    size = loaded.preprocessing["input_size"]
    model, _ = prepare_model(loaded.model, "cuda", InferenceOptions(precision=precision), size)
    x = torch.randn(batch_size, *size, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), autocast("cuda", precision):
        for _ in range(3):
            model(x)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(x)
        torch.cuda.synchronize()
    return repeats * batch_size / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--images", type=int, default=1300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: the harness's)")
    parser.add_argument("--data-dir", default=None, help="default: the shipped 1,300 ImageNet validation JPEGs")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to gpu.md")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(f"no CUDA GPU on this machine (torch {torch.__version__}, CUDA build {torch.version.cuda}): nothing "
              "to measure; run this where a GPU is available (benchmarks/results/gpu.md says it has not run yet)")
        return 0

    from harness.inference import InferenceOptions
    from harness.runner import run_classification
    from harness.store import Store
    from harness.suites import get_suite

    suite = get_suite("real")
    precision = "fp16"
    seconds: dict[str, list[float]] = {"pil": [], "device": []}
    top1: dict[str, dict] = {}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for decode in ("pil", "device"):
            with tempfile.TemporaryDirectory() as tmp:
                store = Store(tmp)
                suite.ensure_label_sets(store)
                run_id = run_classification(store, suite, args.model, data_dir=args.data_dir, limit=args.images,
                                            batch_size=args.batch_size, workers=args.workers, device="cuda",
                                            quiet=True, inference=InferenceOptions(decode=decode,
                                                                                   precision=precision))
                meta = store.run_meta(run_id)
                seconds[decode].append(meta["timings"]["inference_loop_s"])
                rows = store.sql(f"SELECT key, top_classes[1] AS c FROM predictions WHERE run_id = '{run_id}'")
                top1[decode] = dict(zip(rows["key"], rows["c"]))
                n = meta["n_images"]
    compute = model_only_images_per_s(args.model, args.batch_size, precision)
    differ = sum(top1["pil"][k] != top1["device"].get(k) for k in top1["pil"])
    med = statistics.median
    lines = [
        f"## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC — {torch.cuda.get_device_name()}, "
        f"{os.cpu_count()} CPU cores, {args.model}, {n} images, batch {args.batch_size}, {precision} autocast, "
        f"channels_last, {args.repeats} interleaved repeats (medians); load average before {load_before:.1f}",
        "",
        "| decoding | seconds | images/s | vs PIL | bound by |",
        "|---|---|---|---|---|",
    ]
    for decode, label in (("pil", "PIL in the loader's workers (CPU)"), ("device", "decode_jpeg on the GPU")):
        rate = n / med(seconds[decode])
        bound = "decoding" if rate < 0.8 * compute else "the model"
        lines.append(f"| {label} | {med(seconds[decode]):.2f} | {rate:.0f} | "
                     f"{med(seconds['pil']) / med(seconds[decode]):.2f}x | {bound} |")
    lines += ["", f"The model alone (random batches already on the GPU): {compute:.0f} images/s; a run below 80% of "
                  f"that is counted as bound by decoding. Top-1 differs between the two decodings on {differ} of "
                  f"{n} images.", ""]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        out = REPO / "benchmarks" / "results" / "gpu.md"
        with open(out, "a") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
