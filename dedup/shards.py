"""The dedup stage on existing text shards: ``webtext dedup``'s one entry point.

Reads the shards a manifest lists, removes exact and near duplicates and writes new shards,
their manifest (committed last) and ``OUT/_report/`` (report.json, report.md; the leading
underscore keeps readers of OUT as a dataset from taking it for data).

Without a persisted index the decisions are made from ids (:mod:`dedup.by_id`): output shard
``part-NNNNN`` holds what input shard NNNNN keeps, in input order, and ``OUT/_work/`` holds
the spill files while the job runs (removed after it). With ``dedup.index`` or
``dedup.write_index`` the documents flow through :class:`dedup.stage.Deduplicate`, which
carries sketches for the index, and shards are re-partitioned by id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import apache_beam as beam

from foundation import storage
from foundation.beam import beam_options
from foundation.config import ConfigError, JobConfig
from foundation.droplog import DropLog, drops_dir, part_counts
from foundation.errors import NoOutputError
from foundation.layout import RunLayout
from foundation.shards import Manifest, ShardFile, read_table
from foundation.write import (
    CommitManifest,
    CommitShards,
    as_count,
    as_drops,
    as_extra,
    as_file,
)

REPORT_DIR = "_report"
WORK_DIR = "_work"


@dataclass(frozen=True)
class DedupResult:
    out: str
    manifest: Manifest

    @property
    def report(self) -> str:
        return storage.join(self.out, REPORT_DIR, "report.md")

    def __str__(self) -> str:
        report = self.manifest.extra.get("dedup_report", {})
        removed = report.get("removed", {})
        return (
            f"dedup: {report.get('documents_in', '?')} documents in, {self.manifest.rows} out "
            f"(exact {removed.get('exact', 0)}, near {removed.get('near', 0)}, "
            f"near an indexed document {removed.get('near_existing', 0)}); report: {self.report}"
        )


def run_dedup(cfg: JobConfig, layout: RunLayout, out: str) -> DedupResult:
    """Deduplicate ``layout.shards`` into new shards in ``out``."""
    if storage.resolve(layout.shards) == storage.resolve(out):
        raise ConfigError(f"dedup output {out} must differ from the input shard directory")
    manifest = Manifest.load(layout.shards, "text")
    manifest.verify(layout.shards, checksums=False)
    with beam.Pipeline(options=beam_options(cfg.output, dask_partitions(cfg))) as p:
        build_pipeline(p, cfg, manifest.paths(layout.shards), out)
    work = storage.join(out, WORK_DIR)
    if storage.exists(work):
        storage.remove(work)
    result = DedupResult(out, Manifest.load(out))
    if result.manifest.rows == 0:  # written and committed all the same: the report says why
        raise NoOutputError(f"no documents kept out of {manifest.rows:,}; {result}")
    return result


def dask_partitions(cfg: JobConfig) -> str | None:
    """On Dask, the shards are cut into ``output.workers`` partitions (each scanned and written
    by one task) when deciding from ids, which has no side inputs; the in-memory path has."""
    if cfg.dedup.index or cfg.dedup.write_index:
        return None
    return f"--dask_npartitions={cfg.output.workers or os.cpu_count() or 1}"


def build_pipeline(p: beam.Pipeline, cfg: JobConfig, paths: list[str], out: str) -> None:
    """The dedup job's Beam graph; every output flows into the one manifest commit step."""
    if cfg.dedup.index or cfg.dedup.write_index:
        build_in_memory(p, cfg, paths, out)
    else:
        build_by_id(p, cfg, paths, out)


def build_by_id(p: beam.Pipeline, cfg: JobConfig, paths: list[str], out: str) -> None:
    """Shuffles carry ids, hashes and band keys; rows go from input shard to output shard."""
    from dedup.by_id import DedupById

    log = drop_log(cfg, out)
    deduped = (
        p
        | "Shards" >> beam.Create(list(enumerate(paths)))
        | "Spread" >> beam.Reshuffle()
        | "Dedup"
        >> DedupById(
            cfg.dedup,
            cfg.output,
            out,
            storage.join(out, WORK_DIR),
            storage.join(out, REPORT_DIR),
            log,
        )
    )
    items = (
        deduped.files | "Files" >> beam.Map(as_file),
        deduped.files | "CountDocs" >> beam.Map(_documents) | "DocCounts" >> beam.Map(as_count),
        deduped.drops | "DropCounts" >> beam.FlatMap(part_counts) | "Rules" >> beam.Map(as_count),
        deduped.drops | "LogDrops" >> beam.Map(as_drops),
        deduped.extras | "Extras" >> beam.Map(as_extra),
    )
    _ = (
        items
        | "CommitItems" >> beam.Flatten()
        | "Commit" >> CommitManifest(out, "text", cfg.output.format, cfg.to_dict(), drop_log=log)
    )


def drop_log(cfg: JobConfig, out: str) -> DropLog:
    """The removed documents are logged in ``RUN/drops/<out's name>`` (OUT's parent as RUN)."""
    return DropLog(drops_dir(out), cfg.output.max_drops_per_rule)


def _documents(shard: ShardFile) -> tuple[str, int]:
    return "shards.documents", shard.rows


def build_in_memory(p: beam.Pipeline, cfg: JobConfig, paths: list[str], out: str) -> None:
    """Documents flow through the Deduplicate transform (needed for the persisted index)."""
    from dedup.index import run_key
    from dedup.stage import Deduplicate

    deduped = (
        p
        | "Shards" >> beam.Create(paths)
        | "Spread" >> beam.Reshuffle()
        | "Read" >> beam.FlatMap(_read_rows)
        | "Dedup" >> Deduplicate(cfg.dedup, storage.join(out, REPORT_DIR), run_key(out))
    )
    _ = {
        "documents": deduped.documents,
        "drops": deduped.drops,
        "extras": deduped.extras,
    } | "Commit" >> CommitShards(out, cfg.output, cfg.to_dict(), drop_log=drop_log(cfg, out))


def _read_rows(path: str):
    yield from read_table(path).to_pylist()
