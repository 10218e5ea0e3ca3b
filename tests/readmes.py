"""Commands as the READMEs write them: fenced code blocks, split into shell commands."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def code_blocks(readme: str, languages: tuple[str, ...]) -> list[str]:
    """The fenced code blocks of ``readme`` in these languages, in order."""
    blocks, language, lines = [], None, []
    for line in (REPO / readme).read_text().splitlines():
        if line.startswith("```"):
            if language is None:
                language, lines = line[3:].strip(), []
            else:
                if language in languages:
                    blocks.append("\n".join(lines))
                language = None
        elif language is not None:
            lines.append(line)
    return blocks


def split_commands(block: str) -> list[str]:
    """Shell commands of a block: lines, joined while a double quote is open or a line ends in a backslash;
    comment lines dropped."""
    out, current = [], ""
    for line in block.splitlines():
        current = f"{current}\n{line}" if current else line
        if current.count('"') % 2 == 0 and not current.endswith("\\"):
            out.append(current)
            current = ""
    return [c for c in out if c.strip() and not c.lstrip().startswith("#")]


def commands(readme: str, languages: tuple[str, ...] = ("bash", "sh", "")) -> list[str]:
    """Every shell command of ``readme``'s code blocks in these languages (default: bash, sh and unmarked), in
    order."""
    return [c for block in code_blocks(readme, languages) for c in split_commands(block)]


def documented(readme: str, pattern: str) -> str:
    """The one shell command of ``readme``'s code blocks that matches ``pattern``, comments stripped."""
    found = [c for c in commands(readme) if re.search(pattern, c)]
    assert len(found) == 1, f"{readme}: expected one command matching {pattern!r}, found {found}"
    return found[0]
