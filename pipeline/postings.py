"""URL dedup in bounded memory: postings spilled to hash buckets on disk, folded a few at a time.

Beam's local runner holds a GroupByKey's values in the driver, so grouping every posting by
canonical URL costs memory in proportion to the input. Here nothing per submission crosses a
shuffle:

    DumpChunk | [Submission | Drop, ...]  --spill_postings-->  one postings file + counts
        each worker parses its chunk, applies the per-submission rules (pipeline.submissions)
        and writes the kept postings, as compact tuples, to one file laid out in BUCKETS hash
        buckets of the canonical URL: RUN/urls/_spill/postings/NAME.postings
    [(file, postings), ...]  --plan_folds-->  (fold, (first bucket, end, files)) per fold
        once every file is written (a Gather, not a side input): ceil(postings /
        ``filter.bucket_postings``) folds, each a run of buckets
    (fold, ...)  --fold_buckets-->  candidates/FFFF.arrow + counts
        one fold's postings (its buckets' byte ranges of every file) are grouped by canonical
        URL and folded exactly as :func:`pipeline.candidates.fold` folds them

Only file names and per-reason counts are shuffled. A fold holds about ``bucket_postings``
postings and a worker one chunk. Every name is derived from its input, so a retried task
rewrites the same file.
"""

from __future__ import annotations

import hashlib
import heapq
import marshal
import math
import struct
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from foundation import storage
from foundation.config import FilterConfig
from foundation.droplog import DropLog, DropWriter
from foundation.gather import Gather, Spread
from foundation.records import Candidate, Drop, Submission, candidate_to_row
from foundation.shards import URL_SCHEMA
from pipeline.candidates import fold as fold_postings
from pipeline.sources import DumpChunk, chunk_items
from pipeline.submissions import Posting, prepare
from pipeline.url_filters import UrlRules

BAD_EXAMPLES = 20
"""Malformed lines named in the manifest (and in the error when there are too many)."""
BUCKETS = 4096
"""Hash buckets of every postings file: a fold takes a run of them, so a fold's size can be
chosen once every file is written (up to 4096 folds: 1e9 submissions at the default
``filter.bucket_postings``)."""
SHARD_KEY = "shard_key"
"""The extra column of a spilled candidates file: the doc id's first 48 bits, as an integer."""


def bad_example(drop: Drop) -> str:
    return f"{drop.where}: {drop.reason} {drop.detail}".strip()


def bucket_of(canonical: str, n_buckets: int) -> int:
    """A stable bucket for a canonical URL (crc32: fast, the same in every worker and run)."""
    return zlib.crc32(canonical.encode("utf-8")) % n_buckets


def n_buckets(submissions: int, per_bucket: int) -> int:
    return max(1, math.ceil(submissions / per_bucket))


def _batch_name(items: list) -> str:
    ids = "\n".join(getattr(x, "id", "") or repr(x) for x in items)
    return "api-" + hashlib.blake2b(ids.encode("utf-8"), digest_size=8).hexdigest()


def spill_postings(
    name: str,
    items: Iterable[Submission | Drop],
    rules: UrlRules,
    cfg: FilterConfig,
    directory: str,
    drop_log: DropLog,
) -> Iterator[tuple[str, Any]]:
    """A batch of submissions -> ("postings", (file, postings)) when it kept any, ("count",
    (reason, n)) per reason, ("example", text) for its first bad lines and ("drops", DropFile):
    its drops, logged as they come.

    A posting is stored as ``(canonical, created_utc, id, subreddit, score, url)``, in the
    bucket :func:`bucket_of` its canonical URL (:func:`write_postings`).
    """
    postings: list[list[tuple]] = [[] for _ in range(BUCKETS)]
    counts: Counter[str] = Counter()
    examples: list[str] = []
    dropped = DropWriter(drop_log.directory, f"in-{name}", drop_log.cap)
    kept = 0
    for item in items:
        if isinstance(item, Drop):
            counts[item.reason] += 1
            dropped.add(item)
            if item.reason.startswith("source."):
                examples.append(bad_example(item))
            continue
        counts["source.submissions"] += 1
        out = prepare(item, rules, cfg)
        if isinstance(out, Drop):
            counts[out.reason] += 1
            dropped.add(out)
            continue
        canonical, posting = out
        postings[bucket_of(canonical, BUCKETS)].append((canonical, *posting))
        kept += 1
    logged = dropped.close()
    if logged:
        yield "drops", logged
    if kept:
        path = storage.join(directory, f"{name}.postings")
        write_postings(postings, path)
        yield "postings", (path, kept)
    for reason, n in sorted(counts.items()):
        Metrics.counter("webtext.urls", reason).inc(n)
        yield "count", (reason, n)
    for text in heapq.nsmallest(BAD_EXAMPLES, examples):
        yield "example", text


