"""Spilled candidate files -> the ``urls/`` fetch units, without shuffling a single row.

The units are what :class:`foundation.write.WriteShards` would write from the candidates (the
same files, byte for byte): ``n = ceil(candidates / output.unit_urls)`` files, a candidate in
unit ``int(doc_id[:12], 16) % n``, rows sorted by doc id. WriteShards groups the rows
themselves by unit, which Beam's local runner holds in the driver; here

    [(fold file, rows), ...]  --plan_units-->   (fold file, n) once every fold is written
    (fold file, n)  --sort_by_unit-->  the file sorted by (unit, doc id), where each unit
                                       starts kept in its metadata
    [sorted files]  --plan_unit_runs-->  (run, (first unit, end, n, files)): as many runs of
                                       units as there are fold files
    run             --write_units-->   RUN/urls/part-UUUUU.parquet for each unit of the run

so only file names cross the shuffles: a fold count of them, and a run count of runs. Slices
per (fold, unit) would be a fold count times a unit count, both growing with the input (30k
at 6.4M submissions, 300k at 20M, all in the driver); a run's task finds them in the files.
A run writes about one fold's candidates, one unit at a time. The unit count reaches the
sorts through a Gather, not a side input (:mod:`foundation.gather`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa

from dedup.buckets import group_starts
from foundation import storage
from foundation.gather import Gather, Spread
from foundation.shards import URL_SCHEMA, ShardFile, shard_name, write_table
from pipeline.postings import SHARD_KEY, write_ipc


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


GROUP_STARTS = b"group_starts"
"""Metadata key of a file written by :func:`write_grouped`: where each group starts (n + 1
int64 row offsets)."""


def write_grouped(table: pa.Table, groups: np.ndarray, n: int, path: str) -> None:
    """``table`` sorted by its rows' group numbers (``groups``, each below ``n``; stable, so
    rows keep their order within a group) as an Arrow file that says where each group starts,
    so a reader takes a run of groups as one slice (:func:`read_grouped`)."""
    order = np.argsort(groups, kind="stable")
    metadata = {GROUP_STARTS: group_starts(groups[order], n).astype("<i8").tobytes()}
    write_ipc(table.take(pa.array(order)).replace_schema_metadata(metadata), path)


def read_grouped(path: str) -> tuple[pa.Table, np.ndarray]:
    """A file of :func:`write_grouped` (memory-mapped) and where each of its groups starts."""
    table = read_ipc(path)
    return table, np.frombuffer(table.schema.metadata[GROUP_STARTS], "<i8")


def sort_by_unit(item: tuple[str, int]) -> tuple[str, int]:
    """A fold's candidates (sorted by doc id) and the unit count -> the same file grouped by
    unit (:func:`write_grouped`; doc id order within a unit): (that file, the unit count)."""
    path, units = item
    table = read_ipc(path)
    out = path.removesuffix(".arrow") + ".by-unit.arrow"
    write_grouped(table, table.column(SHARD_KEY).to_numpy() % np.uint64(units), units, out)
    return out, units


UnitRun = tuple[int, int, int, tuple[str, ...]]
"""A run's first unit, its end, the unit count and every sorted fold file."""


def plan_unit_runs(files: list[tuple[str, int]]) -> Iterator[tuple[int, UnitRun]]:
    """Every sorted fold file -> (run, its units) per run: as many runs as files, so a run
    holds about one fold's candidates whatever the input's size."""
    units = files[0][1]
    runs = min(units, len(files))
    paths = tuple(sorted(path for path, _ in files))
    for r in range(runs):
        yield r, (r * units // runs, (r + 1) * units // runs, units, paths)


def write_units(item: tuple[int, UnitRun], directory: str) -> Iterator[ShardFile]:
    """One run of units -> each unit's Parquet file (rows sorted by doc id), written
    atomically; a unit no candidate falls in has no file."""
    _, (first, end, _units, paths) = item
    grouped = [read_grouped(path) for path in paths]
    for unit in range(first, end):
        parts = [
            t.slice(int(s[unit]), int(s[unit + 1] - s[unit]))
            for t, s in grouped
            if s[unit + 1] > s[unit]
        ]
        if parts:
            yield write_unit(unit, parts, directory)


def write_unit(unit: int, parts: list[pa.Table], directory: str) -> ShardFile:
    """One unit's slices -> its Parquet file (rows sorted by doc id), written atomically."""
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
            | "SortByUnit" >> beam.Map(sort_by_unit)
            | "AllSorted" >> Gather()
            | "Runs" >> beam.FlatMap(plan_unit_runs)
            | "SpreadRuns" >> Spread()
            | "WriteUnits" >> beam.FlatMap(write_units, self.directory)
        )
