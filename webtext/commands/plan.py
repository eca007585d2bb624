"""``webtext plan``: storage, shuffle, memory, time and tokens for a target corpus."""

from __future__ import annotations

import argparse
import sys

WEBTEXT = {"links": 45e6, "docs": 8e6, "text_gb": 40.0}
"""GPT-2's WebText: 45 million links, 8 million documents, 40 GB of text."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="capacity plan: storage, shuffle, memory and time per stage, training tokens",
        description=(
            "Multiply a target corpus size by the per-document figures measured in our "
            "benchmarks (webtext/plan.py: Figures) and the job's dedup and contamination "
            "settings, and print the result at 1x and at --scale. Defaults: WebText's size."
        ),
    )
    parser.add_argument(
        "--links", type=float, default=WEBTEXT["links"], help="links fetched (45e6)"
    )
    parser.add_argument("--docs", type=float, default=WEBTEXT["docs"], help="documents kept (8e6)")
    parser.add_argument(
        "--text-gb", type=float, default=WEBTEXT["text_gb"], help="GB of text kept (40)"
    )
    parser.add_argument(
        "--submissions",
        type=float,
        help="submissions read from dumps (default: links x Figures.submissions_per_link)",
    )
    parser.add_argument("--scale", type=float, default=10.0, help="second column (10x)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from webtext.plan import Target, table

    try:
        target = Target(args.links, args.docs, args.text_gb * 1e9, args.submissions)
    except ValueError as e:
        print(f"webtext plan: {e}", file=sys.stderr)
        return 2
    if args.scale <= 0:
        print(f"webtext plan: --scale={args.scale}: must be positive", file=sys.stderr)
        return 2
    print(table(target, (1.0, args.scale)))
    return 0
