"""``webtext dedup``: exact and MinHash-LSH near-duplicate removal on existing text shards.

    webtext dedup RUN/shards --out RUN/dedup [--index INDEX] [--write-index INDEX]

Reads the shards a manifest lists, removes exact duplicates (same normalised text) and near
duplicates (dedup/transforms.py), and writes new shards into OUT with their manifest (written
last, by the one commit step every output flows into) and ``OUT/_report/`` (report.json,
report.md; the leading underscore keeps readers of OUT as a dataset from taking it for data). With
``--index`` the documents are also deduplicated against a persisted index of an existing corpus;
``--write-index`` adds this run's kept documents to an index (the same path extends it in place;
a rerun replaces its own part rather than adding it twice).
"""

from __future__ import annotations

import argparse
import logging
import sys

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


def build_pipeline(p, cfg, shards_dir: str, out: str) -> None:
    """The dedup job's Beam graph; every output flows into the one manifest commit step."""
    import apache_beam as beam

    from dedup.index import run_key
    from dedup.stage import Deduplicate
    from foundation.drops import reason_one
    from foundation.shards import TEXT_SCHEMA, Manifest
    from pipeline.write import CommitManifest, WriteShards, as_count, as_extra, as_file

    manifest = Manifest.load(shards_dir)
    manifest.verify(shards_dir, checksums=False)
    deduped = (
        p
        | "Shards" >> beam.Create(manifest.paths(shards_dir))
        | "Spread" >> beam.Reshuffle()
        | "Read" >> beam.FlatMap(_read_rows)
        | "Dedup" >> Deduplicate(cfg.dedup, report_dir(out), run_key(out))
    )
    docs = deduped.documents
    files = docs | "WriteShards" >> WriteShards(
        out, cfg.output.format, cfg.output.shard_docs, TEXT_SCHEMA
    )
    _ = (
        [
            files | "Files" >> beam.Map(as_file),
            docs | "CountDocs" >> beam.Map(_count_doc) | "Docs" >> beam.Map(as_count),
            deduped.extras | "Extras" >> beam.Map(as_extra),
            deduped.drops | "CountDrops" >> beam.Map(reason_one) | "Counts" >> beam.Map(as_count),
        ]
        | "CommitItems" >> beam.Flatten()
        | "Commit" >> CommitManifest(out, kind="text", fmt=cfg.output.format, config=cfg.to_dict())
    )


def report_dir(out: str) -> str:
    from foundation import storage

    return storage.join(out, "_report")


def _read_rows(path: str):
    from foundation.shards import read_table

    yield from read_table(path).to_pylist()


def _count_doc(_: object) -> tuple[str, int]:
    return "shards.documents", 1


def run(args: argparse.Namespace) -> int:
    import apache_beam as beam

    from foundation import storage
    from foundation.shards import Manifest, ShardError
    from pipeline.ingest import beam_options

    fixed = {"dedup.index": args.index, "dedup.write_index": args.write_index}
    if args.beam:
        fixed["output.beam_args"] = tuple(args.beam)
    cfg = resolve_config(args, **fixed)
    if storage.resolve(args.shards) == storage.resolve(args.out):
        print("webtext dedup: --out must differ from the input shard directory", file=sys.stderr)
        return 2
    try:
        with beam.Pipeline(options=beam_options(cfg.output)) as p:
            build_pipeline(p, cfg, args.shards, args.out)
        result = Manifest.load(args.out)
    except ShardError as e:
        print(f"webtext dedup: {e}", file=sys.stderr)
        return 1
    report = result.extra.get("dedup_report", {})
    removed = report.get("removed", {})
    print(
        f"dedup: {report.get('documents_in', '?')} documents in, {result.rows} out "
        f"(exact {removed.get('exact', 0)}, near {removed.get('near', 0)}, "
        f"near an indexed document {removed.get('near_existing', 0)}); "
        f"report: {storage.join(report_dir(args.out), 'report.md')}"
    )
    return 0
