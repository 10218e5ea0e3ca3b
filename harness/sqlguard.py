"""What ``harness sql`` runs without ``--write``: statements that only read, as DuckDB's own parser tells.

Every statement of the text is classified by ``duckdb.extract_statements`` (so comments, several
statements and any spelling are DuckDB's business, not a pattern's). Only ``SELECT`` statements pass
(``FROM ...``, ``WITH``, ``VALUES``, ``DESCRIBE``, ``SUMMARIZE``, ``SHOW`` are SELECTs to DuckDB).
An ``EXPLAIN`` runs its statement when it says ``ANALYZE`` (``EXPLAIN ANALYZE``, ``EXPLAIN (ANALYZE)``,
``EXPLAIN (FORMAT json, ANALYZE)``...), so an EXPLAIN passes only when the statement it explains,
found with DuckDB's tokenizer after the EXPLAIN options, passes itself. Anything the guard cannot
place is refused: it fails closed.

The connection a read runs on also loads no extension (neither installs nor auto-loads one) and its
configuration is locked, so that no SELECT can change a setting for the statements after it.

Reading files outside the store is allowed on purpose (``read_csv('my_classes.csv')`` joined with
the store's views): ``sql`` runs with the user's own file permissions and only ever reads them.
"""
from __future__ import annotations

import duckdb

from .errors import HarnessError

_READ = duckdb.StatementType.SELECT
_EXPLAIN = duckdb.StatementType.EXPLAIN
# Run on the connection before a read-only query: no extension comes in, and nothing can be set after.
READ_ONLY_SETTINGS = ("SET autoinstall_known_extensions = false", "SET autoload_known_extensions = false",
                      "SET allow_community_extensions = false", "SET lock_configuration = true")


def statements(query: str) -> list:
    """The statements of ``query`` as DuckDB parses them; text holding none is an error."""
    if not isinstance(query, str):
        raise HarnessError(f"a SQL query is text; got {type(query).__name__}")
    try:
        found = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise HarnessError(f"SQL error: {exc}") from None
    if not found:
        raise HarnessError("the SQL text holds no statement (it is empty or only comments); expected a query "
                           "such as: SELECT run_id, name FROM runs")
    return found


def check_read_only(query: str) -> None:
    """Refuse ``query`` unless every statement in it only reads (see the module docstring)."""
    for stmt in statements(query):
        refused = _refused_type(stmt)
        if refused is not None:
            raise HarnessError(
                f"{refused} statements change files or settings and the store's queries only read "
                f"({stmt.query.strip()[:60]!r}); ask for a writable connection to run it "
                "(python -m harness sql --write)")


def _refused_type(stmt, depth: int = 0) -> str | None:
    """None when the statement only reads; else the name of the type that does not."""
    if stmt.type == _READ:
        return None
    if stmt.type != _EXPLAIN or depth > 4:
        return stmt.type.name
    inner = explained(stmt.query)
    if inner is None:
        return "EXPLAIN"
    try:
        found = duckdb.extract_statements(inner)
    except duckdb.Error:
        return "EXPLAIN"
    if len(found) != 1:
        return "EXPLAIN"
    refused = _refused_type(found[0], depth + 1)
    return None if refused is None else f"EXPLAIN {refused}"


def explained(text: str) -> str | None:
    """The statement an EXPLAIN statement explains (its text after ``EXPLAIN``, ``ANALYZE`` and a
    parenthesised option list), by DuckDB's tokenizer; None when the text is not shaped so."""
    try:
        tokens = duckdb.tokenize(text)
    except duckdb.Error:
        return None
    bounds = [start for start, _ in tokens[1:]] + [len(text)]
    words = [(start, text[start:end].strip(), kind) for (start, kind), end in zip(tokens, bounds)
             if kind != duckdb.token_type.comment]
    if not words or words[0][1].upper() != "EXPLAIN":
        return None
    i = 1
    if i < len(words) and words[i][1].upper() in ("ANALYZE", "ANALYSE"):
        i += 1
    elif i < len(words) and words[i][1].startswith("("):
        depth = 0
        while i < len(words):
            _, word, kind = words[i]
            if kind == duckdb.token_type.operator:
                depth += word.count("(") - word.count(")")
            i += 1
            if depth <= 0:
                break
        if depth != 0:
            return None
    if i >= len(words):
        return None
    return text[words[i][0]:]