_OFFSETS = struct.Struct(f"<{BUCKETS + 1}Q")


def write_postings(buckets: list[list[tuple]], path: str) -> None:
    """Postings by bucket -> one file: the buckets' end offsets, then each bucket marshalled
    (an empty bucket takes no bytes), so a fold reads only its buckets' byte range."""
    blobs = [marshal.dumps(b) if b else b"" for b in buckets]
    ends = [0]
    for blob in blobs:
        ends.append(ends[-1] + len(blob))
    storage.write_bytes(path, _OFFSETS.pack(*ends) + b"".join(blobs))


def read_postings(path: str, first: int, end: int) -> Iterator[tuple]:
    """The postings of buckets ``first``..``end - 1`` of a postings file."""
    fs, p = storage.resolve(path)
    with fs.open_input_file(p) as f:
        ends = _OFFSETS.unpack(f.read(_OFFSETS.size))
        f.seek(_OFFSETS.size + ends[first])
        data = f.read(ends[end] - ends[first])
    for b in range(first, end):
        lo, hi = ends[b] - ends[first], ends[b + 1] - ends[first]
        if hi > lo:
            yield from marshal.loads(data[lo:hi])


Fold = tuple[int, int, tuple[str, ...]]
"""A fold's first bucket, its end and every postings file."""


