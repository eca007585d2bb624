"""Common Crawl's columnar route inside a job: every fetch unit's captures, found by one join.

    unit files --TagCandidates--> (unit number, Candidate)
        --JoinColumnarIndex--> IndexHit (its tag: the unit)    (:mod:`pipeline.archive.cc_index`)
        --SpillHits--> (unit, hit file reference) --GroupByKey-->
        --WriteUnitCaptures--> RUN/fetch/captures/part-00007.parquet (one row per candidate)

With ``archive.columnar_index`` set, :func:`find_captures` runs this before the pages phase, for
the units that have no captures file yet (a rerun skips the others), then removes its spill.
The archive fetcher then takes each candidate's capture for the columnar source (the first
``warc`` source of ``archive.sources``: the crawl whose index it is) from its unit's file instead
of asking that source's CDX server; redirect targets and revisits' originals, a few per cent, are
still looked up there one by one. Millions of candidates thus cost one pass over the index rather
than millions of CDX queries, which Common Crawl's index server throttles.

As in the join, only file references cross the GroupByKey: hits are spilled a batch at a time,
one record batch per unit, and each unit's are gathered from those files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from foundation import storage
from foundation.config import ArchiveConfig, ArchiveSource
from foundation.records import Candidate
from foundation.shards import read_table, write_table
from pipeline.archive.capture import Capture
from pipeline.archive.cc_index import (
    IndexHit,
    JoinColumnarIndex,
    JoinSettings,
    check_index,
    read_batch,
    spill_groups,
    spill_name,
)

log = logging.getLogger(__name__)

CAPTURE_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("outcome", pa.string(), nullable=False),  # "" when found
        pa.field("url", pa.string()),
        pa.field("timestamp", pa.string()),
        pa.field("mime", pa.string()),
        pa.field("digest", pa.string()),
        pa.field("filename", pa.string()),
        pa.field("offset", pa.int64()),
        pa.field("length", pa.int64()),
    ]
)


def columnar_source(archive: ArchiveConfig) -> ArchiveSource | None:
    """The source the columnar index stands in for: the first one read by byte range (the
    config makes sure there is one); None without ``columnar_index``."""
    if not archive.columnar_index:
        return None
    return next(s for s in archive.archives if s.route == "warc")


def check_columnar(archive: ArchiveConfig, fetch_dir: str) -> None:
    """Stop a job before it starts over a columnar index it cannot use."""
    if columnar_source(archive) is not None:
        check_index(join_settings(archive, fetch_dir))


def captures_dir(fetch_dir: str) -> str:
    return storage.join(fetch_dir, "captures")


def captures_path(fetch_dir: str, unit_path: str) -> str:
    """``RUN/urls/part-00007.parquet`` -> ``RUN/fetch/captures/part-00007.parquet``."""
    name = unit_path.rsplit("/", 1)[-1].split(".", 1)[0]
    return storage.join(captures_dir(fetch_dir), f"{name}.parquet")


def join_settings(archive: ArchiveConfig, fetch_dir: str) -> JoinSettings:
    source = columnar_source(archive)
    return JoinSettings(
        index=(archive.columnar_index,),
        spill_dir=storage.join(captures_dir(fetch_dir), "spill"),
        source=source.name if source else "commoncrawl",
        as_of=archive.target_time,
        max_skew_days=archive.max_skew_days,
    )


def hit_row(hit: IndexHit) -> dict:
    c = hit.capture
    row = {"doc_id": hit.candidate.doc_id, "outcome": hit.outcome}
    if c is not None:
        row.update(url=c.url, timestamp=c.timestamp, mime=c.mime, digest=c.digest)
        row.update(filename=c.filename, offset=c.offset, length=c.length)
    return row


def _tag(item: tuple[int, str]) -> Iterator[tuple[int, Candidate]]:
    from pipeline.fetch import read_unit

    unit, path = item
    for c in read_unit(path):
        yield unit, c


def spill_hits(batch: list[IndexHit], spill_dir: str) -> Iterator[tuple[int, tuple[str, int]]]:
    """A batch of hits -> one Arrow file, a record batch per unit: ``(unit, ref)`` each."""
    table = pa.Table.from_pylist([hit_row(h) for h in batch], schema=CAPTURE_SCHEMA)
    units = np.fromiter((h.tag for h in batch), np.int64, len(batch))
    path = storage.join(spill_dir, "hits", spill_name(h.candidate.doc_id for h in batch) + ".arrow")
    yield from spill_groups(table, units, path)


def write_unit_captures(
    item: tuple[int, Iterable[tuple[str, int]]], unit_paths: list[str], fetch_dir: str
) -> str:
    """One unit's hits, gathered from the spill, -> its captures file (rows by doc id)."""
    unit, refs = item
    table = pa.Table.from_batches([read_batch(ref) for ref in sorted(refs)], CAPTURE_SCHEMA)
    path = captures_path(fetch_dir, unit_paths[unit])
    write_table(table.sort_by("doc_id"), path, "parquet")
    return path


