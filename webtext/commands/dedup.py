"""``webtext dedup``: exact and MinHash-LSH near-duplicate removal on existing text shards.

    webtext dedup RUN/shards --out RUN/dedup [--index INDEX] [--write-index INDEX]

Removes exact duplicates (same normalised text) and near duplicates from the shards and writes
new shards, their manifest and ``OUT/_report/`` (:mod:`dedup.shards` says how). With
``--index`` the documents are also deduplicated against a persisted index of an existing corpus;
``--write-index`` adds this run's kept documents to an index (the same path extends it in place;
a rerun replaces its own part rather than adding it twice).
"""

from __future__ import annotations

import argparse
import logging

from webtext.commands.options import add_config_flags, resolve_config

log = logging.getLogger(__name__)

SECTIONS = ("dedup", "output")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dedup",
        help="remove exact and near-duplicate documents from existing text shards",
        description=(
            "Read text shards (a directory with _manifest.json), remove exact and MinHash-LSH "
            "near duplicates (keeping one document per cluster, with the cluster's submissions), "
            "and write new shards and a manifest into --out, the report into --out/_report."
        ),
    )
    parser.add_argument("shards", help="input shard directory (with _manifest.json)")
    parser.add_argument("--out", required=True, help="output directory for shards and reports")
    parser.add_argument("--index", help="deduplicate against this persisted index (dedup.index)")
    parser.add_argument("--write-index", metavar="PATH", help="add the kept documents to an index")
    parser.add_argument(
        "--beam",
        action="append",
        default=[],
        metavar="ARG",
        help="a Beam pipeline option passed through (repeatable), e.g. --beam=--runner=...",
    )
    add_config_flags(parser, SECTIONS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dedup.shards import run_dedup
    from foundation import storage
    from foundation.layout import RunLayout

    fixed = {"dedup.index": args.index, "dedup.write_index": args.write_index}
    if args.beam:
        fixed["output.beam_args"] = tuple(args.beam)
    cfg = resolve_config(args, **fixed)
    layout = RunLayout.at(storage.parent(args.shards), shards=args.shards)
    print(run_dedup(cfg, layout, args.out))
    return 0
