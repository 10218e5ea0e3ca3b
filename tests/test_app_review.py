"""Label review in the browser over a real CIFAR-10 ranking (the 30 published models' predictions and the
label_errors_cv run, ranked by ``python -m relabel errors``): keyboard answers, two reviewers, kill -9 of
the server, every bad write refused with nothing stored, and aggregation into a label set with rank changes."""
from __future__ import annotations

import json
import os
import signal
import urllib.request

import pytest

from harness.errors import HarnessError

from relabel.errors import review_proposals
from reports.app.review import ANSWERS_TABLE
from test_app_support import REPO, Server, screenshot

RANKING = "cifar10-original-errors"
TOP = 30


@pytest.fixture(scope="module")
def review_store(tmp_path_factory):
    from harness.cifar import import_shipped
    from harness.store import Store
    from harness.suites import get_suite
    from relabel.errors import find_label_errors, store_label_errors

    root = tmp_path_factory.mktemp("review")
    store = Store(root / "store")
    get_suite("cifar10").ensure_label_sets(store, ["cifar10-original"])
    import_shipped(store, suites=("cifar10",))
    table, raters = find_label_errors(store, "cifar10-test", "cifar10-original", 10)
    store_label_errors(store, RANKING, table, dataset="cifar10-test", label_set="cifar10-original", raters=raters,
                       aggregator="dawid-skene")
    reviewers = root / "reviewers.txt"
    reviewers.write_text("alice\nbob\n")
    return store, table, reviewers


@pytest.fixture(scope="module")
def server(review_store):
    store, _, reviewers = review_store
    server = Server(store.root, "--review", RANKING, "--review-top", str(TOP), "--reviewers", str(reviewers))
    yield server
    server.stop()


def tokens(reviewers) -> dict[str, str]:
    return dict(line.split() for line in reviewers.read_text().splitlines())


def stored(store, reviewer: str | None = None, top: int = TOP):
    # ANSWERS_TABLE's import registers the table, so its view exists (empty) before the first answer
    rows = store.sql(f"SELECT * FROM {ANSWERS_TABLE}_all WHERE run_id = ?", [f"review-{RANKING}-top{top}"])
    return rows if reviewer is None else rows[rows["reviewer"] == reviewer]


