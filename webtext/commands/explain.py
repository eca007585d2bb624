"""``webtext explain``: why a URL is (or is not) in a run's shards.

    webtext explain RUN URL        (or a document id)

Prints each submission that posted the URL, its canonical form and the URL rules it met, its
fetch outcome and timings, extraction, quality and dedup (its survivor), and the shard it landed
in or the rule that removed it (:mod:`webtext.explain`).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="show a URL's whole path through a run: rules, fetch, dedup, shard or drop",
        description=(
            "Follow one URL (any spelling) or document id through a run directory: the "
            "submissions that posted it, the rules it met, its fetch outcome, extraction, "
            "quality and dedup, and the shard it landed in or the rule that removed it."
        ),
    )
    parser.add_argument("run", help="run directory (runs/NAME)")
    parser.add_argument("url", help="a URL as posted (any spelling) or a document id")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from webtext.explain import explain, render

    print(render(explain(args.run, args.url)))
    return 0
