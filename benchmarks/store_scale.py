"""The store at leaderboard scale: the layout's views before issue 13 against today's, side by side.

    .venv/bin/python benchmarks/store_scale.py [--runs 1000] [--rows 50000] [--repeats 3] [--keep DIR]

Builds a synthetic store through the store's own API (``Store.write_run``, ``Store.put_label_set``):
``--runs`` runs of ``--rows`` images each (top-5 classes and scores drawn at random, like the issue's
1.8 GB measurement) and a ReaL-like label set, in the store's real layout. Then, on that same store,
alternating before/after so that machine noise hits both alike (medians of ``--repeats``):

- scoring one run (``harness.score.score_run``'s queries): *before*, over the views every query used
  until issue 13 (a glob over every run's files, filtered by ``run_id IN (SELECT ... FROM runs)`` that
  parsed every run.json); *after*, ``score_run`` itself;
- the README's all-runs ReaL query: before over the old views, after through ``Store.sql``;
- registering a finished run in the catalog: before, the old full ``catalog.duckdb`` rebuild; after,
  ``Store.register_run`` (measured at a tenth of the runs and at all of them, to show whether it grows).

Results are appended to benchmarks/results/store_scale.md.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.score import score_run  # noqa: E402
from harness.store import Store  # noqa: E402

README_QUERY = """
  SELECT r.name, count(*) AS n,
         round(100 * avg(list_contains(l.labels, p.top_classes[1])::INT), 2) AS real_top1
  FROM predictions p JOIN runs r USING (run_id) JOIN labels l USING (key)
  WHERE l.label_set = 'real' AND len(l.labels) > 0
  GROUP BY r.name ORDER BY real_top1 DESC"""

SCORE_QUERIES = [  # score_run's two queries, as they read before issue 13
    """WITH p AS (SELECT key, top_classes, error FROM predictions_all WHERE run_id = $run),
            l AS (SELECT key, labels FROM labels WHERE label_set = $labels AND len(labels) > 0)
       SELECT l.key, coalesce(list_contains(l.labels, p.top_classes[1]), false) AS correct_top1
       FROM l JOIN p USING (key) ORDER BY l.key""",
    """SELECT (SELECT count(*) FROM labels WHERE label_set = $labels) AS dataset_size,
              (SELECT count(*) FROM predictions_all WHERE run_id = $run) AS predicted""",
]


def old_view_sql(root: Path) -> list[str]:
    """The views as ``Store.view_sql`` wrote them before issue 13 (globs, ``IN`` over every run.json)."""
    root = root.resolve()
    fields = ["run_id", "name", "model", "suite", "dataset", "kind", "status", "created_at", "finished_at"]
    cols = ", ".join(f"json ->> '{f}' AS {f}" for f in fields)
    return [
        f"CREATE OR REPLACE VIEW runs AS SELECT {cols}, json AS meta FROM read_json_objects("
        f"'{root}/runs/run_id=*/run.json', format='auto', maximum_object_size=268435456)",
        f"CREATE OR REPLACE VIEW predictions_all AS SELECT * FROM read_parquet('{root}/runs/run_id=*/predictions-*"
        ".parquet', hive_partitioning=true, hive_types={'run_id': VARCHAR}, union_by_name=true)",
        "CREATE OR REPLACE VIEW predictions AS SELECT t.* FROM predictions_all t "
        "WHERE t.run_id IN (SELECT run_id FROM runs WHERE status = 'complete')",
        f"CREATE OR REPLACE VIEW labels AS SELECT * FROM read_parquet('{root}/labelsets/label_set=*/labels.parquet', "
        "hive_partitioning=true, hive_types={'label_set': VARCHAR}, union_by_name=true)",
    ]


def old_connect(root: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for stmt in old_view_sql(root):
        con.execute(stmt)
    return con


def old_refresh_catalog(root: Path) -> None:
    path = root / ".bench-old-catalog.duckdb"
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    for stmt in old_view_sql(root):
        con.execute(stmt)
    con.close()
    path.unlink()


def keys(n: int) -> list[str]:
    return [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, n + 1)]


def build(root: Path, n_rows: int) -> Store:
    """A store holding a ReaL-like label set over ``n_rows`` images (no runs yet)."""
    store = Store(root)
    rng = np.random.default_rng(0)
    n_labels = rng.integers(0, 3, n_rows)  # 0: excluded, as ReaL excludes some images
    labels = [rng.integers(0, 1000, k).astype(np.int32).tolist() for k in n_labels]
    store.put_label_set("real", {"dataset": "imagenet-val"}, {"labels": {"key": keys(n_rows), "labels": labels}})
    return store


def add_runs(store: Store, start: int, end: int, n_rows: int, log) -> None:
    """Runs ``start..end-1``: random top-5 classes and descending scores for every image, stored as imports."""
    rng = np.random.default_rng(start)
    key_column = pa.array(keys(n_rows))
    t0 = time.perf_counter()
    for i in range(start, end):
        top = rng.integers(0, 1000, (n_rows, 5), dtype=np.int32)
        scores = np.sort(rng.random((n_rows, 5), dtype=np.float32), axis=1)[:, ::-1].copy()
        table = pa.table({
            "key": key_column,
            "top_classes": pa.FixedSizeListArray.from_arrays(top.ravel(), 5).cast(pa.list_(pa.int32())),
            "top_scores": pa.FixedSizeListArray.from_arrays(scores.ravel(), 5).cast(pa.list_(pa.float32()))})
        store.write_run({"name": f"model-{i:04d}", "suite": "real", "dataset": "imagenet-val", "kind": "import"},
                        {"predictions": table})
        if (i + 1 - start) % max(1, (end - start) // 5) == 0:
            log(f"  {i + 1} runs stored ({time.perf_counter() - t0:.0f} s)")


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(store: Store, repeats: int) -> dict[str, tuple[float, float]]:
    run_id = store.list_runs("complete")[len(store.list_runs("complete")) // 2]["run_id"]
    params = {"run": run_id, "labels": "real"}

    def before_score():
        con = old_connect(store.root)
        for q in SCORE_QUERIES:
            con.execute(q, params).fetchall()
        con.close()

    def before_readme():
        con = old_connect(store.root)
        con.execute(README_QUERY).fetchall()
        con.close()

    # Same answers first: the old views and the new ones agree on this store.
    new_top1 = score_run(store, run_id, "real")["top1"]
    con = old_connect(store.root)
    old = con.execute(SCORE_QUERIES[0], params).df()["correct_top1"].mean()
    old_readme = con.execute(README_QUERY).df()
    con.close()
    new_readme = store.sql(README_QUERY)
    assert abs(old - new_top1) < 1e-12, (old, new_top1)
    by_name = [df.sort_values("name", ignore_index=True) for df in (old_readme, new_readme)]
    assert by_name[0].equals(by_name[1]), "the README query disagrees between the old and the new views"
    out = {}
    for label, before, after in [
        ("score one run", before_score, lambda: score_run(store, run_id, "real")),
        ("README all-runs ReaL query", before_readme, lambda: store.sql(README_QUERY)),
        ("register a finished run in the catalog", lambda: old_refresh_catalog(store.root),
         lambda: store.register_run(run_id)),
    ]:
        b, a = [], []
        for _ in range(repeats):  # alternating
            b.append(median_time(before, 1))
            a.append(median_time(after, 1))
        out[label] = (statistics.median(b), statistics.median(a))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="build (or reuse) the store here and keep it")
    parser.add_argument("--no-write", action="store_true", help="print the table, do not append it to the results")
    args = parser.parse_args()

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    root = args.keep or Path(tempfile.mkdtemp(prefix="store-scale-"))
    try:
        t0 = time.perf_counter()
        tenth = max(1, args.runs // 10)
        results = {}
        if (root / "runs").exists() and len(Store(root).run_ids()) == args.runs:
            log(f"reusing the store in {root}")
            store = Store(root)
        else:
            store = build(root, args.rows)
            add_runs(store, 0, tenth, args.rows, log)
            results["tenth"] = measure(store, args.repeats)
            log(f"at {tenth} runs: {results['tenth']}")
            add_runs(store, tenth, args.runs, args.rows, log)
        build_s = time.perf_counter() - t0
        size_gb = sum(p.stat().st_size for p in (root / "runs").rglob("*.parquet")) / 1e9
        results["all"] = measure(store, args.repeats)
        log(f"at {args.runs} runs: {results['all']}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## {when} — {platform.machine()}, {os.cpu_count()} cores (load average {load[0]:.1f} at the end), "
             f"{args.runs:,} runs x {args.rows:,} rows ({size_gb:.2f} GB of Parquet, built in {build_s:.0f} s), "
             f"medians of {args.repeats}, before/after alternating", "",
             "| | runs | before (views until issue 13) s | after s | speed-up |", "|---|---|---|---|---|"]
    for scale, label_runs in (("tenth", tenth), ("all", args.runs)):
        for what, (before, after) in results.get(scale, {}).items():
            lines.append(f"| {what} | {label_runs:,} | {before:.3f} | {after:.4f} | {before / after:.0f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        out = REPO / "benchmarks" / "results" / "store_scale.md"
        if not out.exists():
            out.write_text("# The store at leaderboard scale (issue 13)\n\n")
        with out.open("a") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
