"""``webtext contamination``: GPT-2's n-gram overlap report, decontamination, and the gate.

    webtext contamination check --train RUN/shards --test wikitext2=wiki.test.txt [--out DIR]
    webtext contamination check --train wiki.train.txt --test wikitext2=wiki.test.txt --out DIR
    webtext contamination decontaminate --shards RUN/shards --test lambada=l.jsonl --out RUN/clean
    webtext contamination gate --shards RUN/shards [--max-overlap-pct 1.0]

``check`` prints the per-test-set table and writes bloom.bin, report.json/.md/.html to ``--out``
(default: ``RUN/contamination`` when the training side is ``RUN/shards``).
"""

from __future__ import annotations

import argparse
import sys

from foundation.config import with_overrides
from webtext.commands.options import add_config_flags, resolve_config

SECTIONS = ("contamination",)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "contamination", help="n-gram overlap of test sets with training data (GPT-2 Table 6)"
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    check = sub.add_parser("check", help="build the Bloom filter, check test sets, write reports")
    check.add_argument(
        "--train", nargs="+", required=True, metavar="PATH", help="a shard dir, or files/folders"
    )
    check.add_argument(
        "--test", action="append", default=[], metavar="NAME=PATH", help="a test set (repeat)"
    )
    check.add_argument("--out", help="report directory (default: RUN/contamination)")
    add_config_flags(check, SECTIONS)
    check.set_defaults(func=run_check)

    decon = sub.add_parser("decontaminate", help="new shards without contaminated documents")
    decon.add_argument("--shards", required=True, help="input shard directory")
    decon.add_argument("--test", action="append", default=[], metavar="NAME=PATH")
    decon.add_argument("--out", required=True, help="new shard directory")
    add_config_flags(decon, SECTIONS)
    decon.set_defaults(func=run_decontaminate)

    gate = sub.add_parser("gate", help="exit 0 if the shards' report is current and under limit")
    gate.add_argument("--shards", required=True)
    gate.add_argument("--report", help="report.json (default: RUN/contamination/report.json)")
    add_config_flags(gate, SECTIONS)
    gate.set_defaults(func=run_gate)


def _test_sets(args: argparse.Namespace, cfg_sets: tuple[str, ...]) -> dict[str, str]:
    from contamination.sources import parse_test_sets

    return parse_test_sets([*cfg_sets, *args.test])


def _default_out(train: list[str]) -> str:
    from contamination.gate import default_report_path

    if len(train) == 1:
        return default_report_path(train[0]).rsplit("/", 1)[0]
    return "contamination"


def run_check(args: argparse.Namespace) -> int:
    from contamination.api import run_contamination
    from contamination.report import format_table
    from foundation.layout import RunLayout

    cfg = resolve_config(args)
    tests = (*cfg.contamination.test_sets, *args.test)
    cfg = with_overrides(cfg, {"contamination.test_sets": tests})
    if not cfg.contamination.test_sets:
        print("webtext contamination check: give at least one --test NAME=PATH", file=sys.stderr)
        return 2
    out = args.out or _default_out(args.train)
    layout = RunLayout.at(cfg.output.run_dir, contamination=out)
    print(format_table(run_contamination(cfg, layout, args.train)))
    print(f"reports: {out}/report.json, report.md, report.html")
    return 0


def run_decontaminate(args: argparse.Namespace) -> int:
    from contamination.decontaminate import decontaminate
    from contamination.sources import ReadOptions

    cfg = resolve_config(args).contamination
    tests = _test_sets(args, cfg.test_sets)
    if not tests:
        print("webtext contamination decontaminate: give --test NAME=PATH", file=sys.stderr)
        return 2
    opts = ReadOptions(text_docs=cfg.text_docs, field=cfg.field)
    res = decontaminate(args.shards, tests, args.out, cfg.decontaminate_n, opts)
    print(
        f"{res.docs_removed} of {res.docs_in} documents removed "
        f"(sharing {cfg.decontaminate_n}-grams with {', '.join(tests)}); "
        f"new shards in {res.out_dir}, details in {res.removed_path}"
    )
    return 0


def run_gate(args: argparse.Namespace) -> int:
    from contamination.gate import check_gate

    cfg = resolve_config(args).contamination
    res = check_gate(args.shards, args.report, cfg.max_overlap_pct)
    print(f"ok: {res.reason}")
    return 0
