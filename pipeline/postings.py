"""URL dedup in bounded memory: postings spilled to hash buckets on disk, folded a bucket at a time.

Beam's local runner holds a GroupByKey's values in the driver, so grouping every posting by
canonical URL costs memory in proportion to the input. Here nothing per submission crosses a
shuffle:

    DumpChunk | [Submission | Drop, ...]  --spill_postings-->  bucket files + counts
        each worker parses its chunk, applies the per-submission rules (pipeline.submissions)
        and writes the kept postings, as compact tuples, to one file per hash bucket of the
        canonical URL: RUN/urls/_spill/postings/BBBB/NAME.marshal
    (bucket, [file, ...])  --fold_bucket-->  candidates/BBBB.arrow + counts
        one bucket's postings are grouped by canonical URL and folded exactly as
        :func:`pipeline.candidates.fold` folds them (repeats, duplicates, karma)

Only file names and per-reason counts are shuffled. A fold holds one bucket (the submissions
over ``filter.bucket_postings`` buckets, so about that many postings) and a worker one chunk.
Every name is derived from its input, so a retried task rewrites the same file.
"""

from __future__ import annotations

import hashlib
import heapq
import marshal
import math
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
from foundation.records import Candidate, Drop, Submission, candidate_to_row
from foundation.shards import URL_SCHEMA
from pipeline.candidates import fold
from pipeline.sources import DumpChunk, chunk_items
from pipeline.submissions import Posting, prepare
from pipeline.url_filters import UrlRules

BAD_EXAMPLES = 20
"""Malformed lines named in the manifest (and in the error when there are too many)."""
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
    buckets: int,
    drop_log: DropLog,
) -> Iterator[tuple[str, Any]]:
    """A batch of submissions -> ("bucket", (b, file)) per bucket written, ("count", (reason,
    n)) per reason, ("example", text) for its first bad lines and ("drops", DropFile): its
    drops, logged as they come.

    A posting is stored as ``(canonical, created_utc, id, subreddit, score, url)``.
    """
    postings: list[list[tuple]] = [[] for _ in range(buckets)]
    counts: Counter[str] = Counter()
    examples: list[str] = []
    dropped = DropWriter(drop_log.directory, f"in-{name}", drop_log.cap)
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
        postings[bucket_of(canonical, buckets)].append((canonical, *posting))
    logged = dropped.close()
    if logged:
        yield "drops", logged
    for b, kept in enumerate(postings):
        if kept:
            path = storage.join(directory, f"{b:04d}", f"{name}.marshal")
            storage.write_bytes(path, marshal.dumps(kept))
            yield "bucket", (b, path)
    for reason, n in sorted(counts.items()):
        Metrics.counter("webtext.urls", reason).inc(n)
        yield "count", (reason, n)
    for text in heapq.nsmallest(BAD_EXAMPLES, examples):
        yield "example", text


class SpillPostings(beam.DoFn):
    """DumpChunk | list[Submission | Drop] -> spill_postings' items (rules loaded per worker)."""

    def __init__(self, cfg: FilterConfig, directory: str, drop_log: DropLog) -> None:
        self.cfg, self.directory, self.drop_log = cfg, directory, drop_log
        self.rules: UrlRules | None = None

    def setup(self) -> None:
        self.rules = UrlRules.from_config(self.cfg)

    def process(self, element: DumpChunk | Drop | list, buckets: int):
        assert self.rules is not None
        if isinstance(element, DumpChunk):
            name, items = element.name, chunk_items(element)
        elif isinstance(element, Drop):  # where a dump's stream broke
            name, items = f"drop-{_batch_name([element])}", [element]
        else:
            name, items = _batch_name(element), element
        yield from spill_postings(
            name, items, self.rules, self.cfg, self.directory, buckets, self.drop_log
        )


def fold_bucket(
    bucket: int, paths: Iterable[str], cfg: FilterConfig, directory: str, drop_log: DropLog
) -> Iterator[tuple[str, Any]]:
    """One bucket's posting files -> its candidates in ``directory``/BBBB.arrow (sorted by doc
    id, with the :data:`SHARD_KEY` column): ("candidates", (file, rows)), ("count", ...) and
    ("drops", DropFile)."""
    by_url: dict[str, list[Posting]] = {}
    for path in sorted(paths):
        for canonical, *posting in marshal.loads(storage.read_bytes(path)):
            by_url.setdefault(canonical, []).append(Posting(*posting))
    counts: Counter[str] = Counter()
    dropped = DropWriter(drop_log.directory, f"fold-{bucket:04d}", drop_log.cap)
    rows = []
    for canonical in sorted(by_url):
        for out in fold(canonical, by_url.pop(canonical), cfg):
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
    path = storage.join(directory, f"{bucket:04d}.arrow")
    write_ipc(table.append_column(SHARD_KEY, keys), path)
    yield "candidates", (path, len(rows))


def write_ipc(table: pa.Table, path: str) -> None:
    """An uncompressed Arrow file: spill files are read back at once, sliced and memory-mapped."""
    with storage.atomic_output(path) as out, pa.ipc.new_file(out, table.schema) as writer:
        writer.write_table(table)


def _fold_group(
    kv: tuple[int, Iterable[str]], cfg: FilterConfig, directory: str, drop_log: DropLog
):
    bucket, paths = kv
    return fold_bucket(bucket, paths, cfg, directory, drop_log)


def _has_tag(item: tuple[str, Any], tag: str) -> bool:
    return item[0] == tag


def _value(item: tuple[str, Any]) -> Any:
    return item[1]


def _lines_of(element: DumpChunk | Drop | list) -> int:
    if isinstance(element, DumpChunk):
        return element.lines
    return 1 if isinstance(element, Drop) else len(element)


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
        buckets = (
            batches
            | "Lines" >> beam.Map(_lines_of)
            | "AllLines" >> beam.CombineGlobally(sum)
            | "Buckets" >> beam.Map(n_buckets, self.cfg.bucket_postings)
        )
        spilled = batches | "Spill" >> beam.ParDo(
            SpillPostings(self.cfg, storage.join(self.spill_dir, "postings"), self.drop_log),
            beam.pvalue.AsSingleton(buckets),
        )
        folded = (
            spilled
            | "BucketFiles" >> beam.Filter(_has_tag, "bucket")
            | "BucketFile" >> beam.Map(_value)
            | "ByBucket" >> beam.GroupByKey()
            | "Fold"
            >> beam.FlatMap(
                _fold_group, self.cfg, storage.join(self.spill_dir, "candidates"), self.drop_log
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
