"""The WARC replay join in bounded memory: candidates meet the WARC's responses in key files on
disk, one bucket of the canonical URL's key space at a time.

    unit file  --candidate_keys-->  WORK/c-NAME.arrow: its candidates, grouped by slice
    WARC file  --index_keys-->      WORK/w-NAME-K.arrow: (canonical URL, WarcEntry) of up to
                                    ``bucket_urls`` of its responses each, grouped by slice
    [(kind, file, rows), ...]  --plan_buckets-->  WORK/plan.json, then (bucket, (buckets, plan))
                                    per bucket, once every key file is written (a Gather)
    bucket     --join_bucket-->     WORK/h-BBBBB.arrow: a Hit per candidate of the bucket (the
                                    response :func:`choose` picks), sorted by doc id; then
                                    (file, start, end) for each run of RUN_HITS of them
    run        --read_run-->        its Hits in lists of up to ``batch``

A URL's slice is ``crc32(canonical URL) % SLICES`` (:mod:`dedup.buckets`), so its candidates
and responses lie in the same slice of every file, and a bucket (a run of whole slices) reads
them with one slice of each file. Beam's local runner holds every GroupByKey in the driver's
memory: a CoGroupByKey of every candidate and response, then a grouping of the hits into
lists, grew with the input there. Here only file names, bucket numbers and runs cross a
shuffle, and no side input is used (Dask recomputes one per task: :mod:`foundation.gather`).
The bucket count is chosen once every file is written, from the rows counted, so a bucket
holds about ``bucket_urls`` candidates and responses whatever the input's size. Hits leave a
bucket through its file and are dealt out by runs, so extraction (fused with ``read_run``) is
spread over the workers however few buckets there are. Every file is named from its input,
so a retried task rewrites the same file.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from dedup.buckets import SLICES, bucket_slices, n_buckets
from foundation import storage
from foundation.batches import batched
from foundation.gather import Gather, Spread
from foundation.records import Candidate, candidate_from_row, candidate_to_row
from foundation.shards import URL_SCHEMA, read_table
from pipeline.postings import bucket_of, write_ipc
from pipeline.url_units import read_grouped, read_ipc, write_grouped
from pipeline.warc import WarcEntry, index_responses

RUN_HITS = 256
"""Hits per run: the unit in which hit lists are dealt out to the workers."""
ENTRY = pa.struct(
    [
        pa.field("path", pa.string()),
        pa.field("offset", pa.int64()),
        pa.field("skip", pa.int64()),
        pa.field("status", pa.int64()),
        pa.field("timestamp", pa.int64()),
        pa.field("digest", pa.string()),
        pa.field("damaged", pa.string()),
        pa.field("target_uri", pa.string()),
    ]
)
KEYS_SCHEMA = pa.schema([pa.field("canonical", pa.string()), pa.field("entry", ENTRY)])
HITS_SCHEMA = pa.schema([*URL_SCHEMA, pa.field("entry", ENTRY)])  # entry null: not in the WARC


@dataclass(frozen=True)
class Hit:
    """A candidate and the index entry of the response chosen for it (None: not in the WARC)."""

    candidate: Candidate
    entry: WarcEntry | None
    key: str


def _preference(entry: WarcEntry) -> tuple:
    """Whole records first, then 2xx, then the latest, then the smallest body hash."""
    rank = 0 if 200 <= entry.status < 300 else 1
    return bool(entry.damaged), rank, -entry.timestamp, entry.digest


def choose(key: str, candidates: Iterable[Candidate], entries: Iterable[WarcEntry]):
    """The Hits of one canonical URL's candidates, in doc id order: each gets the preferred of
    its responses, whatever their order."""
    ranked = sorted(entries, key=_preference)
    for c in sorted(candidates, key=lambda c: c.doc_id):
        yield Hit(c, ranked[0] if ranked else None, key)


def keyed_entries(path: str, max_bytes: int) -> Iterator[tuple[str, WarcEntry]]:
    """(canonical URL, WarcEntry) for each response record of one WARC file: its index."""
    from dedup.urls import canonicalize

    for key_uri, entry in index_responses(path, max_body=max_bytes):
        try:
            yield canonicalize(key_uri), entry
        except ValueError:
            Metrics.counter("replay", "unusable_target_uri").inc()
        if entry.damaged:
            Metrics.counter("replay", "damaged_records").inc()


def _name(path: str) -> str:
    return hashlib.blake2b(path.encode("utf-8"), digest_size=8).hexdigest()


def _write_keys(table: pa.Table, urls: str, path: str) -> tuple[str, int]:
    slices = np.fromiter(
        (bucket_of(u, SLICES) for u in table.column(urls).to_pylist()), np.uint32, table.num_rows
    )
    write_grouped(table, slices, SLICES, path)
    return path, table.num_rows


def candidate_keys(unit: str, work: str) -> tuple[str, str, int]:
    """A unit file -> its candidates grouped by slice: ("candidates", key file, rows)."""
    table = read_table(unit).select(URL_SCHEMA.names)
    path = storage.join(work, f"c-{_name(unit)}.arrow")
    return "candidates", *_write_keys(table, "canonical_url", path)


def index_keys(warc: str, work: str, max_bytes: int, per_file: int):
    """A WARC file -> ("responses", key file, rows) for each ``per_file`` of its responses."""
    for k, chunk in enumerate(batched(keyed_entries(warc, max_bytes), per_file)):
        rows = [{"canonical": key, "entry": asdict(entry)} for key, entry in chunk]
        table = pa.Table.from_pylist(rows, schema=KEYS_SCHEMA)
        path = storage.join(work, f"w-{_name(warc)}-{k:05d}.arrow")
        yield "responses", *_write_keys(table, "canonical", path)


def plan_buckets(files: list[tuple[str, str, int]], bucket_urls: int, work: str):
    """Every key file -> (bucket, (buckets, plan file)) per bucket; none without candidates.
    The plan file lists the key files, so a bucket element stays small at any file count."""
    rows = {(kind, path): n for kind, path, n in files if n}  # a WARC named twice counts once
    plan = {kind: sorted(p for k, p in rows if k == kind) for kind in ("candidates", "responses")}
    if not plan["candidates"]:
        return
    path = storage.join(work, "plan.json")
    storage.write_text(path, json.dumps(plan))
    buckets = n_buckets(sum(rows.values()), bucket_urls)
    for bucket in range(buckets):
        yield bucket, (buckets, path)


def _slice(path: str, first: int, last: int) -> pa.Table:
    table, starts = read_grouped(path)
    return table.slice(int(starts[first]), int(starts[last] - starts[first]))


def join_bucket(item: tuple[int, tuple[int, str]], work: str):
    """One bucket -> its hits file, and (run key, (file, start, end)) for each run of it."""
    bucket, (buckets, plan_path) = item
    plan = json.loads(storage.read_text(plan_path))
    first, last = bucket_slices(bucket, buckets)
    candidates: dict[str, list[Candidate]] = defaultdict(list)
    for path in plan["candidates"]:
        for row in _slice(path, first, last).to_pylist():
            candidates[row["canonical_url"]].append(candidate_from_row(row))
    wanted = pa.array(list(candidates), pa.string())
    entries: dict[str, list[WarcEntry]] = defaultdict(list)
    for path in plan["responses"]:
        part = _slice(path, first, last)
        for row in part.filter(pc.is_in(part["canonical"], wanted)).to_pylist():
            entries[row["canonical"]].append(WarcEntry(**row["entry"]))
    hits = [h for key, cs in candidates.items() for h in choose(key, cs, entries.get(key, ()))]
    hits.sort(key=lambda h: h.candidate.doc_id)
    out = storage.join(work, f"h-{bucket:05d}.arrow")
    write_ipc(pa.Table.from_pylist([_hit_row(h) for h in hits], schema=HITS_SCHEMA), out)
    for start in range(0, len(hits), RUN_HITS):
        yield f"{bucket}-{start}", (out, start, min(start + RUN_HITS, len(hits)))


def _hit_row(hit: Hit) -> dict:
    return {**candidate_to_row(hit.candidate), "entry": asdict(hit.entry) if hit.entry else None}


def _hit(row: dict) -> Hit:
    entry = row.pop("entry")
    c = candidate_from_row(row)
    return Hit(c, WarcEntry(**entry) if entry else None, c.canonical_url)


def read_run(item: tuple[str, tuple[str, int, int]], batch: int) -> Iterator[list[Hit]]:
    """One run of a bucket's hits -> lists of up to ``batch`` of them, in doc id order."""
    _, (path, start, end) = item
    rows = read_ipc(path).slice(start, end - start).to_pylist()
    yield from batched((_hit(row) for row in rows), batch)


