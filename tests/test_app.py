"""The web app (``python -m reports serve``) driven by a real browser (Debian's Chromium through Playwright)
over a store of real imports, and its terminal twin ``python -m reports run-report``."""
from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import numpy as np
import pytest

from harness import calibration
from harness.metrics import calibration_metrics
from reports.app.classes import ensure_classes

from test_app_support import REPO, Server, browser_or_skip, fill_store, screenshot


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


@pytest.fixture(scope="module")
def browser():
    manager, browser = browser_or_skip()
    yield browser
    browser.close()
    manager.stop()


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
    assert page.locator("#plot circle").count() == 1
    screenshot(page, "board.png")
    # The same URL opened afresh shows the same one row.
    again = browser.new_page()
    again.goto(page.url)
    again.wait_for_function("document.querySelectorAll('#board tbody tr').length === 1")
    page.close(), again.close()
