"""``webtext ingest``: Reddit submissions (dumps or praw) to text shards in a run directory."""

from __future__ import annotations

import argparse
import logging

from webtext.commands.options import add_config_flags, resolve_config, write_resolved_config

log = logging.getLogger(__name__)

SECTIONS = ("source", "filter", "fetch", "archive", "extract", "quality", "dedup", "output")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="Reddit submissions -> fetched, extracted, filtered, deduplicated text shards",
        description=(
            "Read Pushshift dumps and/or list subreddits through praw, keep outbound links with "
            "enough karma, fetch them (live or from WARC), extract the main text and write "
            "deduplicated Parquet shards with a manifest into RUN_DIR/shards. Rerunning on the "
            "same run directory resumes where a killed run stopped."
        ),
    )
    parser.add_argument("dumps", nargs="*", help="dump files, globs or directories")
    parser.add_argument("--run-dir", help="run directory (output.run_dir)")
    parser.add_argument("--warc", action="append", help="replay pages from these WARC files")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--urls-only",
        action="store_true",
        help="stop after the URL phase (candidate URLs in RUN_DIR/urls); a rerun goes on",
    )
    add_config_flags(parser, SECTIONS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from foundation.layout import RunLayout
    from pipeline.ingest import check_ingest, check_urls, run_ingest, run_urls
    from webtext.summary import ingest_summary, urls_summary

    fixed = {"output.run_dir": args.run_dir}
    if args.dumps:
        fixed["source.dumps"] = tuple(args.dumps)
    if args.warc:
        fixed["fetch.backend"] = "warc"
        fixed["fetch.warc_inputs"] = tuple(args.warc)
    cfg = resolve_config(args, **fixed)
    layout = RunLayout.at(cfg.output.run_dir)
    if args.urls_only:
        seconds: dict[str, float] = {}
        urls = run_urls(cfg, layout, seconds)
        write_resolved_config(cfg, layout, "ingest")
        print(urls_summary(urls, seconds, layout.urls))
        check_urls(urls, layout.urls)
        return 0
    result = run_ingest(cfg, layout, progress=not args.no_progress)
    write_resolved_config(cfg, layout, "ingest")
    print(ingest_summary(result))
    check_ingest(cfg, result)
    return 0
