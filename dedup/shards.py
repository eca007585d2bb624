"""The dedup stage on existing text shards: ``webtext dedup``'s one entry point.

Reads the shards a manifest lists, removes exact and near duplicates (:mod:`dedup.stage`) and
writes new shards, their manifest (committed last) and ``OUT/_report/`` (report.json,
report.md; the leading underscore keeps readers of OUT as a dataset from taking it for data).
"""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam

from foundation import storage
from foundation.beam import beam_options
from foundation.config import ConfigError, JobConfig
from foundation.layout import RunLayout
from foundation.shards import Manifest, read_table
from foundation.write import CommitShards

REPORT_DIR = "_report"


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
    with beam.Pipeline(options=beam_options(cfg.output)) as p:
        build_pipeline(p, cfg, manifest.paths(layout.shards), out)
    return DedupResult(out, Manifest.load(out))


def build_pipeline(p: beam.Pipeline, cfg: JobConfig, paths: list[str], out: str) -> None:
    """The dedup job's Beam graph; every output flows into the one manifest commit step."""
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
    } | "Commit" >> CommitShards(out, cfg.output, cfg.to_dict())


def _read_rows(path: str):
    yield from read_table(path).to_pylist()
