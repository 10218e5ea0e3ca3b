"""The store: atomic Parquet files, DuckDB views, label sets replaced whole."""
from __future__ import annotations

import json
import multiprocessing

import pandas as pd
import pytest

from harness.errors import HarnessError
from harness.store import Store


def test_empty_store_has_queryable_views(store):
    for view in ("runs", "predictions", "predictions_all", "labels", "label_sets"):
        assert store.sql(f"SELECT count(*) AS n FROM {view}")["n"][0] == 0


def test_unfinished_runs_stay_out_of_the_main_view(store):
    writer = store.begin_run({"name": "partial", "suite": "real", "dataset": "imagenet-val"})
    writer.write_chunk(pd.DataFrame({"key": ["a", "b"], "top_classes": [[1], [2]]}))
    assert store.sql("SELECT count(*) AS n FROM predictions")["n"][0] == 0
    assert store.sql("SELECT count(*) AS n FROM predictions_all")["n"][0] == 2
    writer.write_chunk(pd.DataFrame({"key": ["c"], "top_classes": [[3]]}))
    assert writer.stored_keys() == {"a", "b", "c"}
    writer.finish()
    rows = store.sql("SELECT key, top_classes[1] AS top1, run_id FROM predictions ORDER BY key")
    assert list(rows["key"]) == ["a", "b", "c"] and list(rows["top1"]) == [1, 2, 3]
    assert store.sql("SELECT status FROM runs")["status"][0] == "complete"
    with pytest.raises(HarnessError, match="already complete"):
        store.begin_run({"name": "again"}, run_id=writer.run_id)


def test_failed_import_leaves_nothing(store):
    with pytest.raises(HarnessError, match="unexpected columns"):
        store.write_run({"name": "x"}, {"predictions": pd.DataFrame({"key": ["a"], "oops": [1]})})
    assert not list((store.root / "runs").iterdir())


def test_label_set_is_replaced_whole(store):
    store.put_label_set("mine", {"dataset": "d"}, {"labels": pd.DataFrame({"key": ["a"], "labels": [[1]]})})
    store.put_label_set("mine", {"dataset": "d"},
                        {"labels": pd.DataFrame({"key": ["a", "b"], "labels": [[2], []]})})
    rows = store.sql("SELECT key, labels FROM labels WHERE label_set = 'mine' ORDER BY key")
    assert [list(x) for x in rows["labels"]] == [[2], []]
    assert sorted(p.name for p in (store.root / "labelsets").iterdir()) == [".lock", "label_set=mine"]
    with pytest.raises(HarnessError, match="not a valid name"):
        store.put_label_set("../evil", {"dataset": "d"}, {"labels": pd.DataFrame({"key": [], "labels": []})})


def _write_one(root: str, i: int) -> str:
    store = Store(root)
    return store.write_run({"name": f"p{i}", "suite": "real", "dataset": "imagenet-val"},
                           {"predictions": pd.DataFrame({"key": [f"k{j}" for j in range(100)],
                                                         "top_classes": [[i]] * 100})})


def test_concurrent_writers_both_land(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        ids = pool.starmap(_write_one, [(str(tmp_path), i) for i in range(8)])
    store = Store(tmp_path)
    counts = store.sql("SELECT run_id, count(*) AS n FROM predictions GROUP BY run_id")
    assert sorted(counts["run_id"]) == sorted(ids) and set(counts["n"]) == {100}
    meta = json.loads((store.run_dir(ids[0]) / "run.json").read_text())
    assert meta["status"] == "complete" and meta["n_rows"] == {"predictions": 100}


def test_stored_scores_are_kept_per_key_and_go_with_their_run(store):
    run_id = store.write_run({"name": "m", "suite": "s"}, {"predictions": pd.DataFrame(
        {"key": ["a"], "top_classes": [[1]], "top_scores": [[0.5]], "logits": [None], "error": [None]})})
    key = {"label_set": "ls", "metric_version": "m-1", "options": {"max_dets": [1, 10, 100]}}
    assert store.get_score(run_id, key) is None
    store.put_score(run_id, key, {"label_set": "ls", "metric_version": "m-1", "result": {"AP": 0.5}})
    assert store.get_score(run_id, key)["result"] == {"AP": 0.5}
    assert store.get_score(run_id, {**key, "metric_version": "m-2"}) is None
    assert store.sql("SELECT run_id, label_set, metric_version FROM scores").values.tolist() == [
        [run_id, "ls", "m-1"]]
    path = next((store.run_dir(run_id) / "scores").glob("*.json"))
    path.write_text("{not json")  # a damaged entry is recomputed, not an error
    assert store.get_score(run_id, key) is None
    store.put_label_set("ls", {"dataset": "d"}, {"labels": pd.DataFrame({"key": ["a"], "labels": [[1]]})})
    store.put_score(run_id, key, {"result": {"AP": 0.5}}, label_sets=["ls"])
    assert store.get_score(run_id, key)["result"] == {"AP": 0.5}
    store.put_label_set("ls", {"dataset": "d"}, {"labels": pd.DataFrame({"key": ["a"], "labels": [[2]]})})
    assert store.get_score(run_id, key) is None  # computed from a label set since replaced
    with pytest.raises(HarnessError, match="no run 'nope'"):
        store.put_score("nope", key, {})
    store.delete_run(run_id)
    assert store.sql("SELECT count(*) AS n FROM scores")["n"][0] == 0
