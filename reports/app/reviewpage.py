"""The review screens: one task at a time (keyboard only, the next image already loaded), the answer and
aggregate endpoints with every write checked, and the board of rank changes a new label set makes.

A write is refused, with one sentence and nothing stored, when: its body is over ``MAX_BODY`` bytes (413),
it is not JSON (415 / 400), it comes from another site (an ``Origin`` that is not this server's: 403),
it carries no known reviewer token (403), or it names an unknown task, label or answer (400)."""
from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from harness.errors import HarnessError
from harness.score import per_sample
from harness.store import Store

from .. import stats
from .context import Context, Forbidden, NotFound
from .pages import esc, page, table, url
from .review import Review, aggregate
from .samples import image_source

MAX_BODY = 16 * 1024


class TooLarge(HarnessError):
    """A request body over MAX_BODY (answered 413)."""


class NotJson(HarnessError):
    """A write whose body is not JSON (answered 415)."""


def _review(context: Context, ranking: str) -> Review:
    if ranking not in context.reviews:
        raise NotFound(f"no review of {ranking!r} is open in this server; start it with `python -m reports serve "
                       f"--review {ranking}` (open: {', '.join(context.reviews) or 'none'})")
    return context.reviews[ranking]


def _reviewer(context: Context, token) -> str:
    name = context.reviewers.get(token) if isinstance(token, str) else None
    if name is None:
        raise Forbidden("this review needs a reviewer's token (the link printed by the serve command); the token "
                        "given is missing or unknown")
    return name


def _task_view(context: Context, review: Review, task: dict, reviewer: str) -> dict:
    names = context.class_names(review.dataset)
    source = image_source(review.dataset, task["key"])
    size = "thumb" if review.dataset.startswith("cifar") else "full"
    return {**task, "names": [names.get(lab, str(lab)) for lab in task["labels"]],
            "given_name": names.get(task["given"], str(task["given"])),
            "image": f"/images/{review.dataset}/{task['key']}?size={size}" if source else None,
            "sample": f"/samples/{review.dataset}/{task['key']}",
            "answers": {str(k): v for k, v in review.answers_of(reviewer, task["task_id"]).items()}}


def review_page(context: Context, request: Request) -> Response:
    review = _review(context, request.path_params["ranking"])
    token = request.query_params.get("token")
    reviewer = _reviewer(context, token)
    body = ('<p>Reviewer <b id="reviewer">' + esc(reviewer) + '</b> · <span id="progress"></span> · '
            '<span id="status" class="note"></span></p>'
            '<div class="task"><div class="picture"><img id="image" alt="sample"><p id="key" class="note"></p></div>'
            '<div><p>Which labels are correct for this image?</p><ol id="labels" class="labels"></ol>'
            '<p class="keys">keys: <kbd>y</kbd> yes · <kbd>m</kbd> maybe · <kbd>n</kbd> no (then the next label) · '
            '<kbd>↑</kbd><kbd>↓</kbd> move · <kbd>0</kbd> none of these · <kbd>Enter</kbd> submit · '
            '<kbd>u</kbd> undo (back to the last task)</p></div></div>'
            '<details><summary>aggregate the answers into a label set</summary><form id="aggregate" '
            'onsubmit="return false"><label>name <input id="agg-name" required></label> '
            '<label>model <select id="agg-model"><option>majority-vote</option><option>dawid-skene</option>'
            '<option>one-coin</option></select></label> <label>threshold <input id="agg-threshold" value="0.5" '
            'size="4"></label> <button id="agg-go" type="button">aggregate</button> <span id="agg-result"></span>'
            '</form></details>')
    data = {"api": f"/api/review/{review.ranking}", "token": token, "total": len(review.tasks),
            "result": f"/review/{review.ranking}/result/"}
    return page(f"Review of {review.ranking}", body, script="review", data=data)


def next_json(context: Context, request: Request) -> Response:
    review = _review(context, request.path_params["ranking"])
    reviewer = _reviewer(context, request.query_params.get("token"))
    tasks = [_task_view(context, review, t, reviewer) for t in review.next_tasks(reviewer, 2)]
    return JSONResponse({"tasks": tasks, "done": review.done(reviewer), "total": len(review.tasks)})


def task_json(context: Context, request: Request) -> Response:
    review = _review(context, request.path_params["ranking"])
    reviewer = _reviewer(context, request.query_params.get("token"))
    return JSONResponse(_task_view(context, review, review.task(request.path_params["task_id"]), reviewer))


