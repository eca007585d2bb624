"""Separating and counting drops without tagged outputs.

Beam's DaskRunner does not split tagged outputs, so a stage emits items and :class:`Drop`s in
one PCollection and these transforms separate them with plain filters: correct on every runner.
"""

from __future__ import annotations

import apache_beam as beam

from foundation.records import Drop, is_drop, is_item


class SplitDrops(beam.PTransform):
    """PCollection[T | Drop] -> (PCollection[T], PCollection[Drop])."""

    def expand(self, pcoll):
        items = pcoll | "Items" >> beam.Filter(is_item)
        drops = pcoll | "Drops" >> beam.Filter(is_drop)
        return items, drops


def reason_one(drop: Drop) -> tuple[str, int]:
    """(reason, 1): a drop as one count of its reason (summed where they are produced, by the
    commit step or a report's combine)."""
    return drop.reason, 1
