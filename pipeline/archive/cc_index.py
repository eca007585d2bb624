"""Candidates joined to Common Crawl's columnar URL index: each one's capture nearest its date.

    JoinColumnarIndex(settings): PCollection[Candidate] -> PCollection[IndexHit]

Common Crawl publishes, per crawl, a Parquet table of its captures
(``s3://commoncrawl/cc-index/table/cc-main/warc/crawl=CC-MAIN-2017-51/subset=warc/*.parquet``)
with, among others, ``url_surtkey``, ``url``, ``fetch_time``, ``fetch_status``,
``content_digest``, ``content_mime_detected``, ``warc_filename``, ``warc_record_offset`` and
``warc_record_length``: millions of candidates then cost one pass over it, not millions of CDX
requests. How, in memory bounded by settings rather than by either side's size:

* candidates are keyed by SURT (the ``surt`` library, which CC's ``url_surtkey`` comes from, so
  ``http://www.Example.com/a?b=2&a=1`` meets ``https://example.com/a?a=1&b=2``) and spilled,
  ``batch_rows`` at a time, to Arrow files under ``spill_dir/candidates``, one record batch per
  hash bucket of the key (:func:`pipeline.postings.bucket_of`, as URL dedup's postings);
* the index is read one row group of one file per task, ``batch_rows`` rows at a time and only
  the columns above; rows with ``fetch_status`` 200 are spilled the same way under
  ``spill_dir/index`` (files under a ``subset=`` directory other than ``subset=warc``, CC's
  robots.txt and crawl-diagnostics captures, are skipped);
* only ``(bucket, file reference)`` pairs cross the GroupByKey; each bucket is then joined alone,
  holding its candidates (about ``bucket_candidates``) and one index batch at a time, which
  ``pyarrow.compute.is_in`` cuts to the rows of its keys before any Python sees them;
* per candidate, among the captures of its key within ``max_skew_days`` of its target time
  (``as_of``, or the candidate's ``created_utc``), the nearest wins; ties go to the earlier
  capture, then file and offset, so the choice does not depend on file order.

Spill files are named from their input (a batch's doc ids, an index file and row group), so a
retried task rewrites the same file; the caller removes ``spill_dir`` when done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from foundation import storage
from foundation.errors import WebtextError
from foundation.records import Candidate, candidate_from_row, candidate_to_row
from foundation.shards import URL_SCHEMA
from pipeline.archive.capture import Capture
from pipeline.postings import bucket_of, n_buckets

NO_CAPTURE = "archive.no_capture"
TOO_FAR = "archive.too_far"
REQUIRED = (
    "url_surtkey",
    "url",
    "fetch_time",
    "fetch_status",
    "warc_filename",
    "warc_record_offset",
    "warc_record_length",
)
OPTIONAL = ("content_digest", "content_mime_detected", "content_mime_type")
INDEX_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("url", pa.string()),
        ("time", pa.int64()),  # unix seconds
        ("mime", pa.string()),
        ("digest", pa.string()),
        ("filename", pa.string()),
        ("offset", pa.int64()),
        ("length", pa.int64()),
    ]
)
CANDIDATE_SCHEMA = (
    URL_SCHEMA.append(pa.field("key", pa.string()))
    .append(pa.field("target", pa.int64()))
    .append(pa.field("tag", pa.int64()))
)
_IPC = pa.ipc.IpcWriteOptions(compression="lz4")


class IndexInputError(WebtextError, FileNotFoundError):
    """An ``archive.columnar_index`` entry matches no Parquet file or lacks a needed column."""


@dataclass(frozen=True)
class JoinSettings:
    """What the join needs of ``[archive]`` (the caller builds it from ArchiveConfig)."""

    index: tuple[str, ...]  # Parquet files, directories or globs (archive.columnar_index)
    spill_dir: str
    source: str = "commoncrawl"  # the Capture.source of what is found
    as_of: int | None = None  # unix time of a fixed snapshot; None: each candidate's created_utc
    max_skew_days: float = 365.0
    bucket_candidates: int = 100_000  # candidates per join bucket: a join step's memory
    batch_rows: int = 65_536  # rows read or spilled at a time

    def __post_init__(self) -> None:
        for name in ("max_skew_days", "bucket_candidates", "batch_rows"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class IndexHit:
    """A candidate and its chosen capture; with none, ``outcome`` says why."""

    candidate: Candidate
    capture: Capture | None
    outcome: str = ""  # "" when found, else NO_CAPTURE or TOO_FAR
    tag: int = -1  # what the candidate came in with (a job's fetch unit), -1 if nothing


def surt_key(url: str) -> str | None:
    """The SURT key CDX servers and CC's ``url_surtkey`` use; None for an unparsable URL."""
    from surt import surt

    try:
        return surt(url)
    except Exception:  # the library raises a variety of errors on malformed URLs
        return None


def timestamp14(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y%m%d%H%M%S")


# --- spilling ---------------------------------------------------------------------------------


def spill_name(parts: Iterable[str]) -> str:
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=10).hexdigest()


