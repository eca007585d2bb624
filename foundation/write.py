"""Writing shards and committing their manifest, correctly on any Beam runner.

Beam's file sinks lose data on some runners (Dask) and name files by bundle, so a rerun would
not overwrite what a killed run left. Here a record's shard is a pure function of its id and the
total count, each shard is written whole by one task under a temporary name and renamed, and one
final step, fed by every output of the pipeline, writes the manifest: a shard exists only once
the manifest lists it. Files a killed run left behind that the manifest does not list are removed.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import pyarrow as pa

from foundation import storage
from foundation.config import OutputConfig
from foundation.droplog import DropFile, DropLog, LogDrops, commit_drops, part_counts
from foundation.drops import reason_one
from foundation.shards import (
    MANIFEST,
    REJECTED,
    ROW_GROUP,
    SUFFIX,
    TEXT_SCHEMA,
    Manifest,
    ShardFile,
    shard_name,
    write_row_groups,
    write_table,
)

log = logging.getLogger(__name__)


def shard_of(key: str, n_shards: int) -> int:
    """The shard of a record whose id is a hex digest: stable across runs and workers."""
    return int(key[:12], 16) % n_shards


def _key_by_shard(record: dict, n_shards: int, id_field: str) -> tuple[int, dict]:
    return shard_of(record[id_field], n_shards), record


def _n_shards(count: int, per_shard: int) -> int:
    return max(1, math.ceil(count / per_shard))


Resolve = Callable[[Iterable[dict]], list[dict]]


def _write_shard(
    item: tuple[int, Iterable[dict]],
    directory: str,
    fmt: str,
    schema: pa.Schema,
    id_field: str,
    resolve: Resolve | None = None,
) -> ShardFile:
    index, records = item
    path = storage.join(directory, shard_name(index, fmt))
    if resolve and fmt == "parquet":  # resolved a row group at a time: one in memory
        refs = sorted(records, key=lambda r: r[id_field])
        tables = (
            pa.Table.from_pylist(
                sorted(resolve(refs[i : i + ROW_GROUP]), key=lambda r: r[id_field]), schema=schema
            )
            for i in range(0, len(refs), ROW_GROUP)
        )
        return write_row_groups(tables, schema, path)
    rows = sorted(resolve(records) if resolve else records, key=lambda r: r[id_field])
    return write_table(pa.Table.from_pylist(rows, schema=schema), path, fmt)


class WriteShards(beam.PTransform):
    """PCollection[dict] -> PCollection[ShardFile]: deterministic, idempotent shard files.

    ``resolve`` turns a shard's records into its rows when the records are only references to
    them (``pipeline.spill``: what is grouped by shard is then small).
    """

    def __init__(
        self,
        directory: str,
        fmt: str,
        per_shard: int,
        schema: pa.Schema,
        id_field: str = "id",
        resolve: Resolve | None = None,
    ):
        super().__init__()
        if fmt not in SUFFIX:
            raise ValueError(f"unknown shard format {fmt!r}; expected one of {sorted(SUFFIX)}")
        if per_shard <= 0:
            raise ValueError(f"per_shard must be positive, got {per_shard}")
        self.directory, self.fmt, self.per_shard = directory, fmt, per_shard
        self.schema, self.id_field, self.resolve = schema, id_field, resolve

    def expand(self, records):
        n_shards = (
            records
            | "Count" >> beam.combiners.Count.Globally()
            | "NumShards" >> beam.Map(_n_shards, self.per_shard)
        )
        return (
            records
            | "KeyByShard"
            >> beam.Map(_key_by_shard, beam.pvalue.AsSingleton(n_shards), self.id_field)
            | "GroupByShard" >> beam.GroupByKey()
            | "Write"
            >> beam.Map(
                _write_shard, self.directory, self.fmt, self.schema, self.id_field, self.resolve
            )
        )


# --- the commit step ---------------------------------------------------------------------------


def as_file(shard: ShardFile) -> tuple[str, Any]:
    return "file", shard


def as_count(item: tuple[str, int]) -> tuple[str, Any]:
    return "count", item


def as_extra(item: tuple[str, Any]) -> tuple[str, Any]:
    return "extra", item


def as_drops(part: DropFile) -> tuple[str, Any]:
    return "drops", part


START = ("start", None)
"""A commit item that adds nothing: the commit step's own input, so it runs on an empty run
too (without a CombineGlobally default, which is a side input)."""


@dataclass
class CommitItems:
    """What a run produced for its manifest, folded as it arrives: files listed, counts summed.

    Folding (rather than gathering every item under one key) keeps the commit step's input
    small: a per-document count costs one dict update in the worker that produced it, not one
    element shuffled to the single task that writes the manifest.
    """

    files: list[ShardFile] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    drops: list[DropFile] = field(default_factory=list)

    @classmethod
    def of(cls, items: Iterable[tuple[str, Any]]) -> CommitItems:
        folded = cls()
        for item in items:
            folded.add(item)
        return folded

    def add(self, item: tuple[str, Any]) -> None:
        tag, value = item
        if tag == "file":
            self.files.append(value)
        elif tag == "count":
            name, n = value
            self.counts[name] = self.counts.get(name, 0) + int(n)
        elif tag == "extra":
            name, v = value
            self.extra[name] = v
        elif tag == "drops":
            self.drops.append(value)
        elif tag != START[0]:
            raise ValueError(f"unknown commit item {tag!r}")

    def merge(self, other: CommitItems) -> None:
        self.files.extend(other.files)
        for name, n in other.counts.items():
            self.counts[name] = self.counts.get(name, 0) + n
        self.extra.update(other.extra)
        self.drops.extend(other.drops)


class _FoldItems(beam.CombineFn):
    def create_accumulator(self) -> CommitItems:
        return CommitItems()

    def add_input(self, folded: CommitItems, item: tuple[str, Any]) -> CommitItems:
        folded.add(item)
        return folded

    def merge_accumulators(self, accumulators: Iterable[CommitItems]) -> CommitItems:
        merged = CommitItems()
        for folded in accumulators:
            merged.merge(folded)
        return merged

    def extract_output(self, folded: CommitItems) -> CommitItems:
        return folded


Check = Callable[[Manifest], str | None]


def commit_manifest(
    items: CommitItems,
    directory: str,
    kind: str,
    fmt: str,
    config: dict,
    check: Check | None = None,
    drop_log: DropLog | None = None,
) -> Manifest:
    """Write the manifest from everything the pipeline produced; the last step of a run.

    ``check`` may veto the commit (returning why): the manifest is then written as
    ``_manifest.rejected.json`` instead, so the stage is not taken for complete. With
    ``drop_log``, the drop log's parts are listed (``extra["drops"]``) and committed with it.
    """
    files = sorted(items.files, key=lambda f: f.path)
    manifest = Manifest(
        kind=kind, format=fmt, files=files, counts=dict(sorted(items.counts.items())), config=config
    )
    manifest.extra = dict(items.extra)
    if drop_log is not None:
        manifest.extra["drops"] = commit_drops(
            items.drops, drop_log.directory, directory, drop_log.cap
        )
    listed = {f.path for f in files}
    for name in storage.listdir(directory):
        if name.startswith("part-") and name not in listed:
            log.info("Removing %s: left by an earlier, unfinished run.", name)
            storage.remove(storage.join(directory, name))
    problem = check(manifest) if check else None
    if problem:
        manifest.extra["rejected"] = problem
        storage.write_text(storage.join(directory, REJECTED), _dumps(manifest))
        return manifest
    manifest.save(directory)
    rejected = storage.join(directory, REJECTED)
    if storage.exists(rejected):
        storage.remove(rejected)
    return manifest


def _dumps(manifest: Manifest) -> str:
    return json.dumps(manifest.to_dict(), indent=2) + "\n"


class CommitManifest(beam.PTransform):
    """Flattened ("file"|"count"|"extra", value) items -> the written Manifest (one element).

    Counts may come one per record, ("documents", 1): they are summed where they are produced.
    """

    def __init__(
        self,
        directory: str,
        kind: str,
        fmt: str,
        config: dict,
        check: Check | None = None,
        drop_log: DropLog | None = None,
    ):
        super().__init__()
        self.directory, self.kind, self.fmt, self.config = directory, kind, fmt, config
        self.check, self.drop_log = check, drop_log

    def expand(self, items):
        start = items.pipeline | "Start" >> beam.Create([START])
        return (
            (items, start)
            | "WithStart" >> beam.Flatten()
            | "Fold" >> beam.CombineGlobally(_FoldItems()).without_defaults()
            | "Commit"
            >> beam.Map(
                commit_manifest,
                self.directory,
                self.kind,
                self.fmt,
                self.config,
                self.check,
                self.drop_log,
            )
        )


def is_complete(directory: str) -> bool:
    """A stage's output is complete once its manifest exists (it is written last)."""
    return storage.exists(storage.join(directory, MANIFEST))


