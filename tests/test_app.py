"""The web app (``python -m reports serve``) driven by a real browser (Debian's Chromium through Playwright)
over a store of real imports, and its terminal twin ``python -m reports run-report``."""
from __future__ import annotations

import html
import json
import subprocess
import sys

import duckdb
import numpy as np
import pandas as pd
import pytest

from harness import calibration
from harness.metrics import calibration_metrics
from reports.app.classes import ensure_classes

from test_app_support import REPO, Server, fill_store, screenshot


@pytest.fixture(scope="module")
def app_store(tmp_path_factory, shared_data):
    from harness.store import Store

    store = Store(tmp_path_factory.mktemp("app") / "store")
    return store, fill_store(store, shared_data)


@pytest.fixture(scope="module")
def server(app_store):
    server = Server(app_store[0].root)
    yield server
    server.stop()


def test_classes_table_names_every_class_for_sql_and_plain_duckdb(app_store, shared_data):
    store, _ = app_store
    ensure_classes(store)
    counts = dict(store.sql("SELECT dataset, count(*) AS n FROM classes GROUP BY dataset").itertuples(index=False))
    assert counts == {"imagenet-val": 1000, "cifar10-test": 10}
    tsv = (shared_data / "imagenet/imagenet_class_names.tsv").read_text().splitlines()
    assert store.sql("SELECT name, ident FROM classes WHERE dataset = 'imagenet-val' AND class_index = 285"
                     ).values.tolist() == [tsv[285].split("\t")[2:0:-1]]
    # The catalog a plain DuckDB user opens sees it too, joined to predictions: ResNet-56's most predicted class.
    con = duckdb.connect(str(store.catalog_path), read_only=True)
    top = con.execute("SELECT c.name, count(*) AS n FROM predictions p JOIN runs r USING (run_id) JOIN classes c "
                      "ON c.dataset = r.dataset AND c.class_index = p.top_classes[1] WHERE r.name = 'resnet_basic_56' "
                      "GROUP BY c.name ORDER BY n DESC, c.name LIMIT 1").fetchall()
    con.close()
    predictions = json.loads((shared_data / "cifar/cifar10_1_model_predictions/original_predictions/"
                              "resnet_basic_56_predictions.json").read_text())
    counts = np.bincount(predictions, minlength=10)
    assert top == [(("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                     "truck")[int(np.argmax(counts))], int(counts.max()))]


def test_typing_in_the_timm_board_filter_leaves_one_row(server, browser, shared_data):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(server.base + "/boards/timm-real")
    page.wait_for_selector("#board tbody tr")
    assert page.locator("#count").inner_text() == "1556 of 1556 rows"
    assert page.locator("#board tbody tr").count() == 100  # one page
    page.locator("#q").fill("tf_efficientnet_lite0")
    page.wait_for_function("document.querySelectorAll('#board tbody tr').length === 1")
    assert page.locator("#count").inner_text() == "1 of 1556 rows"
    row = page.locator("#board tbody tr")
    assert row.locator('td[data-col="model"]').inner_text() == "tf_efficientnet_lite0.in1k"
    # timm's published ReaL and original top-1 of that model (results-imagenet-real.csv)
    assert row.locator('td[data-col="relabelled"]').inner_text() == "81.96"
    assert row.locator('td[data-col="reference"]').inner_text() == "74.85"
    assert "q=tf_efficientnet_lite0" in page.url  # the view is a URL
    assert page.locator("#plot circle").count() == 1556  # every model, the others dimmed
    assert page.locator("#plot circle:not(.dim)").get_attribute("data-model") == "tf_efficientnet_lite0.in1k"
    # a click on a point selects its row: a dimmed one clears nothing, the filter stays; the highlighted one
    page.locator("#plot circle:not(.dim)").click()
    assert page.locator("#board tbody tr.selected").get_attribute("data-model") == "tf_efficientnet_lite0.in1k"
    screenshot(page, "board.png")
    # The same URL opened afresh shows the same one row.
    again = browser.new_page()
    again.goto(page.url)
    again.wait_for_function("document.querySelectorAll('#board tbody tr').length === 1")
    page.close(), again.close()


def test_run_page_shows_the_ece_of_the_tested_function_and_a_diagram(server, browser, app_store):
    store, runs = app_store
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(server.base + "/runs/ResNet50?labels=imagenet-original")
    rows = calibration.run_arrays(store, runs["resnet50"], "imagenet-original")
    ece = calibration.expected_calibration_error(rows["confidence"], rows["y_true"] == rows["y_pred"])
    assert float(page.locator("#ece").get_attribute("data-v")) == ece
    assert page.locator("#ece").inner_text() == f"{ece:.4f}"
    assert "--save-logits" in page.locator("#nll").inner_text()  # an imported file holds no full outputs
    # the headline: top-1 on both label sets of the dataset with Wilson intervals
    headline = page.locator("#headline tbody tr")
    assert headline.nth(0).inner_text().split("\t")[:3] == ["imagenet-original", "50,000", "76.13"]
    assert headline.nth(1).inner_text().split("\t")[:3] == ["real", "46,837", "82.96"]
    assert page.locator("img.diagram").evaluate("img => img.complete && img.naturalWidth > 0")
    screenshot(page, "run.png")
    # per-class accuracy by name, sortable: the lowest first after two clicks on its header
    page.locator("#per-class th", has_text="accuracy").click()
    page.locator("#per-class th", has_text="accuracy").click()
    assert page.locator("#per-class tbody tr").first.inner_text().split("\t")[:2] in (["638", "maillot"],
                                                                                      ["885", "velvet"])
    page.close()


def test_a_confusion_pair_links_to_its_images(server, browser, app_store, shared_data):
    store, runs = app_store
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(server.base + f"/runs/{runs['r56']}")
    first = page.locator("#pairs tbody tr").first
    assert first.inner_text().split("\t") == ["3 cat", "5 dog", "67"]
    first.locator("a.pair").click()
    page.wait_for_selector(".gallery")
    keys = calibration.cell_keys(store, runs["r56"], "cifar10-original", 3, 5)
    assert len(keys) == 67
    tiles = page.locator(".gallery a.tile")
    assert tiles.count() == 60 and "page 1 of 2" in page.locator(".pager").inner_text()
    assert [t.get_attribute("href").rsplit("/", 1)[1] for t in tiles.all()] == keys[:60]
    page.wait_for_function("[...document.querySelectorAll('.gallery img')].every(i => i.complete && i.naturalWidth)")
    truth = np.load(shared_data / "cifar/cifar10_test_labels.npy")
    predicted = json.loads((shared_data / "cifar/cifar10_1_model_predictions/original_predictions/"
                            "resnet_basic_56_predictions.json").read_text())
    assert all(truth[int(k)] == 3 and predicted[int(k)] == 5 for k in keys)
    # a tile opens the sample page: the image, its label by name and the run's prediction
    tiles.first.click()
    page.wait_for_selector("img.sample")
    assert page.locator("#labels tbody tr").first.inner_text() == "cifar10-original\t3 cat"
    predictions = dict(r.split("\t") for r in page.locator("#predictions tbody tr").all_inner_texts())
    assert predictions["resnet_basic_56"] == "5 dog"  # a file of top-1 classes: no scores
    pyx = np.load(shared_data / "cifar/cifar10_test_pyx.npy")[int(keys[0])]
    top5 = np.argsort(-pyx, kind="stable")[:5]
    names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    assert predictions["label_errors_cv"] == "; ".join(f"{c} {names[c]} ({pyx[c]:.3f})" for c in top5)
    page.close()


def test_run_report_prints_what_the_run_page_shows(app_store):
    store, runs = app_store
    out = subprocess.run([sys.executable, "-m", "reports", "--store", str(store.root), "run-report",
                          "resnet_basic_56", "--json"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    summary = json.loads(out)
    assert summary["label_set"] == "cifar10-original" and summary["n"] == 10_000
    assert summary["confused_pairs"][0] == {"true": 3, "predicted": 5, "n": 67, "true_name": "cat",
                                            "predicted_name": "dog"}
    cat = summary["per_class_accuracy"][3]
    assert (cat["name"], cat["n"], cat["correct"]) == ("cat", 1000, 846)
    assert summary["ece"] is None and "no probability" in summary["unavailable"]["ece"]
    assert {m.name for m in calibration_metrics()} <= set(summary)
    text = subprocess.run([sys.executable, "-m", "reports", "--store", str(store.root), "run-report",
                           "ResNet50", "--labels", "imagenet-original"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout
    rows = calibration.run_arrays(store, runs["resnet50"], "imagenet-original")
    ece = calibration.expected_calibration_error(rows["confidence"], rows["y_true"] == rows["y_pred"])
    assert f"ECE (15 bins): {ece:.4f}" in text and "top-1 on real: 82.96%" in text


@pytest.mark.parametrize("path, status, sentence", [
    ("/boards/nope", 404, "no leaderboard 'nope'"),
    ("/runs/nope", 404, "no run 'nope'"),
    ("/runs/ResNet50?labels=cifar10-original", 400, "does not label dataset 'imagenet-val'"),
    ("/runs/resnet_basic_56/confusion?true=3&pred=x", 400, "pred='x' must be a class index"),
    ("/images/cifar10-test/..%2F..%2F..%2Fetc%2Fpasswd", 404, "knows no image file"),
    ("/images/imagenet-val/..%2Fimagenet%2Freal.json", 404, "knows no image file"),
    ("/images/cifar10-test/12?size=huge", 400, "expected 'full' or 'thumb'"),
    ("/static/..%2F..%2Fserver.py", 404, "no page at /static/../../server.py"),
    ("/static/server.py", 404, "no static file 'server.py'"),
    ("/samples/cifar10-test/99999", 404, "holds key '99999'"),
])
def test_a_bad_url_gets_one_sentence(server, path, status, sentence):
    code, body = server.get(path)
    text = html.unescape(body.decode())
    assert code == status and sentence in text
    assert "Traceback" not in text


def test_a_thumbnail_is_made_once_and_served_from_the_cache(server, tmp_path):
    code, first = server.get("/images/cifar10-test/2405?size=thumb")
    assert code == 200 and first[:2] == b"\xff\xd8"
    code, again = server.get("/images/cifar10-test/2405?size=thumb")
    assert again == first
    from PIL import Image
    import io

    assert Image.open(io.BytesIO(first)).size == (160, 160)  # CIFAR's 32 px enlarged 5x
    code, full = server.get("/images/cifar10-test/2405")
    assert Image.open(io.BytesIO(full)).size == (32, 32)


def test_serve_refuses_an_address_beyond_this_machine(app_store):
    done = subprocess.run([sys.executable, "-m", "reports", "--store", str(app_store[0].root), "serve", "--host",
                           "0.0.0.0"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--host 0.0.0.0 is not a loopback address" in done.stderr


def test_two_runs_compared_with_the_images_of_each_off_diagonal_cell(server, browser, app_store, shared_data):
    store, runs = app_store
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(server.base + f"/runs/{runs['r56']}")
    page.locator("select[name=b]").select_option(label="label_errors_cv")
    page.locator("form[action='/compare'] button").click()
    page.wait_for_selector("#mcnemar")
    truth = np.load(shared_data / "cifar/cifar10_test_labels.npy")
    r56 = np.array(json.loads((shared_data / "cifar/cifar10_1_model_predictions/original_predictions/"
                               "resnet_basic_56_predictions.json").read_text())) == truth
    cv = np.load(shared_data / "cifar/cifar10_test_pyx.npy").argmax(1) == truth
    only_a, only_b = int((r56 & ~cv).sum()), int((cv & ~r56).sum())
    assert f"only resnet_basic_56 right {only_a:,}, only label_errors_cv right {only_b:,}" in \
        page.locator("#mcnemar").inner_text()
    assert page.locator("#a_only a").inner_text() == f"{only_a:,} samples"
    # the same numbers as `reports compare`
    out = subprocess.run([sys.executable, "-m", "reports", "--store", str(store.root), "compare", "resnet_basic_56",
                          "label_errors_cv", "--label-set", "cifar10-original"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert page.locator("#difference").inner_text().split("(")[0].strip() in out
    page.locator("#b_only a").click()
    page.wait_for_selector(".gallery")
    keys = [t.get_attribute("href").rsplit("/", 1)[1] for t in page.locator(".gallery a.tile").all()]
    assert keys == sorted(map(str, np.flatnonzero(cv & ~r56)))[:60]
    page.close()


def test_nll_and_brier_of_a_run_stored_with_its_full_outputs(tmp_path, shared_data):
    """A run holding logits (here the log of the label-errors study's cross-validated probabilities, stored as
    a run with ``--save-logits`` stores them) gives NLL and Brier, equal to the tested functions'."""
    from harness.store import Store
    from harness.suites import get_suite
    from reports.app.runpage import run_summary

    store = Store(tmp_path / "store")
    get_suite("cifar10").ensure_label_sets(store, ["cifar10-original"])
    pyx = np.load(shared_data / "cifar/cifar10_test_pyx.npy").astype(np.float64)
    pyx /= pyx.sum(axis=1, keepdims=True)
    top = np.argsort(-pyx, axis=1, kind="stable")[:, :5]
    store.write_run({"name": "cv-logits", "model": "cv-logits", "suite": "cifar10", "dataset": "cifar10-test",
                     "kind": "import", "num_classes": 10},
                    {"predictions": {"key": [str(i) for i in range(10_000)], "top_classes": top.tolist(),
                                     "top_scores": np.take_along_axis(pyx, top, 1).tolist(),
                                     "logits": np.log(np.maximum(pyx, 1e-30)).tolist(),
                                     "error": [None] * 10_000}})
    summary = run_summary(store, "cv-logits")
    truth = np.load(shared_data / "cifar/cifar10_test_labels.npy")
    assert summary["nll"] == pytest.approx(calibration.negative_log_likelihood(truth, pyx), rel=1e-6)
    assert summary["brier"] == pytest.approx(calibration.brier_score(truth, pyx), rel=1e-6)
    assert summary["ece"] == pytest.approx(calibration.expected_calibration_error(
        pyx.max(1), pyx.argmax(1) == truth), abs=1e-6)
    assert summary["unavailable"] == {}


def test_the_static_board_page_has_the_same_filter_box(app_store, browser, tmp_path):
    from reports.publish import render_leaderboard, write_files

    store, _ = app_store
    files = render_leaderboard(store, "timm-real", out=tmp_path)
    write_files(files)
    page = browser.new_page()
    page.goto((tmp_path / "timm-real.html").as_uri())
    assert page.locator("#filter-count").inner_text() == "1,556 of 1,556 rows"
    page.locator("#filter-model").fill("tf_efficientnet_lite0")
    visible = page.locator("#leaderboard tbody tr:visible")
    assert visible.count() == 1 and visible.get_attribute("data-model") == "tf_efficientnet_lite0.in1k"
    assert page.locator("#filter-count").inner_text() == "1 of 1,556 rows"
    page.locator("#filter-model").fill("")
    page.locator("#filter-n").fill("46838")  # more than ReaL's 46,837 labelled images: no row
    assert page.locator("#filter-count").inner_text() == "0 of 1,556 rows"
    page.close()


def test_real_raters_answers_are_found_by_key(shared_data):
    from relabel.ratings import YES_NO_MAYBE, Ratings
    from reports.app.raters import answers_by_key, answers_of

    long = pd.DataFrame({"rater": ["r2", "r1", "r1", "r3"], "answer": ["yes", "no", "maybe", "yes"],
                         "key": ["ILSVRC2012_val_00000002.JPEG", "ILSVRC2012_val_00000001.JPEG",
                                 "ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000001.JPEG"],
                         "label": ["5", "7", "3", "7"]})
    index = answers_by_key(Ratings.from_long(long, YES_NO_MAYBE))
    first = answers_of(index, "ILSVRC2012_val_00000001")
    assert first[["rater", "label", "answer"]].values.tolist() == [["r1", 3, "maybe"], ["r1", 7, "no"],
                                                                   ["r3", 7, "yes"]]
    assert answers_of(index, "ILSVRC2012_val_00000002")["answer"].tolist() == ["yes"]
    assert answers_of(index, "ILSVRC2012_val_00000003").empty


@pytest.mark.slow
def test_an_imagenet_sample_page_shows_the_real_raters_answers(server, browser, shared_data):
    """ILSVRC2012_val_00000580 (in the shipped subset; 13 proposed labels): its image, and every raw ReaL
    answer, counted from raters.npz directly."""
    key = "ILSVRC2012_val_00000580"
    raw = np.load(shared_data / "imagenet/raters.npz", allow_pickle=True)
    mine = np.flatnonzero(raw["info"][:, 0] == f"{key}.JPEG")
    answered = raw["tensor"][:, mine, :].sum()
    page = browser.new_page()
    page.goto(f"{server.base}/samples/imagenet-val/{key}")
    assert page.locator("img.sample").evaluate("img => img.complete && img.naturalWidth > 0")
    deadline = 0
    while page.locator("#raters-loading").count() and deadline < 120:
        page.wait_for_timeout(2000)
        deadline += 2
        page.reload()
    rows = page.locator("#raters tbody tr")
    assert rows.count() == int(answered) == 65
    yes = int(raw["tensor"][:, mine, 2].sum())
    assert [r.split("\t")[2] for r in rows.all_inner_texts()].count("yes") == yes
    page.close()


def test_a_detection_run_has_no_run_report_and_says_where_its_scores_are(store, shared_data):
    from harness.errors import HarnessError
    from harness.suites import get_suite
    from reports.app.runpage import run_summary

    coco = get_suite("coco")
    coco.import_ground_truth(store, shared_data / "coco/instances_val2014_100.json", "coco-val2014-100")
    run_id = coco.import_predictions(store, shared_data / "coco/instances_val2014_fakebbox100_results.json", "fake")
    with pytest.raises(HarnessError, match=f"run {run_id} is a detection run .suite coco.; the run page and "
                                           f"run-report show classification runs; its scores: python -m harness "
                                           f"score --run {run_id}"):
        run_summary(store, "fake")
