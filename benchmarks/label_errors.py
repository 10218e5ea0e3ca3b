"""Label errors on the CIFAR-10 test set: our ranking (stored runs as raters) against confident
learning (cleanlab's ``find_label_issues``), precision at k and recall against human references.

    python benchmarks/label_errors.py [--store DIR] [--repeats 3]

Inputs, all shipped: the 30 published models' top-1 predictions and the cross-validated
probabilities ``cifar10_test_pyx.npy`` (31 raters for us; cleanlab's intended input is the
probabilities). The four own ResNet runs join when the store has them (``--store``). References
(``relabel.errors.cifar10_error_references``): ``cifar10h``, the images whose CIFAR-10H plurality
differs from the original label; ``mturk``, the 54 candidates that fewer than 3 of 5 workers kept
— candidates cleanlab itself proposed, so that reference favours it.

Rankings compared, each over all 10,000 images:
- ours with Dawid–Skene (per-class reliability), one-coin and the majority vote;
- cleanlab on ``cifar10_test_pyx.npy``: ``find_label_issues`` (ranked by self-confidence) for the
  flagged set, continued by ``get_label_quality_scores`` for the rest;
- cleanlab on the zoo's vote shares (the same 31 raters' answers as probabilities, +0.01 smoothing).

Writes ``benchmarks/results/label_errors.md`` and ``label_errors.png``. cleanlab is AGPL and only
a benchmark dependency (the ``bench`` extra).
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

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("REALBENCH_MIRROR", str(ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(ROOT))

from harness import cifar  # noqa: E402
from harness.data import resolve_file  # noqa: E402
from harness.store import Store, atomic_write_bytes  # noqa: E402
from relabel.errors import (cifar10_error_references, find_label_errors,  # noqa: E402
                            precision_recall_at)

RESULTS = ROOT / "benchmarks" / "results"
KS = (10, 20, 50, 54, 79, 100, 200, 300, 500)


def cleanlab_ranking(labels: np.ndarray, probs: np.ndarray) -> tuple[list[str], int]:
    """(every index ranked: flagged issues first by self-confidence, then the rest by label quality;
    how many were flagged)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    flagged = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence")
    rest = np.argsort(get_label_quality_scores(labels, probs), kind="stable")
    rest = rest[~np.isin(rest, flagged)]
    return [str(i) for i in np.concatenate([flagged, rest])], len(flagged)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", help="a store with the CIFAR-10 runs (default: a temporary one, filled "
                        "with the shipped files)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    store = Store(args.store or tempfile.mkdtemp(prefix="label-errors-"))
    cifar.import_shipped(store, suites=("cifar10",))
    cifar.CIFAR10.ensure_label_sets(store, ["cifar10-original"])
    labels = cifar.cifar10_labels()
    pyx = np.load(resolve_file(cifar.CIFAR10_TEST, "cifar/cifar10_test_pyx.npy"))
    references = cifar10_error_references()

    rankings, times, flagged = {}, {"ours (dawid-skene)": [], "cleanlab (pyx)": []}, {}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        table, raters = find_label_errors(store, "cifar10-test", "cifar10-original", 10)
        times["ours (dawid-skene)"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ranked, n_flagged = cleanlab_ranking(labels, pyx)
        times["cleanlab (pyx)"].append(time.perf_counter() - t0)
    rankings["ours, dawid-skene"] = table["key"].tolist()
    flagged["ours, dawid-skene"] = int((table["p_wrong"] >= 0.5).sum())
    rankings["cleanlab, pyx"], flagged["cleanlab, pyx"] = ranked, n_flagged
    for model in ("one-coin", "majority-vote"):
        other, _ = find_label_errors(store, "cifar10-test", "cifar10-original", 10, aggregator=model)
        rankings[f"ours, {model}"] = other["key"].tolist()
        flagged[f"ours, {model}"] = int((other["p_wrong"] >= 0.5).sum())
    votes = np.full((10_000, 10), 0.01)
    answers = store.sql("SELECT p.key, p.top_classes[1] AS answer FROM predictions p JOIN runs r USING (run_id) "
                        "WHERE r.dataset = 'cifar10-test' AND r.name IN (SELECT unnest(?))", [raters])
    np.add.at(votes, (answers["key"].astype(int).to_numpy(), answers["answer"].to_numpy(int)), 1)
    rankings["cleanlab, zoo vote shares"], flagged["cleanlab, zoo vote shares"] = cleanlab_ranking(
        labels, votes / votes.sum(1, keepdims=True))

    curves = {(ref, method): precision_recall_at(keys, references[ref], KS)
              for ref in references for method, keys in rankings.items()}
    full = {(ref, method): precision_recall_at(keys, references[ref], range(1, 501))
            for ref in references for method, keys in rankings.items()}
    plot(full, RESULTS / "label_errors.png")

    med = statistics.median
    load = os.getloadavg()
    lines = [f"# Label errors on the CIFAR-10 test set: models as raters vs confident learning",
             "",
             f"Raters: {len(raters)} runs ({', '.join(raters[:3])}, ... {raters[-1]}); references: "
             f"`cifar10h` ({len(references['cifar10h'])} images whose CIFAR-10H plurality differs from the "
             f"original label) and `mturk` ({len(references['mturk'])} candidates fewer than 3 of 5 workers "
             "kept; only candidates confident learning proposed were checked, so it favours cleanlab).",
             ""]
    for ref in references:
        lines += [f"## Precision at k against `{ref}`", "",
                  "| ranking | flagged | " + " | ".join(f"P@{k}" for k in KS) + f" | recall@{len(references[ref])} | recall@500 |",
                  "|---|---:|" + "---:|" * (len(KS) + 2)]
        for method in rankings:
            c = curves[ref, method].set_index("k")
            f = full[ref, method].set_index("k")
            lines.append(f"| {method} | {flagged[method]} | " + " | ".join(f"{c.loc[k, 'precision']:.3f}" for k in KS)
                         + f" | {f.loc[len(references[ref]), 'recall']:.3f} | {f.loc[500, 'recall']:.3f} |")
        ours = full[ref, "ours, dawid-skene"].set_index("k")["precision"]
        theirs = full[ref, "cleanlab, pyx"].set_index("k")["precision"]
        upto = len(references[ref])
        ahead = int((ours.loc[1:upto] > theirs.loc[1:upto]).sum())
        tied = int((ours.loc[1:upto] == theirs.loc[1:upto]).sum())
        behind = (ours.loc[1:upto] < theirs.loc[1:upto]).to_numpy()
        stays = next((k for k in range(1, upto + 1) if behind[k - 1:].all()), None)
        lines += ["", f"Ours (Dawid–Skene) vs cleanlab on pyx, every k from 1 to {upto}: ahead at {ahead}, tied at "
                  f"{tied}, behind at {upto - ahead - tied}"
                  + (f"; behind at every k from {stays} on." if stays else "."), ""]
    lines += ["## Time (medians of %d, side by side)" % args.repeats, "",
              "| what | time |", "|---|---:|"]
    lines += [f"| {name} | {med(ts):.2f} s |" for name, ts in times.items()]
    lines += ["", "Ours includes reading the 31 runs' predictions from the store (one DuckDB query) and the fit; "
              "cleanlab's is its two calls on the 10,000 × 10 probabilities already in memory.",
              "", "![precision at k](label_errors.png)", "",
              "## Where we are not ahead, and what is not measured", "",
              "- Against `mturk`, cleanlab on pyx is ahead at the larger k (see above): that reference holds only candidates "
              "confident learning flagged on these very probabilities, so it cannot contain the errors only the zoo "
              "finds; against the unbiased `cifar10h` reference ours leads at every k.",
              "- Our top ranks are images all 31 models put in another class; many of them are ambiguous to people "
              "too (CIFAR-10H keeps the original label), which caps precision against either reference.",
              "- ImageNet (five shipped prediction files, 1,000 classes) is not measured yet: a dense posterior over "
              "1,000 classes for 50,000 images does not fit this shared 2-core machine's budget; it needs a "
              "candidate-class representation.",
              "", f"_`benchmarks/label_errors.py`, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, "
              f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; load average "
              f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}._", ""]
    atomic_write_bytes(RESULTS / "label_errors.md", "\n".join(lines).encode())
    print("\n".join(lines))


def plot(full: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    refs = sorted({ref for ref, _ in full})
    fig, axes = plt.subplots(1, len(refs), figsize=(6 * len(refs), 4.2))
    for ax, ref in zip(np.atleast_1d(axes), refs):
        for (r, method), curve in full.items():
            if r == ref:
                ax.plot(curve["k"], curve["precision"], label=method, lw=2 if "dawid" in method or "pyx" in method else 1)
        ax.set_title(f"precision at k vs {ref}")
        ax.set_xlabel("k (top-ranked suspects)")
        ax.set_ylabel("precision")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())


if __name__ == "__main__":
    main()
