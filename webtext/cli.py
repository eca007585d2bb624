"""The ``webtext`` command: one subcommand per job, each in its own module under commands/."""

from __future__ import annotations

import argparse
import importlib
import sys

from foundation.config import ConfigError
from foundation.errors import WebtextError
from webtext.logs import configure_logging

# Subcommand name -> module under webtext.commands. Each module has register(subparsers).
COMMANDS = {
    "ingest": "ingest",
    "contamination": "contamination",
    "status": "status",
    "explain": "explain",
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
    (
        """Run the CLI; returns the exit code (0 ok, 1 the job failed, 2 usage or settings).

    The one place a user's error becomes ``webtext COMMAND: message``: every error a user can
    cause is a :class:`WebtextError`; anything else is a bug and keeps its traceback.
    """
        ""
    )
    args = parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except WebtextError as e:
        name = " ".join(filter(None, (args.command, getattr(args, "action", None))))
        print(f"webtext {name}: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"webtext {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(error: WebtextError) -> str:
    message = " ".join(str(error).split())
    return f"configuration error: {message}" if isinstance(error, ConfigError) else message


if __name__ == "__main__":
    sys.exit(main())
