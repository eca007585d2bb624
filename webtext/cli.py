"""The ``webtext`` command: one subcommand per job, each in its own module under commands/."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from foundation.config import ConfigError

# Subcommand name -> module under webtext.commands. Each module has register(subparsers).
COMMANDS = {
    "ingest": "ingest",
    "contamination": "contamination",
    "status": "status",
    "plan": "plan",
    "dedup": "dedup",
    "tokenize": "tokenize",
    "train": "train",
    "sample": "sample",
    "export": "export",
    "eval": "eval",
    "run": "run",
    "demo": "demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="webtext",
        description="The GPT-2 WebText recipe: Reddit links to clean shards, and a GPT-2 on them.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS.values():
        importlib.import_module(f"webtext.commands.{module}").register(sub)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 the job failed, 2 usage)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"webtext {args.command}: configuration error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"webtext {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
