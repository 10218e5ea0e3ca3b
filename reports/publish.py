"""Regenerate leaderboard files from the store: render everything in memory, then write atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from harness.store import Store, atomic_write_bytes

from .leaderboard import build
from .render import render_html, render_markdown, render_png
from .spec import LEADERBOARD_DIR, load_spec


def render_leaderboard(store: Store, name: str, directory: Path = LEADERBOARD_DIR,
                       left_out: Callable[[str], None] | None = None, out: Path | None = None) -> dict[Path, bytes]:
    """The files of one leaderboard (``.md``, ``.html``, ``.png`` in ``out``, by default next to its spec in
    ``directory``), as bytes.

    ``left_out`` is told each selected run the board leaves out (the files state only the rule)."""
    board = build(store, load_spec(name, directory))
    for note in board.left_out if left_out else ():
        left_out(note)
    png = render_png(board)
    out = directory if out is None else out
    return {out / f"{name}.md": render_markdown(board), out / f"{name}.html": render_html(board, png),
            out / f"{name}.png": png}


def write_files(files: dict[Path, bytes]) -> list[Path]:
    """Write the files whose bytes changed; returns those. Every file is replaced atomically."""
    changed = [p for p, data in files.items() if not p.is_file() or p.read_bytes() != data]
    for path in changed:
        atomic_write_bytes(path, files[path])
    return changed
