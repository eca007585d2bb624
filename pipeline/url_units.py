"""Spilled candidate files -> the ``urls/`` fetch units, without shuffling a single row.

The units are what :class:`foundation.write.WriteShards` would write from the candidates (the
same files, byte for byte): ``n = ceil(candidates / output.unit_urls)`` files, a candidate in
unit ``int(doc_id[:12], 16) % n``, rows sorted by doc id. WriteShards groups the rows
themselves by unit, which Beam's local runner holds in the driver; here

    [(fold file, rows), ...]  --plan_units-->   (fold file, n) once every fold is written
    (fold file, n)  --sort_by_unit-->  the file sorted by (unit, doc id)
                                       + (unit, (file, start, stop)) per run of a unit
    (unit, [slices])     --write_unit-->    RUN/urls/part-UUUUU.parquet

so only (file, offsets) cross the shuffle: a fold count times a unit count of small tuples.
The unit count reaches the sorts through a Gather, not a side input (:mod:`foundation.gather`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa

from foundation import storage
from foundation.gather import Gather, Spread
from foundation.shards import URL_SCHEMA, ShardFile, shard_name, write_table
from pipeline.postings import SHARD_KEY, write_ipc

Slice = tuple[str, int, int]


def n_units(candidates: int, per_unit: int) -> int:
    return max(1, math.ceil(candidates / per_unit))


def read_ipc(path: str) -> pa.Table:
    """A spilled Arrow file, memory-mapped (local) so a slice reads only its own rows."""
    fs, p = storage.resolve(path)
    if type(fs).__name__ == "LocalFileSystem":
        return pa.ipc.open_file(pa.memory_map(p)).read_all()
    with fs.open_input_file(p) as f:
        return pa.ipc.open_file(f).read_all()


def plan_units(files: list[tuple[str, int]], per_unit: int) -> Iterator[tuple[str, int]]:
    """Every candidates file (and its rows) -> (file, unit count) for each."""
    units = n_units(sum(rows for _, rows in files), per_unit)
    for path, _ in sorted(files):
        yield path, units


def sort_by_unit(item: tuple[str, int]) -> Iterator[tuple[int, Slice]]:
    """A fold's candidates (sorted by doc id) and the unit count -> the same file sorted by
    (unit, doc id), and the slice of each unit in it."""
    path, units = item
    table = read_ipc(path)
    unit = table.column(SHARD_KEY).to_numpy() % np.uint64(units)
    order = np.argsort(unit, kind="stable")  # stable: doc id order within a unit
    unit = unit[order]
    out = path.removesuffix(".arrow") + ".by-unit.arrow"
    write_ipc(table.take(pa.array(order)), out)
    present = np.unique(unit)
    starts = np.searchsorted(unit, present, side="left")
    stops = np.searchsorted(unit, present, side="right")
    for u, start, stop in zip(present.tolist(), starts.tolist(), stops.tolist(), strict=True):
        yield u, (out, start, stop)


def write_unit(item: tuple[int, Iterable[Slice]], directory: str) -> ShardFile:
    """One unit's slices -> its Parquet file (rows sorted by doc id), written atomically."""
    unit, slices = item
    parts = [read_ipc(path).slice(start, stop - start) for path, start, stop in sorted(slices)]
    table = pa.concat_tables(parts).sort_by("doc_id").select(URL_SCHEMA.names)
    table = table.cast(URL_SCHEMA).combine_chunks()
    return write_table(table, storage.join(directory, shard_name(unit, "parquet")), "parquet")


class WriteUnits(beam.PTransform):
    """PCollection[(spilled candidates file, rows)] -> PCollection[ShardFile] in ``directory``."""

    def __init__(self, directory: str, per_unit: int) -> None:
        super().__init__()
        if per_unit <= 0:
            raise ValueError(f"per_unit must be positive, got {per_unit}")
        self.directory, self.per_unit = directory, per_unit

    def expand(self, files):
        return (
            files
            | "AllFiles" >> Gather()
            | "Units" >> beam.FlatMap(plan_units, self.per_unit)
            | "SpreadFiles" >> Spread()
            | "SortByUnit" >> beam.FlatMap(sort_by_unit)
            | "ByUnit" >> beam.GroupByKey()
            | "WriteUnit" >> beam.Map(write_unit, self.directory)
        )
