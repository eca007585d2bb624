"""The whole dedup stage as one Beam transform: exact, then near, then the index and the report.

    out = docs | "Dedup" >> Deduplicate(cfg.dedup, report_dir, key)
    out.documents   # PCollection[dict]: the survivors
    out.drops       # PCollection[Drop]: dedup.exact, dedup.near, dedup.near_existing
    out.extras      # PCollection[(name, value)]: dedup_report (and dedup_index) for the manifest

``webtext ingest`` and ``webtext dedup`` both end in it, so a corpus deduplicated inside the
ingestion job and one deduplicated afterwards go through the same steps. ``key`` names this run
in a persisted index (:func:`dedup.index.run_key` of the output directory).
"""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam

from dedup.exact import ExactDedup
from dedup.index import WriteIndex
from dedup.transforms import NearDedup
from foundation.config import DedupConfig
from foundation.drops import SplitDrops, reason_one


class DedupOutputs(NamedTuple):
    documents: beam.PCollection
    drops: beam.PCollection
    extras: beam.PCollection


class Deduplicate(beam.PTransform):
    """PCollection[dict] (TEXT_SCHEMA rows) -> DedupOutputs, as ``cfg`` enables each step."""

    def __init__(self, cfg: DedupConfig, report_dir: str, key: str):
        super().__init__()
        self.cfg, self.report_dir, self.key = cfg, report_dir, key

    def expand(self, docs):
        cfg = self.cfg
        p = docs.pipeline
        drops, extras = [], []
        exact_counts = None
        if cfg.exact:
            docs, exact_drops = docs | "Exact" >> ExactDedup() | "SplitExact" >> SplitDrops()
            drops.append(exact_drops)
            exact_counts = exact_drops | "ExactCounts" >> beam.Map(reason_one)
        if cfg.near:
            near = docs | "Near" >> NearDedup(cfg, skip_run=self.key)
            docs, near_drops = near.documents | "SplitNear" >> SplitDrops()
            drops.append(near_drops)
            extras.append(near.report(self.report_dir, extra_stats=exact_counts))
            if cfg.write_index:
                extras.append(
                    near.sketches | "WriteIndex" >> WriteIndex(cfg.write_index, cfg, self.key)
                )
        return DedupOutputs(docs, _flatten(p, drops, "Drops"), _flatten(p, extras, "Extras"))


def _flatten(p: beam.Pipeline, pcolls: list, label: str) -> beam.PCollection:
    if not pcolls:
        return p | f"No{label}" >> beam.Create([])
    return pcolls | f"All{label}" >> beam.Flatten()
