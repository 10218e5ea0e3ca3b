"""The app: a Starlette application over one store, served by uvicorn (``python -m reports serve``).

Starlette rather than FastAPI: the pages are server-rendered HTML plus a few JSON endpoints, so the routing,
requests and responses of Starlette are all that is used, and it adds no validation layer of its own
(every input is checked here, with the project's own error sentences). Endpoints are plain functions run
in uvicorn's thread pool, because the store's readers (DuckDB, pandas) block.

Every view is a URL with its state in the query string, so a link shows what the sender saw.
"""
from __future__ import annotations

import inspect
import ipaddress
from pathlib import Path
from typing import Iterable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from harness.errors import HarnessError
from harness.store import Store

from ..spec import LEADERBOARD_DIR
from . import compare, reviewpage, runpage, samples, views
from .boards import BoardCache
from .context import Context, Forbidden, NotFound
from .review import DEFAULT_TOP, open_review
from .reviewers import load_reviewers
from .classes import ensure_classes
from .static import ASSETS, asset_bytes

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8008


def _static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ASSETS:
        return views.error(404, f"no static file {name!r}; the app ships {', '.join(ASSETS)}")
    kind = "text/javascript" if name.endswith(".js") else "text/css"
    return Response(asset_bytes(name), media_type=kind, headers={"Cache-Control": "public, max-age=31536000"})


STATUS = ((NotFound, 404), (Forbidden, 403), (reviewpage.TooLarge, 413), (reviewpage.NotJson, 415),
          (HarnessError, 400))


def _failure(request: Request, exc: HarnessError) -> Response:
    """One sentence with the status its kind of error says: JSON for the API, a page for a person."""
    status = next(code for kind, code in STATUS if isinstance(exc, kind))
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": str(exc)}, status_code=status)
    return views.error(status, str(exc))


def create_app(store: Store, leaderboards: Path = LEADERBOARD_DIR, reviews: Iterable[str] = (),
               review_top: int = DEFAULT_TOP, reviewers: dict[str, str] | None = None) -> Starlette:
    """The application over ``store``; boards from the specs in ``leaderboards``; the reviews of the rankings
    ``reviews`` (their ``review_top`` suspects) open to ``reviewers`` (``{token: name}``)."""
    ensure_classes(store)
    context = Context(store, BoardCache(leaderboards),
                      {ranking: open_review(store, ranking, review_top) for ranking in reviews},
                      dict(reviewers or {}))

    def endpoint(view):
        if inspect.iscoroutinefunction(view):
            async def handle_async(request: Request) -> Response:
                try:
                    return await view(context, request)
                except HarnessError as exc:
                    return _failure(request, exc)
            return handle_async

        def handle(request: Request) -> Response:
            try:
                return view(context, request)
            except HarnessError as exc:
                return _failure(request, exc)
        return handle

    routes = [
        Route("/", lambda request: RedirectResponse("/boards")),
        Route("/static/{name}", _static),
        Route("/boards", endpoint(views.boards_index)),
        Route("/boards/{name}", endpoint(views.board_page)),
        Route("/api/boards/{name}", endpoint(views.board_json)),
        Route("/runs", endpoint(views.runs_index)),
        Route("/runs/{run}", endpoint(runpage.run_page)),
        Route("/runs/{run}/reliability.png", endpoint(runpage.reliability_png)),
        Route("/runs/{run}/confusion", endpoint(runpage.confusion_page)),
        Route("/samples/{dataset}/{key:path}", endpoint(samples.sample_page)),
        Route("/images/{dataset}/{key:path}", endpoint(samples.image)),
        Route("/compare", endpoint(compare.compare_page)),
        Route("/suspects/{ranking}", endpoint(samples.suspects_page)),
        Route("/gallery", endpoint(samples.query_gallery)),
        Route("/review/{ranking}", endpoint(reviewpage.review_page)),
        Route("/review/{ranking}/result/{label_set}", endpoint(reviewpage.result_page)),
        Route("/api/review/{ranking}/next", endpoint(reviewpage.next_json)),
        Route("/api/review/{ranking}/task/{task_id:path}", endpoint(reviewpage.task_json)),
        Route("/api/review/{ranking}/answer", endpoint(reviewpage.answer_json), methods=["POST"]),
        Route("/api/review/{ranking}/aggregate", endpoint(reviewpage.aggregate_json), methods=["POST"]),
    ]
    def not_found(request: Request, exc) -> Response:
        return views.error(404, f"no page at {request.url.path}; the app's pages are /boards, /runs and the links "
                                "from them")

    return Starlette(routes=routes, middleware=[Middleware(GZipMiddleware, minimum_size=2048)],
                     exception_handlers={404: not_found})


def check_host(host: str) -> str:
    """Only a loopback address is served (no reviewer tokens exist to guard anything wider)."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise HarnessError(f"--host {host} is not a loopback address; the app serves this machine only "
                           f"(use {DEFAULT_HOST} and an SSH tunnel to reach it from elsewhere)")
    return host


def serve(store: Store, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, leaderboards: Path = LEADERBOARD_DIR,
          quiet: bool = False, reviews: Iterable[str] = (), review_top: int = DEFAULT_TOP,
          reviewers_file: str | None = None) -> None:
    import uvicorn

    check_host(host)
    reviewers = load_reviewers(reviewers_file) if reviews else {}
    app = create_app(store, leaderboards, reviews, review_top, reviewers)
    print(f"realbench app on http://{host}:{port}/ over store {store.root} (Ctrl-C stops it)", flush=True)
    for ranking in reviews:
        for token, name in reviewers.items():
            print(f"review of {ranking} for {name}: http://{host}:{port}/review/{ranking}?token={token}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning" if quiet else "info", access_log=not quiet)
