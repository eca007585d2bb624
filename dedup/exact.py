"""Exact-duplicate removal: one document per normalised text.

    PCollection[dict (TEXT_SCHEMA row) | Drop] --ExactDedup()--> PCollection[dict | Drop]

Documents are grouped by ``content_hash`` (the hash of the normalised text,
:mod:`pipeline.text` says what counts as the same text). Each group keeps one survivor by
:func:`dedup.survivor.merge_cluster` (highest karma, then earliest, then smallest id), which
inherits every submission of the group; the others become ``dedup.exact`` drops naming the
survivor. The survivor depends only on the group's contents, never on arrival order or the
number of workers. Drops from earlier stages pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from dedup.survivor import merge_cluster
from foundation.records import Drop, is_drop, is_item

EXACT = "dedup.exact"


def _by_hash(doc: dict) -> tuple[str, dict]:
    return doc["content_hash"], doc


def resolve_group(group: tuple[str, Iterable[dict]]) -> Iterator[dict | Drop]:
    """The survivor of one content hash's documents, then a Drop for each other one."""
    _, docs = group
    survivor, removed = merge_cluster(list(docs))
    yield survivor
    for doc in removed:
        Metrics.counter("dedup", EXACT).inc()
        yield Drop(
            EXACT,
            where=doc["id"],
            detail=survivor["id"],
            id=doc["id"],
            url=doc.get("url", ""),
            kept=survivor["id"],
        )


class ExactDedup(beam.PTransform):
    """PCollection[dict | Drop] -> PCollection[dict | Drop]: one document per content hash."""

    def expand(self, pcoll):
        drops = pcoll | "PassDrops" >> beam.Filter(is_drop)
        survivors = (
            pcoll
            | "Docs" >> beam.Filter(is_item)
            | "ByHash" >> beam.Map(_by_hash)
            | "Group" >> beam.GroupByKey()
            | "Survivor" >> beam.FlatMap(resolve_group)
        )
        return (drops, survivors) | "Merge" >> beam.Flatten()
