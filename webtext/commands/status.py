"""``webtext status RUN_DIR``: each stage's state, counts and sizes at a glance."""

from __future__ import annotations

import argparse

from foundation import storage
from foundation.errors import WebtextError
from webtext.status import FAILED, format_status, run_status


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="show what a run directory holds, stage by stage")
    parser.add_argument("run_dir", help="run directory (local path or URI)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not storage.is_dir(args.run_dir):
        what = "not a directory" if storage.exists(args.run_dir) else "no such run directory"
        raise WebtextError(f"{args.run_dir}: {what}")
    stages = run_status(args.run_dir)
    print(format_status(args.run_dir, stages))
    return 1 if any(s.state == FAILED for s in stages) else 0
