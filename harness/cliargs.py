"""The options every command line of the project takes (``harness``, ``relabel``, ``reports``),
accepted both before and after the command."""
from __future__ import annotations

import argparse


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
