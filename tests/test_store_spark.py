"""docs/scale.md says Spark reads the store: PySpark in local mode reads a store built here (two real runs
imported through the harness) with the docs' own code, and its ReaL and original top-1 of every run equal
DuckDB's."""
from __future__ import annotations

import shutil

import pytest

from harness.suites import get_suite

pyspark = pytest.importorskip("pyspark", reason="pyspark is a test extra (pip install -e .[test])")


@pytest.mark.slow
def test_spark_reads_the_store_and_agrees_with_duckdb(store, shared_data):
    if shutil.which("java") is None:
        pytest.skip("PySpark needs Java (scripts/setup.sh installs it)")
    suite = get_suite("real")
    suite.ensure_label_sets(store)
    for name in ("ResNet50", "ViT"):
        suite.import_predictions(store, shared_data / f"imagenet/model_predictions/{name}.csv", name)
    duck = {}
    for label_set in ("real", "imagenet-original"):
        rows = store.sql(f"""
            SELECT r.name, avg(list_contains(l.labels, p.top_classes[1])::INT) AS top1
            FROM predictions p JOIN runs r USING (run_id) JOIN labels l USING (key)
            WHERE l.label_set = '{label_set}' AND len(l.labels) > 0 GROUP BY r.name""")
        duck[label_set] = dict(zip(rows["name"], rows["top1"]))
    assert round(100 * duck["real"]["ResNet50"], 2) == 82.96 and round(100 * duck["imagenet-original"]["ViT"], 2) == 78.01

    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[1]").appName("realbench-store")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2").getOrCreate())
    try:
        root = str(store.root)
        # docs/scale.md, "Spark", with the store's folder for the bucket
        runs = spark.read.option("multiLine", True).json(f"{root}/runs/run_id=*/run.json")
        complete = runs.where("status = 'complete'").select("run_id", "name", "model")
        preds = (spark.read.option("basePath", f"{root}/runs")
                 .parquet(f"{root}/runs/run_id=*/predictions-*.parquet"))
        labels = (spark.read.option("basePath", f"{root}/labelsets")
                  .parquet(f"{root}/labelsets/label_set=*/labels.parquet"))
        for label_set in ("real", "imagenet-original"):
            chosen = labels.where(f"label_set = '{label_set}' AND size(labels) > 0")
            got = (preds.join(complete, "run_id").join(chosen, "key")
                   .selectExpr("name", "CAST(array_contains(labels, top_classes[0]) AS INT) AS correct")
                   .groupBy("name").avg("correct").collect())
            spark_top1 = {row["name"]: row["avg(correct)"] for row in got}
            assert spark_top1.keys() == duck[label_set].keys()
            for name, value in spark_top1.items():
                assert value == pytest.approx(duck[label_set][name], abs=1e-12), (label_set, name)
    finally:
        spark.stop()