def spill_by_bucket(
    table: pa.Table, keys: list[str], buckets: int, path: str
) -> Iterator[tuple[int, tuple[str, int]]]:
    """Write ``table`` to an Arrow file at ``path``, one record batch per hash bucket of its
    ``keys``: ``(bucket, (path, batch number))`` for each."""
    of = np.fromiter((bucket_of(k, buckets) for k in keys), np.int64, len(keys))
    yield from spill_groups(table, of, path)


def spill_groups(
    table: pa.Table, of: np.ndarray, path: str
) -> Iterator[tuple[int, tuple[str, int]]]:
    """Write ``table`` to an Arrow file at ``path``, one record batch per group number (``of``,
    one per row, >= 0): ``(group, (path, batch number))`` for each."""
    if not table.num_rows:
        return
    buckets = int(of.max()) + 1
    order = np.argsort(of, kind="stable")
    table = table.take(pa.array(order)).combine_chunks()
    counts = np.bincount(of, minlength=buckets)
    refs, start = [], 0
    with (
        storage.atomic_output(path) as out,
        pa.ipc.new_file(out, table.schema, options=_IPC) as writer,
    ):
        for b in np.flatnonzero(counts):
            n = int(counts[b])
            writer.write_batch(table.slice(start, n).to_batches()[0])
            refs.append((int(b), (path, len(refs))))
            start += n
    yield from refs


def spill_candidates(
    batch: list[Candidate | tuple[int, Candidate]], settings: JoinSettings, buckets: int
) -> Iterator[tuple[int, tuple[str, int]]]:
    """A batch of candidates, or of ``(tag, candidate)`` pairs whose tag the hits keep ->
    its spill file's ``(bucket, ref)``s. An unparsable URL cannot have a capture: it is given
    its own key that no index row has."""
    rows, keys = [], []
    for item in batch:
        tag, c = item if isinstance(item, tuple) else (-1, item)
        row = candidate_to_row(c)
        row["key"] = surt_key(c.url) or f"\x00{c.doc_id}"
        row["target"] = c.created_utc if settings.as_of is None else settings.as_of
        row["tag"] = tag
        rows.append(row)
        keys.append(row["key"])
    table = pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)
    name = spill_name(row["doc_id"] for row in rows) + ".arrow"
    yield from spill_by_bucket(
        table, keys, buckets, storage.join(settings.spill_dir, "candidates", name)
    )


def expand_index(spec: str) -> list[str]:
    """The Parquet files of an ``archive.columnar_index`` entry (a file, directory or glob),
    without those of another subset than ``warc``."""
    files = storage.expand_files(spec, (".parquet",))
    if files is None:
        raise IndexInputError(f"{spec}: no Parquet file matches it (archive.columnar_index)")
    return [f for f in files if "/subset=" not in f or "/subset=warc/" in f]


def _open(path: str) -> pq.ParquetFile:
    fs, p = storage.resolve(path)
    return pq.ParquetFile(fs.open_input_file(p))


def index_columns(path: str, names: list[str]) -> list[str]:
    """The columns to read of an index file; IndexInputError if one the join needs is missing."""
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise IndexInputError(
            f"{path}: no column {', '.join(missing)} (archive.columnar_index needs {REQUIRED})"
        )
    return [*REQUIRED, *(c for c in OPTIONAL if c in names)]


def check_index(settings: JoinSettings) -> None:
    """Raise IndexInputError for the first entry that matches nothing or the first file that
    lacks a column, before any pipeline runs."""
    for spec in settings.index:
        files = expand_index(spec)
        if files:
            index_columns(files[0], _open(files[0]).schema_arrow.names)


def row_groups(path: str) -> list[tuple[str, int]]:
    return [(path, i) for i in range(_open(path).num_row_groups)]


def _unix_seconds(times: pa.Array) -> pa.Array:
    """``fetch_time`` (a timestamp of any unit, as Spark and pyarrow write it) in unix seconds."""
    if pa.types.is_timestamp(times.type):
        per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[times.type.unit]
        return pc.divide(times.cast(pa.int64()), per_second)
    return times.cast(pa.int64())


def _index_table(batch: pa.RecordBatch) -> pa.Table:
    """A batch of index rows -> INDEX_SCHEMA, status 200 only."""
    batch = batch.filter(pc.equal(batch.column("fetch_status"), 200))
    names = batch.schema.names

    def text(name: str) -> pa.Array:
        if name not in names:
            return pa.nulls(batch.num_rows, pa.string())
        return batch.column(name).cast(pa.string())

    mime = pc.coalesce(text("content_mime_detected"), text("content_mime_type"), "")
    columns = [
        text("url_surtkey"),
        text("url"),
        _unix_seconds(batch.column("fetch_time")),
        mime,
        pc.fill_null(text("content_digest"), ""),
        text("warc_filename"),
        batch.column("warc_record_offset").cast(pa.int64()),
        batch.column("warc_record_length").cast(pa.int64()),
    ]
    return pa.Table.from_arrays(columns, schema=INDEX_SCHEMA)