def _itself(item: str) -> str:
    return item


class JoinWarc(beam.PTransform):
    """(PCollection of unit files, PCollection of WARC files) -> lists of up to ``batch`` Hits:
    a Hit for every candidate, with the response chosen for it (module docstring). ``work``
    holds the key and hit files; the caller removes it once the pipeline is done."""

    def __init__(self, work: str, max_bytes: int, bucket_urls: int, batch: int):
        super().__init__()
        if bucket_urls <= 0 or batch <= 0:
            raise ValueError(f"bucket_urls and batch must be positive ({bucket_urls}, {batch})")
        self.work, self.max_bytes = work, max_bytes
        self.bucket_urls, self.batch = bucket_urls, batch

    def expand(self, inputs):
        units, warcs = inputs
        candidates = (
            units
            | "SpreadUnits" >> Spread(_itself)
            | "CandidateKeys" >> beam.Map(candidate_keys, self.work)
        )
        responses = (
            warcs
            | "SpreadWarcs" >> Spread(_itself)
            | "IndexKeys" >> beam.FlatMap(index_keys, self.work, self.max_bytes, self.bucket_urls)
        )
        return (
            (candidates, responses)
            | "KeyFiles" >> beam.Flatten()
            | "AllKeyFiles" >> Gather()
            | "Buckets" >> beam.FlatMap(plan_buckets, self.bucket_urls, self.work)
            | "SpreadBuckets" >> Spread()
            | "JoinBuckets" >> beam.FlatMap(join_bucket, self.work)
            | "SpreadRuns" >> Spread()
            | "HitLists" >> beam.FlatMap(read_run, self.batch)
        )