class FindCaptures(beam.PTransform):
    """PBegin -> the captures files of ``unit_paths`` (see the module docstring)."""

    def __init__(
        self, archive: ArchiveConfig, fetch_dir: str, unit_paths: list[str], expected: int
    ):
        super().__init__()
        self.settings = join_settings(archive, fetch_dir)
        self.fetch_dir, self.unit_paths, self.expected = fetch_dir, unit_paths, expected

    def expand(self, pbegin):
        s = self.settings
        return (
            pbegin
            | "Units" >> beam.Create(list(enumerate(self.unit_paths)))
            | "SpreadUnits" >> beam.Reshuffle()
            | "TagCandidates" >> beam.FlatMap(_tag)
            | "JoinIndex" >> JoinColumnarIndex(s, self.expected)
            | "BatchHits"
            >> beam.BatchElements(
                min_batch_size=min(4096, s.batch_rows), max_batch_size=s.batch_rows
            )
            | "SpillHits" >> beam.FlatMap(spill_hits, s.spill_dir)
            | "ByUnit" >> beam.GroupByKey()
            | "WriteUnitCaptures" >> beam.Map(write_unit_captures, self.unit_paths, self.fetch_dir)
        )


def find_captures(archive: ArchiveConfig, fetch_dir: str, unit_paths: list[str], options) -> int:
    """Join the units that have no captures file yet (Beam ``options``); how many were joined.
    The spill is removed whatever happens."""
    todo = [
        p for p in unit_paths if not storage.exists(captures_path(fetch_dir, p)) and _rows(p) > 0
    ]
    if not todo:
        return 0
    expected = sum(_rows(p) for p in todo)
    spill = join_settings(archive, fetch_dir).spill_dir
    storage.remove(spill)  # what a killed run left
    log.info(
        "Joining %d candidates of %d units to the columnar index %s.",
        expected,
        len(todo),
        archive.columnar_index,
    )
    try:
        with beam.Pipeline(options=options) as p:
            _ = p | "FindCaptures" >> FindCaptures(archive, fetch_dir, todo, expected)
    finally:
        storage.remove(spill)
    return len(todo)


def _rows(path: str) -> int:
    fs, p = storage.resolve(path)
    with fs.open_input_file(p) as f:
        return pq.ParquetFile(f).metadata.num_rows


def unit_captures(
    archive: ArchiveConfig, fetch_dir: str, unit_path: str
) -> dict[str, Capture | str] | None:
    """The unit's captures by doc id (a Capture, or the outcome of a candidate the index has
    none for); None without a columnar index or without the unit's file."""
    source = columnar_source(archive)
    path = captures_path(fetch_dir, unit_path)
    if source is None or not storage.exists(path):
        return None
    out: dict[str, Capture | str] = {}
    for row in read_table(path).to_pylist():
        if row["outcome"]:
            out[row["doc_id"]] = row["outcome"]
            continue
        out[row["doc_id"]] = Capture(
            source=source.name,
            url=row["url"],
            timestamp=row["timestamp"],
            status=200,
            mime=row["mime"] or "",
            digest=row["digest"] or "",
            filename=row["filename"],
            offset=row["offset"],
            length=row["length"],
        )
    return out