async def _json_body(context: Context, request: Request) -> dict:
    """The body of a write, checked: size, same origin, JSON object."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise TooLarge(f"the request body is over {MAX_BODY:,} bytes; an answer is a few hundred")
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin is not None and origin != own:
        raise Forbidden(f"a write from {origin} is refused: answers are accepted from pages of this server ({own}) "
                        "only")
    if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
        raise Forbidden("a write from another site is refused: answers are accepted from pages of this server only")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise NotJson("a write must be sent as application/json")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise TooLarge(f"the request body is over {MAX_BODY:,} bytes; an answer is a few hundred")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HarnessError("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HarnessError("the request body must be a JSON object")
    return data


async def answer_json(context: Context, request: Request) -> Response:
    review = _review(context, request.path_params["ranking"])
    data = await _json_body(context, request)
    reviewer = _reviewer(context, data.get("token"))
    stored = await run_in_threadpool(review.submit, reviewer, data.get("task_id"), data.get("answers"),
                                     data.get("submission"))
    return JSONResponse({"stored": stored, "done": review.done(reviewer), "total": len(review.tasks)})


async def aggregate_json(context: Context, request: Request) -> Response:
    review = _review(context, request.path_params["ranking"])
    data = await _json_body(context, request)
    _reviewer(context, data.get("token"))
    name = data.get("name")
    try:
        threshold = float(data.get("threshold", 0.5))
    except (TypeError, ValueError):
        raise HarnessError(f"threshold {data.get('threshold')!r} must be a number in (0, 1]") from None
    if not isinstance(name, str) or not name:
        raise HarnessError("name the new label set (a name of letters, digits, '.', '_', '+' or '-')")
    meta = await run_in_threadpool(aggregate, review, name, str(data.get("aggregator", "majority-vote")), threshold)
    return JSONResponse({"label_set": meta["name"], "version": meta.get("version"),
                         "result": f"/review/{review.ranking}/result/{meta['name']}"})


def rank_changes(store: Store, dataset: str, base: str, new: str, confidence: float = 0.95) -> list[dict]:
    """Every latest complete run of each name on ``dataset``: top-1 on ``base`` and ``new`` with Wilson
    intervals, the rank on each (by top-1, ties by name) and the change (positive: moved up)."""
    from relabel.errors import rater_runs

    rows = []
    for run in rater_runs(store, dataset):
        scores = {}
        for label_set in (base, new):
            correct = per_sample(store, run["run_id"], label_set)["correct_top1"].to_numpy(dtype=bool)
            scores[label_set] = stats.accuracy_wilson(correct, confidence) if len(correct) else None
        if all(scores.values()):
            rows.append({"name": run["name"], "run_id": run["run_id"], "base": scores[base], "new": scores[new]})
    for which in ("base", "new"):
        for rank, row in enumerate(sorted(rows, key=lambda r: (-r[which].estimate, r["name"])), 1):
            row[f"rank_{which}"] = rank
    for row in rows:
        row["change"] = row["rank_base"] - row["rank_new"]
    return sorted(rows, key=lambda r: (r["rank_new"], r["name"]))


def result_page(context: Context, request: Request) -> Response:
    review = _review(context, request.path_params["ranking"])
    new = request.path_params["label_set"]
    meta = context.store.label_set_meta(new)
    if meta.get("review_run") != review.run_id:
        raise NotFound(f"label set {new!r} was not made from the review of {review.ranking}")
    rows = rank_changes(context.store, review.dataset, review.base, new)

    def pct(iv) -> str:
        return f"{100 * iv.estimate:.2f} [{100 * iv.low:.2f}, {100 * iv.high:.2f}]"

    body = (f"<p>Label set <b>{esc(new)}</b> (version {esc(meta.get('version'))}): {esc(meta.get('description'))}; "
            f"{meta.get('answers', 0):,} answers of {esc(', '.join(meta.get('reviewers', [])))} aggregated by "
            f"{esc(meta.get('aggregator'))} at threshold {esc(meta.get('threshold'))}. Each run's top-1 on the base "
            f"set {esc(review.base)} and on {esc(new)} (95% Wilson intervals), and its change of rank.</p>"
            + table(["rank", "run", f"top-1 % {review.base}", f"top-1 % {new}", f"rank on {review.base}",
                     "rank change"],
                    [((str(r["rank_new"]), r["rank_new"]),
                      f'<a href="{url("/runs/" + r["run_id"], labels=new)}">{esc(r["name"])}</a>',
                      (pct(r["base"]), r["base"].estimate), (pct(r["new"]), r["new"].estimate),
                      (str(r["rank_base"]), r["rank_base"]),
                      (f'{r["change"]:+d}' if r["change"] else "0", r["change"])) for r in rows],
                    numeric=(0, 2, 3, 4, 5), raw=True, table_id="rank-changes"))
    return page(f"Rank changes: {review.base} → {new}", body, script="sortable")