def plan_folds(files: list[tuple[str, int]], per_fold: int) -> Iterator[tuple[int, Fold]]:
    """Every postings file (and its postings) -> (fold, its buckets and the files) per fold:
    about ``per_fold`` postings each, whatever the input's size."""
    folds = min(BUCKETS, n_buckets(sum(n for _, n in files), per_fold))
    paths = tuple(sorted(path for path, _ in files))
    for f in range(folds):
        yield f, (f * BUCKETS // folds, (f + 1) * BUCKETS // folds, paths)


class SpillPostings(beam.DoFn):
    """DumpChunk | list[Submission | Drop] -> spill_postings' items (rules loaded per worker)."""

    def __init__(self, cfg: FilterConfig, directory: str, drop_log: DropLog) -> None:
        self.cfg, self.directory, self.drop_log = cfg, directory, drop_log
        self.rules: UrlRules | None = None

    def setup(self) -> None:
        self.rules = UrlRules.from_config(self.cfg)

    def process(self, element: DumpChunk | Drop | list):
        assert self.rules is not None
        if isinstance(element, DumpChunk):
            name, items = element.name, chunk_items(element)
        elif isinstance(element, Drop):  # where a dump's stream broke
            name, items = f"drop-{_batch_name([element])}", [element]
        else:
            name, items = _batch_name(element), element
        yield from spill_postings(name, items, self.rules, self.cfg, self.directory, self.drop_log)


def fold_buckets(
    fold: int, buckets: Fold, cfg: FilterConfig, directory: str, drop_log: DropLog
) -> Iterator[tuple[str, Any]]:
    """One fold's buckets of every postings file -> its candidates in ``directory``/FFFF.arrow
    (sorted by doc id, with the :data:`SHARD_KEY` column): ("candidates", (file, rows)),
    ("count", ...) and ("drops", DropFile)."""
    first, end, paths = buckets
    by_url: dict[str, list[Posting]] = {}
    for path in paths:
        for canonical, *posting in read_postings(path, first, end):
            by_url.setdefault(canonical, []).append(Posting(*posting))
    counts: Counter[str] = Counter()
    dropped = DropWriter(drop_log.directory, f"fold-{fold:04d}", drop_log.cap)
    rows = []
    for canonical in sorted(by_url):
        for out in fold_postings(canonical, by_url.pop(canonical), cfg):
            if isinstance(out, Candidate):
                rows.append(candidate_to_row(out))
            else:
                counts[out.reason] += 1
                dropped.add(out)
    logged = dropped.close()
    if logged:
        yield "drops", logged
    for reason, n in sorted(counts.items()):
        yield "count", (reason, n)
    if not rows:
        return
    rows.sort(key=lambda r: r["doc_id"])
    table = pa.Table.from_pylist(rows, schema=URL_SCHEMA)
    keys = pa.array([int(r["doc_id"][:12], 16) for r in rows], pa.uint64())
    path = storage.join(directory, f"{fold:04d}.arrow")
    write_ipc(table.append_column(SHARD_KEY, keys), path)
    yield "candidates", (path, len(rows))


def write_ipc(table: pa.Table, path: str) -> None:
    """An uncompressed Arrow file: spill files are read back at once, sliced and memory-mapped."""
    with storage.atomic_output(path) as out, pa.ipc.new_file(out, table.schema) as writer:
        writer.write_table(table)


def _fold(item: tuple[int, Fold], cfg: FilterConfig, directory: str, drop_log: DropLog):
    fold, buckets = item
    return fold_buckets(fold, buckets, cfg, directory, drop_log)


def _has_tag(item: tuple[str, Any], tag: str) -> bool:
    return item[0] == tag


def _value(item: tuple[str, Any]) -> Any:
    return item[1]


class DedupUrls(beam.PTransform):
    """PCollection[DumpChunk | Drop | list[Submission | Drop]] -> dict of PCollections:

    ``candidates``: (Arrow file, rows) per bucket with candidates; ``counts``: (reason, n) of
    every submission and drop; ``examples``: descriptions of bad lines (a few per batch);
    ``drops``: the DropFile parts logged into ``drop_log`` (by each batch and bucket).
    Spill files go under ``spill_dir`` (postings/, candidates/); the caller removes it.
    """

    def __init__(self, cfg: FilterConfig, spill_dir: str, drop_log: DropLog) -> None:
        super().__init__()
        if not isinstance(cfg, FilterConfig):
            raise ValueError(f"DedupUrls needs a FilterConfig, got {type(cfg).__name__}")
        self.cfg, self.spill_dir, self.drop_log = cfg, spill_dir, drop_log

    def expand(self, batches):
        spilled = batches | "Spill" >> beam.ParDo(
            SpillPostings(self.cfg, storage.join(self.spill_dir, "postings"), self.drop_log)
        )
        folded = (
            spilled
            | "PostingItems" >> beam.Filter(_has_tag, "postings")
            | "PostingFile" >> beam.Map(_value)
            | "AllPostingFiles" >> Gather()
            | "PlanFolds" >> beam.FlatMap(plan_folds, self.cfg.bucket_postings)
            | "SpreadFolds" >> Spread()
            | "Fold"
            >> beam.FlatMap(
                _fold, self.cfg, storage.join(self.spill_dir, "candidates"), self.drop_log
            )
        )
        counts = (
            (spilled, folded)
            | "AllTallies" >> beam.Flatten()
            | "CountItems" >> beam.Filter(_has_tag, "count")
            | "Count" >> beam.Map(_value)
        )
        return {
            "candidates": folded
            | "CandidateFiles" >> beam.Filter(_has_tag, "candidates")
            | "CandidateFile" >> beam.Map(_value),
            "counts": counts,
            "examples": spilled
            | "ExampleItems" >> beam.Filter(_has_tag, "example")
            | "Example" >> beam.Map(_value),
            "drops": (spilled, folded)
            | "AllDropParts" >> beam.Flatten()
            | "DropItems" >> beam.Filter(_has_tag, "drops")
            | "DropPart" >> beam.Map(_value),
        }
