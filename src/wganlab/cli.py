"""The ``wganlab`` command line: a thin layer over the library API."""

from __future__ import annotations

import argparse
import sys

from wganlab.errors import WganlabError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wganlab", description=__doc__)
    parser.add_subparsers(dest="command", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a :class:`WganlabError` becomes a one-line message and exit status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except WganlabError as e:
        print(f"wganlab: error: {e}", file=sys.stderr)
        return 2
