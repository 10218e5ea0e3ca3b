"""The app: a Starlette application over one store, served by uvicorn (``python -m reports serve``).

Starlette rather than FastAPI: the pages are server-rendered HTML plus a few JSON endpoints, so the routing,
requests and responses of Starlette are all that is used, and it adds no validation layer of its own
(every input is checked here, with the project's own error sentences). Endpoints are plain functions run
in uvicorn's thread pool, because the store's readers (DuckDB, pandas) block.

Every view is a URL with its state in the query string, so a link shows what the sender saw.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from harness.errors import HarnessError
from harness.store import Store

from ..spec import LEADERBOARD_DIR
from . import runpage, samples, views
from .boards import BoardCache
from .context import Context, NotFound
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


def create_app(store: Store, leaderboards: Path = LEADERBOARD_DIR) -> Starlette:
    """The application over ``store``; boards from the specs in ``leaderboards``."""
    ensure_classes(store)
    context = Context(store, BoardCache(store, leaderboards))

    def endpoint(view):
        def handle(request: Request) -> Response:
            try:
                return view(context, request)
            except NotFound as exc:
                return views.error(404, str(exc))
            except HarnessError as exc:
                return views.error(400, str(exc))
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
          quiet: bool = False) -> None:
    import uvicorn

    check_host(host)
    app = create_app(store, leaderboards)
    if not quiet:
        print(f"realbench app on http://{host}:{port}/ over store {store.root} (Ctrl-C stops it)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning" if quiet else "info", access_log=not quiet)
