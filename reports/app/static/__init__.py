"""The app's JavaScript and CSS, shipped in the package (no CDN): plain files written for realbench, no
third-party code. Their URLs carry a digest of their bytes, so a browser never runs a stale copy."""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
ASSETS = ("app.js", "app.css")


@functools.lru_cache(maxsize=None)
def asset_bytes(name: str) -> bytes:
    return (FOLDER / name).read_bytes()


def asset_url(name: str) -> str:
    return f"/static/{name}?v={hashlib.sha256(asset_bytes(name)).hexdigest()[:12]}"