class CommitShards(beam.PTransform):
    """Documents, drops and extras -> text shards and their manifest, committed last.

    The tail every text-producing job shares (ingest's pages phase, ``webtext dedup``): the
    documents are written as shards, each drop counts once under its reason, every extra and
    the ``counts`` PCollections of ``(name, n)`` join them, and one commit step writes the
    manifest. ``resolve``: see :class:`WriteShards`; ``drop_log``: where the drops are logged.
    An optional ``drop_parts`` input holds drop-log parts a stage already wrote (dedup decided
    from ids logs its drops where it decides them): they are counted and listed alike.
    """

    def __init__(
        self,
        directory: str,
        output: OutputConfig,
        config: dict,
        counts: tuple = (),
        resolve: Resolve | None = None,
        drop_log: DropLog | None = None,
    ):
        super().__init__()
        self.directory, self.output, self.config, self.counts = directory, output, config, counts
        self.resolve, self.drop_log = resolve, drop_log

    def expand(self, pcolls):
        documents, drops, extras = pcolls["documents"], pcolls["drops"], pcolls["extras"]
        files = documents | "WriteShards" >> WriteShards(
            self.directory,
            self.output.format,
            self.output.shard_docs,
            TEXT_SCHEMA,
            resolve=self.resolve,
        )
        parts = [pcolls["drop_parts"]] if "drop_parts" in pcolls else []
        counted = [
            documents | "CountDocs" >> beam.Map(_one, "shards.documents"),
            drops | "CountDrops" >> beam.Map(reason_one),
            *(part | f"CountParts{i}" >> beam.FlatMap(part_counts) for i, part in enumerate(parts)),
            *self.counts,
        ]
        if self.drop_log is not None:
            parts.append(drops | "LogDrops" >> LogDrops(self.drop_log.directory, self.drop_log.cap))
        items = [
            files | "Files" >> beam.Map(as_file),
            counted | "AllCounts" >> beam.Flatten() | "Counts" >> beam.Map(as_count),
            extras | "Extras" >> beam.Map(as_extra),
            *(part | f"DropParts{i}" >> beam.Map(as_drops) for i, part in enumerate(parts)),
        ]
        return (
            items
            | "CommitItems" >> beam.Flatten()
            | "Commit"
            >> CommitManifest(
                self.directory,
                "text",
                self.output.format,
                self.config,
                drop_log=self.drop_log,
            )
        )


def _one(_: object, name: str) -> tuple[str, int]:
    return name, 1
