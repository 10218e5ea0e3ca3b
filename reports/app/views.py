"""The app's views: each takes the shared :class:`Context` and the request, reads through the store's, the
suites' and the metrics' public calls, and returns a response. Boards and the run list live here; the run
page in ``runpage``, samples and images in ``samples``."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..leaderboard import Board
from .boards import board_data
from .context import Context, NotFound
from .pages import error_page, esc, page, table, url


def error(status: int, sentence: str) -> Response:
    return error_page(status, sentence)


def _board_name(context: Context, request: Request) -> str:
    name = request.path_params["name"]
    names = context.boards.names()
    if name not in names:
        raise NotFound(f"no leaderboard {name!r}; the specs are {', '.join(names)}")
    return name


def boards_index(context: Context, request: Request) -> Response:
    items = "".join(f'<li><a href="{url("/boards/" + n)}">{esc(n)}</a></li>' for n in context.boards.names())
    return page("Leaderboards", f"<ul>{items}</ul>")


def board(context: Context, name: str) -> Board:
    return context.memo(("board", name), lambda: context.boards.build(context.store, name))


def board_json(context: Context, request: Request) -> Response:
    name = _board_name(context, request)
    body = context.memo(("board-json", name), lambda: JSONResponse(board_data(board(context, name))).body)
    return Response(body, media_type="application/json")


def board_page(context: Context, request: Request) -> Response:
    name = _board_name(context, request)
    board_ = board(context, name)
    body = (f'<p class="note">{esc((board_.spec.description or "").strip())}</p>'
            '<div id="plot" class="plot"></div>'
            '<form id="filters" class="filters" onsubmit="return false">'
            '<label>model <input id="q" type="search" placeholder="substring" autofocus></label> '
            '<label>source <select id="source"><option value="">any</option></select></label> '
            '<label>min n <input id="min_n" type="number" min="0" step="1"></label> '
            '<span id="count"></span>'
            '<details id="chooser"><summary>columns</summary><div id="columns"></div></details></form>'
            '<table id="board" class="board"><thead></thead><tbody></tbody></table>'
            '<p class="pager"><button id="prev" type="button">previous</button> <span id="page"></span> '
            '<button id="next" type="button">next</button></p>'
            f'<p class="note">The same board as <code>python -m reports leaderboard {esc(name)}</code> writes; '
            f'<a href="{url("/api/boards/" + name)}">as JSON</a>.</p>')
    return page(board_.spec.title, body, script="board", data={"api": f"/api/boards/{name}"})


def runs_index(context: Context, request: Request) -> Response:
    dataset = request.query_params.get("dataset")
    runs = [m for m in context.store.list_runs("complete") if not dataset or m.get("dataset") == dataset]
    rows = [(f'<a href="{url("/runs/" + m["run_id"])}">{esc(m.get("name"))}</a>', esc(m.get("suite")),
             esc(m.get("dataset")), esc(m.get("kind", "")), esc(m.get("created_at", "")[:19])) for m in runs]
    return page("Runs", table(["run", "suite", "dataset", "kind", "created"], rows, raw=True))

