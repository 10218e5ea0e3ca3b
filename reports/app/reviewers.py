"""Reviewers and their tokens: a reviewer is a name; the link the serve command prints carries a random
token that identifies them (``/review/<ranking>?token=...``), and every answer must carry it.

``--reviewers FILE`` names them, one a line: ``name`` or ``name token``. Names without a token get one and
the file is rewritten (atomically, readable by its owner only), so a restarted server keeps every link
working. Without a file there is one reviewer, ``reviewer``, with a new token each start."""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from harness.errors import HarnessError
from harness.store import atomic_write_bytes

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def load_reviewers(path: str | os.PathLike | None) -> dict[str, str]:
    """``{token: name}`` from the reviewers file (tokens added where missing), or one default reviewer."""
    if path is None:
        return {secrets.token_urlsafe(18): "reviewer"}
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"reviewers file {path} does not exist; expected one reviewer a line: a name, optionally "
                           "followed by a token")
    out: dict[str, str] = {}
    lines, changed = [], False
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) > 2 or not _NAME.match(parts[0]) or (len(parts) == 2 and not _TOKEN.match(parts[1])):
            raise HarnessError(f"{path} line {n}: {line.strip()[:60]!r} is not 'name [token]' (a name of letters, "
                               "digits, '.', '_', '@' or '-'; a token of 16-128 URL-safe characters)")
        if parts[0] in out.values():
            raise HarnessError(f"{path} line {n}: reviewer {parts[0]!r} is listed twice")
        token = parts[1] if len(parts) == 2 else secrets.token_urlsafe(18)
        changed |= len(parts) == 1
        out[token] = parts[0]
        lines.append(f"{parts[0]} {token}")
    if not out:
        raise HarnessError(f"reviewers file {path} names no reviewer")
    if changed:
        atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
        os.chmod(path, 0o600)
    return out
