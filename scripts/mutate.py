"""Mutation check: does the test suite fail when the code is wrong?

Each mutant is one small deliberate bug, named, found by a short snippet of the code (not a line
number, so that refactoring around it does not move it) and replaced in a scratch copy of the
working tree (``git ls-files``: tracked and new files, never this checkout itself); then the named
tests run against that copy. Per mutant the script prints

- ``caught``: the tests failed, as they should;
- ``SURVIVED``: the tests passed with the bug in;
- ``STALE``: the snippet is not in the file exactly once (the code changed: update the mutant),
  or the named tests were not found;
- ``ERROR``: pytest could not run (exit status other than 0, 1 or 5).

Usage::

    .venv/bin/python scripts/mutate.py                 # every mutant
    .venv/bin/python scripts/mutate.py --list
    .venv/bin/python scripts/mutate.py --only dawid-skene-smoothing-doubled --only fisher-z-df
    .venv/bin/python scripts/mutate.py --markdown benchmarks/results/mutation.md

The exit status is 0 only when every mutant run was caught.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # file, relative to the repository
    old: str  # a snippet that occurs exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, node ids, -k expressions
    what: str


MUTANTS = [
    # ----- the table of issue 14 -----
    Mutant("temporal-match-threshold", "harness/activitynet/temporal.py",
           "if tiou[j] < threshold:", "if tiou[j] <= threshold:",
           ("tests/test_anet_detection.py",), "temporal detection match: tIoU >= t becomes > t"),
    Mutant("proposal-recall-threshold", "harness/activitynet/temporal.py",
           "hits = tiou[None, :, :] >= tious[:, None, None]", "hits = tiou[None, :, :] > tious[:, None, None]",
           ("tests/test_anet_detection.py",), "proposal recall: tIoU >= t becomes > t"),
    Mutant("data-fetch-size-only", "harness/data.py",
           "verify_file(Path(tmp), entry)",
           "verify_file(Path(tmp), FileEntry(entry.path, entry.url, sha256_file(tmp), entry.size))",
           ("tests/test_data.py",), "a download is checked for its size only, not its sha256"),
    Mutant("detector-box-height", "harness/detection/runner.py",
           "y2 - y1]", "y2 - y1 + 1]",
           ("tests/test_coco_run.py::test_torchvision_detector_from_checkpoint",),
           "stored box height y2 - y1 + 1 instead of the model's y2 - y1"),
    Mutant("dawid-skene-smoothing-doubled", "relabel/dawid_skene.py",
           "answers.expected_counts(post) + smoothing", "answers.expected_counts(post) + 2 * smoothing",
           ("tests/test_relabel_core.py",), "Dirichlet pseudo-counts added twice"),
    Mutant("top5-slice", "harness/score.py",
           "p.top_classes[1:5]", "p.top_classes[1:4]",
           ("tests/test_cifar.py::test_published_numbers",), "top-5 looks at 4 classes"),
    Mutant("lvis-max-dets", "harness/detection/evaluate.py",
           "reverse=True)[:max_dets]", "reverse=True)[:max_dets - 1]",
           ("tests/test_lvis.py",), "LVIS keeps one detection per image too few"),
    Mutant("anet-captions-start-end-swapped", "harness/activitynet/densevid.py",
           "start_i, end_i = preds[:, :1], preds[:, 1:]", "end_i, start_i = preds[:, :1], preds[:, 1:]",
           ("tests/test_anet_captions.py", "-k", "by_hand or official_arithmetic or far_away"),
           "a predicted segment's start and end swapped in the tIoU"),
    # ----- store -----
    Mutant("store-unfinished-runs-visible", "harness/store.py",
           "FROM runs WHERE status = 'complete')", "FROM runs WHERE status IN ('complete', 'running'))",
           ("tests/test_store.py",), "the main views show runs still being written"),
    Mutant("store-resume-forgets-a-key", "harness/store.py",
           'self.read_table(table, ["key"]).column("key").to_pylist())',
           'self.read_table(table, ["key"]).column("key").to_pylist()[1:])',
           ("tests/test_store.py",), "a resumed run does not know one of the keys it stored"),
    # ----- scoring -----
    Mutant("top1-second-class", "harness/score.py",
           "list_contains(l.labels, p.top_classes[1]), false) AS correct_top1",
           "list_contains(l.labels, p.top_classes[2]), false) AS correct_top1",
           ("tests/test_cifar.py::test_published_numbers",), "top-1 compares the second class"),
    Mutant("real-empty-label-lists-counted", "harness/score.py",
           "label_set = $labels AND len(labels) > 0)\nSELECT", "label_set = $labels AND len(labels) >= 0)\nSELECT",
           ("tests/test_imagenet_import.py", "-k", "published"),
           "images whose ReaL label list is empty are scored (always wrong)"),
    Mutant("temporal-ap-not-interpolated", "harness/activitynet/temporal.py",
           "mprec = np.maximum.accumulate(mprec[::-1])[::-1]", "mprec = mprec",
           ("tests/test_anet_detection.py",), "AP without the VOC interpolation of precision"),
    # ----- relabel -----
    Mutant("dawid-skene-uniform-prior", "relabel/dawid_skene.py",
           "else np.maximum(post.sum(1) / n_q, TINY)", "else np.full(K, 1.0 / K)",
           ("tests/test_relabel_core.py",), "the class prior is never learnt"),
    Mutant("dawid-skene-last-class-counts", "relabel/aggregation.py",
           "counts[K - 1] = self.cell_totals - counts[:K - 1].sum(0)", "counts[K - 1] = counts[:K - 1].sum(0)",
           ("tests/test_relabel_core.py",), "the last class's expected counts are the others' instead of the rest"),
    Mutant("dawid-skene-flat-start", "relabel/aggregation.py",
           "answer_votes = np.eye(n_classes)", "answer_votes = np.ones((n_classes, n_classes))",
           ("tests/test_relabel_core.py",), "multi-class EM starts from a flat posterior instead of the vote"),
    # ----- reports -----
    Mutant("wilson-one-sided-quantile", "reports/stats.py",
           "z = stats.norm.ppf(0.5 + confidence / 2)\n    p = k / n", "z = stats.norm.ppf(confidence)\n    p = k / n",
           ("tests/test_reports_stats.py", "-k", "wilson"), "Wilson interval at the one-sided quantile"),
    Mutant("mcnemar-one-sided", "reports/stats.py",
           "min(1.0, 2 * stats.binom.cdf(smaller, discordant, 0.5))", "min(1.0, stats.binom.cdf(smaller, discordant, 0.5))",
           ("tests/test_reports_stats.py", "-k", "mcnemar"), "exact McNemar p-value one-sided"),
    Mutant("fisher-z-df", "reports/stats.py",
           "math.sqrt(1 / (n1 - 3) + 1 / (n2 - 3))", "math.sqrt(1 / (n1 - 2) + 1 / (n2 - 2))",
           ("tests/test_reports_stats.py", "-k", "published"), "Fisher z-test with n - 2 instead of n - 3"),
    Mutant("steiger-unpooled-r", "reports/stats.py",
           "rbar2 = ((r_xy + r_xz) / 2) ** 2", "rbar2 = r_xy ** 2",
           ("tests/test_reports_stats.py", "-k", "published"), "Steiger's Z1 at r_xy instead of the pooled r (Z1*)"),
    Mutant("holm-is-bonferroni", "reports/stats.py",
           "scaled = p[order] * (p.size - np.arange(p.size))", "scaled = p[order] * p.size",
           ("tests/test_reports_stats.py", "-k", "holm"), "Holm's step-down correction replaced by Bonferroni"),
]


def scratch_copy(dest: Path) -> None:
    """Tracked and untracked-but-not-ignored files of the working tree, as they are now."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if not src.is_file() or rel.startswith(".venv"):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def run_mutant(mutant: Mutant, copy: Path, timeout: int) -> tuple[str, float, str]:
    """(outcome, seconds, detail) of one mutant applied to the scratch copy, which is restored after."""
    target = copy / mutant.path
    if not target.is_file():
        return "STALE", 0.0, f"{mutant.path} does not exist"
    original = target.read_text()
    found = original.count(mutant.old)
    if found != 1:
        return "STALE", 0.0, f"snippet found {found} times in {mutant.path}, expected once: {mutant.old!r}"
    target.write_text(original.replace(mutant.old, mutant.new))
    started = time.perf_counter()
    try:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(copy), os.environ.get("PYTHONPATH")])),
               "PYTHONDONTWRITEBYTECODE": "1",
               # the copy lies elsewhere: point the tests at the shared data next to this checkout
               "REALBENCH_TEST_DATA": os.environ.get("REALBENCH_TEST_DATA", str(REPO.parent / "shared" / "data"))}
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                               *mutant.tests], cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        code = proc.returncode
        tail = (proc.stdout.strip().splitlines() or [""])[-1]
    except subprocess.TimeoutExpired:
        code, tail = -1, f"timed out after {timeout} s"
    finally:
        target.write_text(original)
    seconds = time.perf_counter() - started
    outcome = {0: "SURVIVED", 1: "caught", 5: "STALE"}.get(code, "ERROR")
    return outcome, seconds, tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this mutant (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per mutant's test run (default 1200)")
    parser.add_argument("--markdown", type=Path, help="also write the results as a Markdown table here")
    args = parser.parse_args(argv)
    known = {m.name: m for m in MUTANTS}
    if args.list:
        for m in MUTANTS:
            print(f"{m.name:36s} {m.path:36s} {m.what}")
        return 0
    unknown = sorted(set(args.only or []) - set(known))
    if unknown:
        parser.error(f"unknown mutant(s) {', '.join(unknown)}; --list shows them")
    chosen = [known[n] for n in args.only] if args.only else MUTANTS
    rows = []
    with tempfile.TemporaryDirectory(prefix="realbench-mutants-") as tmp:
        copy = Path(tmp) / "repo"
        scratch_copy(copy)
        for mutant in chosen:
            outcome, seconds, detail = run_mutant(mutant, copy, args.timeout)
            rows.append((mutant, outcome, seconds, detail))
            print(f"{outcome:8s} {mutant.name:36s} {seconds:7.1f} s  {detail}", flush=True)
    counts = {o: sum(1 for r in rows if r[1] == o) for o in ("caught", "SURVIVED", "STALE", "ERROR")}
    summary = ", ".join(f"{n} {o.lower()}" for o, n in counts.items())
    print(f"{len(rows)} mutants: {summary}")
    if args.markdown:
        lines = ["| mutant | file | deliberate bug | tests run | outcome | seconds |", "|---|---|---|---|---|---|"]
        for m, outcome, seconds, _ in rows:
            lines.append(f"| `{m.name}` | `{m.path}` | {m.what} | `{' '.join(m.tests)}` | {outcome} | {seconds:.0f} |")
        lines.append("")
        lines.append(f"{len(rows)} mutants: {summary}.")
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0 if counts["caught"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