def spill_index(
    task: tuple[str, int], settings: JoinSettings, buckets: int
) -> Iterator[tuple[int, tuple[str, int]]]:
    """One row group of one index file -> its spill files' ``(bucket, ref)``s."""
    path, group = task
    f = _open(path)
    columns = index_columns(path, f.schema_arrow.names)
    base = spill_name([path, str(group)])
    batches = f.iter_batches(batch_size=settings.batch_rows, row_groups=[group], columns=columns)
    for i, batch in enumerate(batches):
        table = _index_table(batch)
        Metrics.counter("archive.index", "rows").inc(batch.num_rows)
        out = storage.join(settings.spill_dir, "index", f"{base}-{i:05d}.arrow")
        keys = table.column("key").to_pylist()
        yield from spill_by_bucket(table, keys, buckets, out)


# --- the join ------------------------------------------------------------------------------------


def read_batch(ref: tuple[str, int]) -> pa.RecordBatch:
    path, i = ref
    fs, p = storage.resolve(path)
    with fs.open_input_file(p) as f:
        return pa.ipc.open_file(f).get_batch(i)


def join_bucket(
    item: tuple[int, Iterable[tuple[str, tuple[str, int]]]], settings: JoinSettings
) -> Iterator[IndexHit]:
    """One bucket's candidates against its index rows (see the module docstring)."""
    _, refs = item
    sides: dict[str, list[tuple[str, int]]] = {"c": [], "i": []}
    for side, ref in refs:
        sides[side].append(ref)
    if not sides["c"]:
        return
    candidates = [row for ref in sorted(sides["c"]) for row in read_batch(ref).to_pylist()]
    by_key: dict[str, list[int]] = {}
    for i, row in enumerate(candidates):
        by_key.setdefault(row["key"], []).append(i)
    keys = pa.array(list(by_key), pa.string())
    skew = settings.max_skew_days * 86_400
    best: list[tuple | None] = [None] * len(candidates)
    seen = [False] * len(candidates)
    for ref in sorted(sides["i"]):
        batch = read_batch(ref)
        for cap in batch.filter(pc.is_in(batch.column("key"), value_set=keys)).to_pylist():
            for i in by_key[cap["key"]]:
                seen[i] = True
                distance = abs(cap["time"] - candidates[i]["target"])
                rank = (distance, cap["time"], cap["filename"], cap["offset"])
                if distance <= skew and (best[i] is None or rank < best[i][0]):
                    best[i] = (rank, cap)
    for i, row in enumerate(candidates):
        candidate = candidate_from_row(row)
        if best[i] is None:
            outcome = TOO_FAR if seen[i] else NO_CAPTURE
            Metrics.counter("archive", outcome).inc()
            yield IndexHit(candidate, None, outcome, row["tag"])
            continue
        cap = best[i][1]
        Metrics.counter("archive.index", "found").inc()
        yield IndexHit(
            candidate,
            Capture(
                source=settings.source,
                url=cap["url"],
                timestamp=timestamp14(cap["time"]),
                status=200,
                mime=cap["mime"],
                digest=cap["digest"],
                filename=cap["filename"],
                offset=cap["offset"],
                length=cap["length"],
            ),
            tag=row["tag"],
        )


def _tagged(item: tuple[int, tuple[str, int]], side: str) -> tuple[int, tuple]:
    bucket, ref = item
    return bucket, (side, ref)


class JoinColumnarIndex(beam.PTransform):
    """PCollection[Candidate] -> PCollection[IndexHit], one per candidate (module docstring);
    elements may also be ``(tag, Candidate)`` pairs, whose int tag the hit keeps.

    ``expected_candidates`` (the URL stage's count, in its manifest) sets the number of buckets
    before the pipeline runs: counting inside it would make the spill wait on the count, and the
    local runner holds the main input of a step that waits on a side input in the driver's
    memory, all of it. A wrong estimate changes only how many candidates a bucket holds.
    """

    def __init__(self, settings: JoinSettings, expected_candidates: int):
        super().__init__()
        if not settings.index:
            raise ValueError("JoinColumnarIndex needs index files (archive.columnar_index)")
        self.settings = settings
        self.buckets = n_buckets(expected_candidates, settings.bucket_candidates)

    def expand(self, candidates):
        s, buckets = self.settings, self.buckets
        candidate_refs = (
            candidates
            | "BatchCandidates"
            >> beam.BatchElements(
                min_batch_size=min(4096, s.batch_rows), max_batch_size=s.batch_rows
            )
            | "SpillCandidates" >> beam.FlatMap(spill_candidates, s, buckets)
            | "TagCandidates" >> beam.Map(_tagged, "c")
        )
        index_refs = (
            candidates.pipeline
            | "IndexSpecs" >> beam.Create(list(s.index))
            | "IndexFiles" >> beam.FlatMap(expand_index)
            | "RowGroups" >> beam.FlatMap(row_groups)
            | "SpreadRowGroups" >> beam.Reshuffle()
            | "SpillIndex" >> beam.FlatMap(spill_index, s, buckets)
            | "TagIndex" >> beam.Map(_tagged, "i")
        )
        return (
            (candidate_refs, index_refs)
            | "BothSides" >> beam.Flatten()
            | "ByBucket" >> beam.GroupByKey()
            | "JoinBucket" >> beam.FlatMap(join_bucket, s)
        )
