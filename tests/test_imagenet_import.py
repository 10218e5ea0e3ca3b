"""Importing the five real ImageNet prediction files gives the published original / ReaL top-1."""
from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.suites import get_suite

EXPECTED = {  # name: (original top-1 %, ReaL top-1 %)
    "ResNet50": (76.13, 82.96),
    "ViT": (78.01, 83.99),
    "DINO": (76.75, 82.80),
    "SimCLR": (68.14, 75.65),
    "label_errors_resnet50_cv": (72.73, 77.61),
}


@pytest.fixture(scope="module")
def imported(tmp_path_factory, shared_data):
    from harness.store import Store

    store = Store(tmp_path_factory.mktemp("store"))
    real = get_suite("real")
    runs = {name: real.import_predictions(store, shared_data / "imagenet/model_predictions" / f"{name}.csv", name)
            for name in EXPECTED}
    return store, runs


@pytest.mark.parametrize("name", list(EXPECTED))
def test_five_files_score_the_published_numbers(imported, name):
    store, runs = imported
    real, imagenet = get_suite("real"), get_suite("imagenet")
    original = imagenet.score(store, runs[name])
    relabelled = real.score(store, runs[name])
    assert (round(100 * original["top1"], 2), round(100 * relabelled["top1"], 2)) == EXPECTED[name]
    assert original["n"] == 50_000 and original["label_set"] == "imagenet-original"
    assert relabelled["n"] == 46_837 and relabelled["n_labelled_in_label_set"] == 46_837
    assert relabelled["n_samples_in_dataset"] == 50_000


def test_sql_over_the_catalog_answers_questions(imported):
    store, runs = imported
    per_run = store.sql("""
        SELECT r.name, round(100 * avg(CASE WHEN list_contains(l.labels, p.top_classes[1]) THEN 1 ELSE 0 END), 2)
               AS real_top1, count(*) AS n
        FROM predictions p JOIN runs r USING (run_id) JOIN labels l USING (key)
        WHERE l.label_set = 'real' AND len(l.labels) > 0
        GROUP BY r.name ORDER BY r.name""")
    assert dict(zip(per_run["name"], per_run["real_top1"])) == {k: v[1] for k, v in EXPECTED.items()}
    assert set(per_run["n"]) == {46_837}
    # Images where ResNet50 and ViT disagree, and who is right on ReaL there.
    disagree = store.sql("""
        SELECT count(*) AS n,
               sum(list_contains(l.labels, a.top_classes[1])::INT) AS resnet_right,
               sum(list_contains(l.labels, b.top_classes[1])::INT) AS vit_right
        FROM predictions a JOIN predictions b USING (key) JOIN labels l USING (key)
        WHERE a.run_id = $a AND b.run_id = $b AND l.label_set = 'real' AND len(l.labels) > 0
          AND a.top_classes[1] <> b.top_classes[1]""".replace("$a", f"'{runs['ResNet50']}'")
                         .replace("$b", f"'{runs['ViT']}'"))
    n, resnet_right, vit_right = disagree.iloc[0]
    assert 0 < n < 46_837
    # Accuracy difference must equal the difference on the disagreeing images.
    assert (vit_right - resnet_right) == pytest.approx((83.99 - 82.96) / 100 * 46_837, abs=5)


def test_catalog_file_opens_in_plain_duckdb(imported):
    import duckdb

    store, runs = imported
    con = duckdb.connect(str(store.catalog_path), read_only=True)
    assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 5 * 50_000
    assert con.execute("SELECT count(*) FROM runs WHERE status = 'complete'").fetchone()[0] == 5
    con.close()


def test_catalog_is_rebuilt_when_lost(imported):
    store, _ = imported
    store.catalog_path.unlink()
    assert store.sql("SELECT count(DISTINCT run_id) AS n FROM predictions")["n"][0] == 5
    store.refresh_catalog()
    assert store.catalog_path.exists()


def _write(tmp_path, text):
    path = tmp_path / "preds.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("file_name,predicted_class\nILSVRC2012_val_00000001.JPEG,5\nfoo.JPEG,3\nbar.JPEG,3\n",
     "2 rows name files that are not in dataset imagenet-val, first at row 3: 'foo.JPEG'"),
    ("file_name,predicted_class\nILSVRC2012_val_00050001.JPEG,5\n", "first at row 2"),
    ("file_name,predicted_class\nILSVRC2012_val_00000001.JPEG,1000\n", "row 2 has class id 1000, outside 0...999"),
    ("file_name,predicted_class\nILSVRC2012_val_00000001.JPEG,-1\n", "row 2 has class id -1"),
    ("file_name,predicted_class\nILSVRC2012_val_00000001.JPEG,cat\n", "row 2 has class 'cat'"),
    ("file_name,predicted_class\nILSVRC2012_val_00000001.JPEG,1\nILSVRC2012_val_00000001.JPEG,2\n",
     "1 rows repeat a file already predicted, first at row 3"),
    ("name,guess\nILSVRC2012_val_00000001.JPEG,1\n", "no column for the file name"),
])
def test_bad_prediction_files_are_refused_whole(tmp_path, store, text, message):
    real = get_suite("real")
    with pytest.raises(HarnessError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        real.import_predictions(store, _write(tmp_path, text), "bad")
    assert store.list_runs() == []
    assert not list((store.root / "runs").iterdir())


def test_synset_names_and_topk_import(tmp_path, store):
    real = get_suite("real")
    path = tmp_path / "p.json"
    path.write_text('[{"file_name": "ILSVRC2012_val_00000002.JPEG", "top_classes": ["n09193705", 795, 3],'
                    ' "top_scores": [0.5, 0.3, 0.1]}]')
    run_id = real.import_predictions(store, path, "tiny")
    row = store.sql(f"SELECT key, top_classes FROM predictions WHERE run_id = '{run_id}'").iloc[0]
    assert row["key"] == "ILSVRC2012_val_00000002"
    assert list(row["top_classes"]) == [970, 795, 3]  # real.json: image 2 is [970, 795]
    result = real.score(store, run_id)
    assert (result["n"], result["top1"], result["pred2_in_labels"]) == (1, 1.0, 1.0)