def post(server, path: str, body: bytes, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(server.base + path, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def answer_by_keyboard(page, table, rank: int, total: int = TOP) -> None:
    """Wait for suspect #rank, answer yes to the ranking's likely label and no to the others, press Enter, and
    wait until the server has acknowledged it (the reviewer's progress goes up by one)."""
    page.wait_for_function(f"document.getElementById('key').textContent.startsWith('suspect #{rank},')")
    page.wait_for_function("document.getElementById('progress').textContent !== ''")
    done = int(page.locator("#progress").inner_text().split()[0])
    likely = int(table.loc[table["rank"] == rank, "likely"].iloc[0])
    for item in page.locator("#labels li").all():
        page.keyboard.press("y" if int(item.get_attribute("data-label")) == likely else "n")
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.getElementById('progress').textContent.startsWith('{done + 1} of {total}')")


def next_rank(server, token: str) -> int:
    return json.loads(server.get(f"/api/review/{RANKING}/next?token={token}")[1])["tasks"][0]["rank"]


@pytest.mark.slow
def test_twenty_cifar10_suspects_reviewed_by_keyboard_with_undo(server, browser, review_store):
    store, table, reviewers = review_store
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    page.goto(f"{server.base}/review/{RANKING}?token={tokens(reviewers)['alice']}")
    assert page.locator("#reviewer").inner_text() == "alice"
    page.wait_for_function("document.getElementById('key').textContent.startsWith('suspect #1,')")
    assert page.locator("#key").inner_text() == "suspect #1, sample 2405, labelled cat"
    assert page.locator("#labels li .name").all_inner_texts() == ["cat", "frog"]
    screenshot(page, "review.png")
    keys = table["key"].tolist()
    for rank in range(1, 21):
        answer_by_keyboard(page, table, rank)
        # suspect #rank+1 is on screen and nothing more was typed, yet #rank+2's image is already loaded
        page.wait_for_function("url => performance.getEntriesByType('resource').some(e => e.name.endsWith(url))",
                               arg=f"/images/cifar10-test/{keys[rank + 1]}?size=thumb")
    rows = stored(store, "alice")
    assert sorted(rows["key"].unique()) == sorted(table["key"].head(20))
    likely = dict(zip(table["key"], table["likely"]))
    assert all((r.answer == "yes") == (r.label == likely[r.key]) for r in rows.itertuples())
    # undo: back to suspect #20 with its answers shown, answered again the other way round
    page.keyboard.press("u")
    page.wait_for_function("document.getElementById('key').textContent.startsWith('suspect #20,')")
    marks = page.locator("#labels li .mark").all_inner_texts()
    assert marks.count("yes") == 1 and set(marks) == {"yes", "no"}
    for _ in marks:
        page.keyboard.press("m")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('key').textContent.startsWith('suspect #21,')")
    rows = stored(store, "alice")
    key20 = table.loc[table["rank"] == 20, "key"].iloc[0]
    assert rows["submission"].nunique() == 21
    last = rows[rows["key"] == key20].sort_values("answered_at").tail(len(marks))
    assert set(last["answer"]) == {"maybe"}
    page.close()


def test_two_reviewers_in_two_browser_contexts_both_count(server, browser, review_store):
    store, table, reviewers = review_store
    before = {who: len(stored(store, who)) for who in ("alice", "bob")}
    start = {who: next_rank(server, tokens(reviewers)[who]) for who in ("alice", "bob")}
    contexts = [browser.new_context(), browser.new_context()]
    bob = contexts[0].new_page()
    bob.goto(f"{server.base}/review/{RANKING}?token={tokens(reviewers)['bob']}")
    alice = contexts[1].new_page()
    alice.goto(f"{server.base}/review/{RANKING}?token={tokens(reviewers)['alice']}")
    for turn in range(3):  # in turns, each on their own page, on the same tasks when both start at #1
        answer_by_keyboard(bob, table, start["bob"] + turn)
        answer_by_keyboard(alice, table, start["alice"] + turn)
    for who in ("alice", "bob"):
        ranks = range(start[who], start[who] + 3)
        candidates = review_proposals(table, start[who] + 2)
        keys = set(table.loc[table["rank"].isin(ranks), "key"].astype(str))
        assert len(stored(store, who)) == before[who] + sum(len(v) for k, v in candidates.items() if k in keys)
    both = stored(store)
    assert set(both.loc[both["key"] == str(table["key"].iloc[start["bob"] - 1]), "reviewer"]) >= {"bob"}
    assert set(both.loc[both["key"] == "2405", "reviewer"]) == {"alice", "bob"}  # both count on suspect #1
    for c in contexts:
        c.close()


@pytest.mark.parametrize("change, status, sentence", [
    ({"task_id": "nope#0"}, 400, "no task 'nope#0'"),
    ({"answers": {"3": "no", "7": "yes"}}, 400, "label '7' is not a candidate of task 2405#0"),
    ({"answers": {"3": "no", "6": "sure"}}, 400, "answer 'sure' for label 6 must be one of yes, maybe, no"),
    ({"answers": {"3": "no"}}, 400, "missing [6]"),
    ({"token": None}, 403, "needs a reviewer's token"),
    ({"token": "x" * 24}, 403, "needs a reviewer's token"),
    ({"submission": "a b"}, 400, "submission id must be"),
    ({"headers": {"Origin": "http://evil.example"}}, 403, "a write from http://evil.example is refused"),
    ({"headers": {"Content-Type": "text/plain"}}, 415, "must be sent as application/json"),
    ({"raw": b"{not json"}, 400, "not valid JSON"),
    ({"raw": b"[1, 2]"}, 400, "must be a JSON object"),
    ({"raw": b"{" + b" " * 20_000 + b"}"}, 413, "over 16,384 bytes"),
])
def test_a_bad_write_is_refused_in_one_sentence_and_nothing_is_stored(server, review_store, change, status,
                                                                       sentence):
    store, _, reviewers = review_store
    body = {"token": tokens(reviewers)["alice"], "task_id": "2405#0", "answers": {"3": "no", "6": "yes"},
            "submission": "bad-write-test-1"}
    headers = {"Content-Type": "application/json", **change.get("headers", {})}
    body.update({k: v for k, v in change.items() if k not in ("headers", "raw")})
    before = len(stored(store))
    code, answer = post(server, f"/api/review/{RANKING}/answer", change.get("raw", json.dumps(body).encode()),
                        headers)
    assert (code, sentence in answer["error"]) == (status, True), answer
    assert len(stored(store)) == before


def test_a_resubmission_is_stored_once(server, review_store):
    store, _, reviewers = review_store
    body = json.dumps({"token": tokens(reviewers)["bob"], "task_id": "3560#0", "answers": {"1": "no", "9": "yes"},
                       "submission": "double-click-0001"}).encode()
    headers = {"Content-Type": "application/json"}
    before = len(stored(store))
    code, answer = post(server, f"/api/review/{RANKING}/answer", body, headers)
    assert code == 200 and answer["stored"] is True
    first = len(stored(store))
    code, again = post(server, f"/api/review/{RANKING}/answer", body, headers)
    assert code == 200 and again["stored"] is False
    assert first == before + 2 and len(stored(store)) == first


@pytest.mark.slow
def test_kill_9_mid_review_loses_no_acknowledged_answer(review_store, browser):
    """Another review (top 10: its own run) on its own server, killed with SIGKILL after five answers."""
    store, table, reviewers = review_store
    args = ("--review", RANKING, "--review-top", "10", "--reviewers", str(reviewers))
    first = Server(store.root, *args)
    try:
        page = browser.new_page()
        page.goto(f"{first.base}/review/{RANKING}?token={tokens(reviewers)['alice']}")
        for rank in range(1, 6):
            answer_by_keyboard(page, table, rank, total=10)
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
    finally:
        first.stop()
    rows = stored(store, "alice", top=10)
    assert rows["key"].nunique() == 5
    again = Server(store.root, *args)
    try:
        code, body = again.get(f"/api/review/{RANKING}/next?token={tokens(reviewers)['alice']}")
        progress = json.loads(body)
        assert code == 200 and progress["done"] == 5 and progress["tasks"][0]["rank"] == 6
    finally:
        again.stop()
    assert not [p for p in (store.root / "runs" / f"run_id=review-{RANKING}-top10").iterdir()
                if p.name.startswith(".")]  # nothing half-written


@pytest.mark.slow
def test_aggregating_makes_a_versioned_label_set_and_a_board_of_rank_changes(server, browser, review_store):
    from harness.suites import get_suite

    store, table, reviewers = review_store
    # answers of both reviewers to the first three suspects (yes to the likely label), whatever ran before
    candidates = review_proposals(table, 3)
    likely = dict(zip(table["key"], table["likely"]))
    for who in ("alice", "bob"):
        for key, labels in candidates.items():
            body = {"token": tokens(reviewers)[who], "task_id": f"{key}#0", "submission": f"seed-{who}-{key}",
                    "answers": {str(lab): "yes" if lab == likely[key] else "no" for lab in labels}}
            assert post(server, f"/api/review/{RANKING}/answer", json.dumps(body).encode(),
                        {"Content-Type": "application/json"})[0] == 200
    reviewed = stored(store)["key"].nunique()
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(f"{server.base}/review/{RANKING}?token={tokens(reviewers)['alice']}")
    page.locator("details summary").click()
    page.locator("#agg-name").fill("cifar10-reviewed")
    page.locator("#agg-go").click()
    page.locator("#agg-link").click()
    page.wait_for_selector("#rank-changes")
    meta = store.label_set_meta("cifar10-reviewed")
    assert (meta["version"], meta["base"], meta["aggregator"]) == (2, "cifar10-original", "majority-vote")
    assert meta["reviewers"] == ["alice", "bob"] and meta["reviewed_keys"] == reviewed
    labels = dict(store.sql("SELECT key, labels FROM labels WHERE label_set = 'cifar10-reviewed'").itertuples(
        index=False))
    # alice said yes to the likely label of suspect #1; bob too: the sample now has that label
    assert list(labels["2405"]) == [6]
    rows = page.locator("#rank-changes tbody tr")
    # the 30 published models, label_errors_cv and the original labels imported as a run (which now lose)
    assert rows.count() == 32
    cifar = get_suite("cifar10")
    for row in rows.all()[:5]:
        cells = row.locator("td").all_inner_texts()
        run = store.resolve_run(cells[1], "cifar10-test")
        new = cifar.score(store, run["run_id"], "cifar10-reviewed")["top1"]
        base = cifar.score(store, run["run_id"], "cifar10-original")["top1"]
        assert cells[3].startswith(f"{100 * new:.2f} [") and cells[2].startswith(f"{100 * base:.2f} [")
        assert int(cells[5] if cells[5] != "0" else 0) == int(cells[4]) - int(cells[0])
    screenshot(page, "rank-changes.png")
    page.close()
    # the command does the same from the terminal
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "reports", "--store", str(store.root), "review-aggregate", RANKING,
                           "--review-top", str(TOP), "--name", "cifar10-reviewed-cli"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"registered label set cifar10-reviewed-cli (version 2, {reviewed} samples reviewed" in done.stdout
    assert store.sql("SELECT count(*) AS n FROM labels l JOIN labels r USING (key) WHERE l.label_set = "
                     "'cifar10-reviewed' AND r.label_set = 'cifar10-reviewed-cli' AND l.labels <> r.labels"
                     )["n"][0] == 0


def test_aggregation_takes_each_reviewers_latest_answer(tmp_path, shared_data):
    """Without a browser or server, on a ranking by three runs: an undo's later answer supersedes the earlier
    one, two reviewers both count, a resubmission is stored once, and the label set keeps the majority."""
    from harness.store import Store
    from harness.suites import get_suite
    from relabel.errors import find_label_errors, store_label_errors
    from reports.app.review import aggregate, latest_answers, open_review

    store = Store(tmp_path / "store")
    cifar = get_suite("cifar10")
    cifar.ensure_label_sets(store, ["cifar10-original"])
    for model in ("resnet_basic_32", "densenet_BC_100_12", "wide_resnet_tf"):
        cifar.import_predictions(store, shared_data / "cifar/cifar10_1_model_predictions/original_predictions" /
                                 f"{model}_predictions.json", model)
    table, raters = find_label_errors(store, "cifar10-test", "cifar10-original", 10)
    store_label_errors(store, "small-errors", table, dataset="cifar10-test", label_set="cifar10-original",
                       raters=raters, aggregator="dawid-skene")
    review = open_review(store, "small-errors", top=2)
    first, second = review.tasks.iloc[0], review.tasks.iloc[1]
    given, likely = int(first.given), int(table.loc[table["key"] == first.key, "likely"].iloc[0])
    assert likely != given and set(first.labels) >= {given, likely}
    no_to_all = {str(lab): "no" for lab in first.labels}
    yes_to_likely = {**no_to_all, str(likely): "yes"}
    assert review.submit("alice", first.task_id, no_to_all, "alice-first-1")
    assert review.submit("alice", first.task_id, yes_to_likely, "alice-undo-01")  # undo, answered again
    assert not review.submit("alice", first.task_id, yes_to_likely, "alice-undo-01")  # a double click
    assert review.submit("bob", first.task_id, {**no_to_all, str(likely): "maybe"}, "bob-first-01")
    assert review.submit("bob", second.task_id, {str(lab): "no" for lab in second.labels}, "bob-second-1")
    rows = review.answer_rows()
    assert len(rows) == 3 * len(first.labels) + len(second.labels)
    latest = latest_answers(rows)
    assert len(latest) == 2 * len(first.labels) + len(second.labels)
    mine = latest[(latest["rater"] == "alice") & (latest["key"] == first.key)]
    assert dict(zip(mine["label"], mine["answer"])) == {int(k): v for k, v in yes_to_likely.items()}
    # a server restarted on the same store resumes the same answers
    assert len(open_review(store, "small-errors", top=2).answer_rows()) == len(rows)
    meta = aggregate(review, "small-reviewed")
    assert (meta["version"], meta["reviewed_keys"], meta["reviewers"]) == (2, 2, ["alice", "bob"])
    labels = dict(store.sql("SELECT key, labels FROM labels WHERE label_set = 'small-reviewed'").itertuples(
        index=False))
    # yes + maybe = 1.5 of 2 votes for the likely label (>= 0.5); the second sample: every label no, left out
    assert list(labels[first.key]) == [likely] and list(labels[second.key]) == []
    original = dict(store.sql("SELECT key, labels FROM labels WHERE label_set = 'cifar10-original'").itertuples(
        index=False))
    assert len(labels) == 10_000 and all(list(labels[k]) == list(original[k]) for k in list(original)[:500]
                                         if k not in (first.key, second.key))
    with pytest.raises(HarnessError, match="already exists"):
        aggregate(review, "small-reviewed")


def test_suspects_gallery_and_the_sample_page_show_the_ranking_and_the_review(server, browser, review_store):
    store, table, _ = review_store
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{server.base}/suspects/{RANKING}")
    tiles = page.locator(".gallery a.tile")
    assert tiles.count() == 60 and "page 1 of 167" in page.locator(".pager").inner_text()
    first = table.iloc[0]
    assert tiles.first.inner_text().replace("\n", " ") == (
        f"{first.key} #1 cat → frog ({first.models_likely}/{first.raters} runs)")
    page.locator("select[name=class]").select_option(label="truck")
    page.wait_for_url("**class=9**")
    expected = table[(table["given"] == 9) | (table["likely"] == 9)]["key"].astype(str).tolist()
    assert [t.get_attribute("href").rsplit("/", 1)[1] for t in tiles.all()] == expected[:60]
    page.goto(f"{server.base}/samples/cifar10-test/2405")
    assert page.locator("#suspicion tbody tr").first.inner_text().split("\t")[:5] == [
        RANKING, "1 of 10,000", "1.0000", "3 cat", "6 frog"]
    reviewers = set(page.locator("#reviews tbody tr td:nth-child(2)").all_inner_texts())
    assert reviewers == set(stored(store).query("key == '2405'")["reviewer"])
    page.close()
