"""The plumbing every command line of the project shares (``harness``, ``relabel``, ``reports``): the
options taken before or after the command (``--store``, ``--quiet``), opening the store, which options
a user actually gave, and the main loop that turns a :class:`HarnessError` into one line and exit code 2."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Iterable, Mapping

from .errors import HarnessError


def common_options(quiet: bool = True) -> argparse.ArgumentParser:
    """A parent parser for the main parser and every subparser. ``SUPPRESS`` keeps a subcommand's unset
    option from overwriting the value given before the command (argparse applies the subparser's
    defaults last); :func:`parse_args` fills in the real defaults."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", default=argparse.SUPPRESS,
                        help="store directory (default: $REALBENCH_HOME, else the user data directory)")
    if quiet:
        common.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress output")
    return common


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    args.store = getattr(args, "store", None)
    args.quiet = getattr(args, "quiet", False)
    return args


# Commands that only read a store: a store folder that does not exist is a typo, not a new store.
READING_COMMANDS = frozenset({"score", "sql", "runs", "catalog", "check", "rm", "compare", "robustness"})


def open_store(args: argparse.Namespace):
    """The store the command line names (``--store``), else the default one. A reading command refuses a
    store that does not exist instead of creating an empty one."""
    from pathlib import Path

    from .store import Store, default_store_dir

    if getattr(args, "command", None) in READING_COMMANDS:
        root = Path(args.store).expanduser() if args.store else default_store_dir()
        if not (root / "runs").is_dir():
            raise HarnessError(f"no store at {root} (a {args.command} command reads a store; check --store, or "
                               "import or run something first)")
    return Store(args.store)


def given_options(args: argparse.Namespace, defaults: argparse.Namespace, names: Iterable[str],
                  rename: Mapping[str, str] | None = None) -> dict:
    """The options among ``names`` that the user set (values other than the parser's defaults), keyed by
    their contract names (``rename`` maps an argparse dest such as ``labels`` to ``label_set``)."""
    rename = rename or {}
    return {rename.get(n, n): getattr(args, n) for n in names if getattr(args, n) != getattr(defaults, n)}


def run_main(parser: argparse.ArgumentParser, argv: list[str] | None,
             commands: Mapping[str, Callable[[argparse.Namespace], int]],
             interrupted: str = "interrupted") -> int:
    """Parse, run the command (``args.command`` names it), and report a bad input as one line, no traceback."""
    args = parse_args(parser, argv)
    try:
        return commands[args.command](args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not type(exc).__module__.endswith("duckdb"):
            raise
        # A file in the store that passed every check yet does not read (its bytes garbled in place).
        first = "".join(c if c.isprintable() else "?" for c in (str(exc).splitlines() or [""])[0][:300])
        print(f"error: reading the store failed ({first}); python -m harness check "
              "names damaged files and --repair moves them aside", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
