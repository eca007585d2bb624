"""The drop log: every item a stage removed, one row each, so any URL's fate can be looked up.

    w = DropWriter(directory, name, cap); w.add(drop) ...; w.close() -> DropFile | None
    drops | LogDrops(directory, cap) -> PCollection[DropFile]     (a stage whose drops flow)
    commit_drops(files, directory, stage_dir, cap) -> the manifest's ``drops`` entry

A stage writing ``RUN/X`` logs into ``RUN/drops/X/`` (:func:`drops_dir`), Parquet parts of
:data:`DROP_SCHEMA` rows. Parts are written streaming by the worker that removed the items
(nothing is gathered in one process), atomically, under names derived from their content or
input (a retried task rewrites the same file). The stage's commit step lists them in its
manifest (``extra["drops"]``) and removes every part it does not list, so a part belongs to the
log only once the manifest names it and a resumed run never logs a drop twice.

``cap`` (``output.max_drops_per_rule``) bounds the rows kept per rule; the manifest's counts
stay exact, and its ``drops.capped`` says how many rows each rule left out.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from foundation import storage
from foundation.records import Drop

DROPS = "drops"
DROP_SCHEMA = pa.schema(
    [
        ("stage", pa.string()),  # the rule's stage: source, submission, url, fetch, extract...
        ("rule", pa.string()),  # the Drop reason, e.g. "url.wikipedia"
        ("id", pa.string()),  # the submission's or document's id, when it has one
        ("url", pa.string()),  # the URL as posted (documents: as first posted), when known
        ("where", pa.string()),  # file:line, URL or id, as the stage names the item
        ("detail", pa.string()),
        ("kept", pa.string()),  # dedup: the id of the document that replaced it
    ]
)
FIELDS = ("id", "url", "where", "detail", "kept")
ROW_GROUP = 8192
BATCH = 5000
"""Drops written per part by :class:`LogDrops` (one part per batch of a bundle)."""


def drops_dir(stage_dir: str) -> str:
    """Where the stage writing ``stage_dir`` logs its drops: ``RUN/drops/<its name>``."""
    return storage.join(storage.parent(stage_dir), DROPS, stage_dir.rstrip("/").rsplit("/", 1)[-1])


def drop_row(drop: Drop) -> dict[str, str]:
    return {
        "stage": drop.reason.split(".", 1)[0],
        "rule": drop.reason,
        **{name: getattr(drop, name) or "" for name in FIELDS},
    }


@dataclass(frozen=True)
class DropLog:
    """Where a stage logs its drops (:func:`drops_dir`) and the rows kept per rule (None: all)."""

    directory: str
    cap: int | None = None


@dataclass
class DropFile:
    """One part of the log: its name in the drops directory, rows written and drops seen, per
    rule (more seen than written when capped)."""

    path: str
    rows: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


class DropWriter:
    """Streams drops into one part, a row group at a time; the part appears whole on close."""

    def __init__(self, directory: str, name: str, cap: int | None = None):
        self.path = storage.join(directory, f"part-{name}.parquet")
        self.cap = cap
        self.rows: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self._buffer: list[dict[str, str]] = []
        self._stack: ExitStack | None = None
        self._writer: pq.ParquetWriter | None = None

    def add(self, drop: Drop) -> None:
        self.counts[drop.reason] += 1
        if self.cap is not None and self.rows[drop.reason] >= self.cap:
            return
        self.rows[drop.reason] += 1
        self._buffer.append(drop_row(drop))
        if len(self._buffer) >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self._writer is None:
            self._stack = ExitStack()
            out = self._stack.enter_context(storage.atomic_output(self.path))
            self._writer = self._stack.enter_context(
                pq.ParquetWriter(out, DROP_SCHEMA, compression="zstd")
            )
        self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=DROP_SCHEMA))
        self._buffer = []

    def close(self) -> DropFile | None:
        """Finish the part; None when no drop came."""
        if not self.counts:
            return None
        if self._buffer or self._writer is None:
            self._flush()
        assert self._stack is not None
        self._stack.close()
        return DropFile(self.path.rsplit("/", 1)[-1], dict(self.rows), dict(self.counts))


def write_drops(
    drops: Iterable[Drop], directory: str, name: str, cap: int | None = None
) -> DropFile | None:
    writer = DropWriter(directory, name, cap)
    for drop in drops:
        writer.add(drop)
    return writer.close()


def drop_order(d: Drop) -> tuple[str, ...]:
    """The order of rows in a part: parts whose drops arrived in any order read the same."""
    return d.reason, d.where, d.id, d.detail, d.url, d.kept


def part_counts(part: DropFile) -> Iterator[tuple[str, int]]:
    """A part's drops per rule, all it saw (rows capped or not): what a stage counts."""
    yield from part.counts.items()


def _write_batch(batch: list[Drop], directory: str, cap: int | None) -> list[DropFile]:
    """A batch of drops -> its part, named by its content (whatever order the batch came in)."""
    batch = sorted(batch, key=drop_order)
    h = hashlib.blake2b(digest_size=10)
    for d in batch:
        h.update("\x1f".join((d.reason, *(getattr(d, f) for f in FIELDS))).encode() + b"\x1e")
    written = write_drops(batch, directory, h.hexdigest(), cap)
    return [written] if written else []


class LogDrops(beam.PTransform):
    """PCollection[Drop] -> PCollection[DropFile]: parts written where the drops are."""

    def __init__(self, directory: str, cap: int | None = None):
        super().__init__()
        self.directory, self.cap = directory, cap

    def expand(self, drops):
        return (
            drops
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=BATCH)
            | "Write" >> beam.FlatMap(_write_batch, self.directory, self.cap)
        )


def commit_drops(
    files: list[DropFile], directory: str, stage_dir: str, cap: int | None
) -> dict[str, Any]:
    """List the parts for the stage's manifest, trimmed to ``cap`` rows per rule across parts,
    and remove the parts a killed or retried run left that are not listed."""
    from foundation.layout import record_path

    files = sorted(files, key=lambda f: f.path)
    listed = {f.path for f in files}
    for name in storage.listdir(directory):
        if name not in listed:
            storage.remove(storage.join(directory, name))
    if cap is not None:
        files = _trim(files, directory, cap)
    rows: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for f in files:
        rows.update(f.rows)
        counts.update(f.counts)
    return {
        "dir": record_path(directory, stage_dir),
        "files": [f.path for f in files if sum(f.rows.values())],
        "rows": dict(sorted(rows.items())),
        "max_per_rule": cap,
        "capped": {rule: n - rows[rule] for rule, n in sorted(counts.items()) if n > rows[rule]},
    }


def _trim(files: list[DropFile], directory: str, cap: int) -> list[DropFile]:
    """Keep the first ``cap`` rows of each rule, in part order; rewrite the parts that lose rows."""
    left: Counter[str] = Counter()
    out = []
    for f in files:
        keep = {rule: max(0, min(n, cap - left[rule])) for rule, n in f.rows.items()}
        left.update(keep)
        path = storage.join(directory, f.path)
        if keep != f.rows:
            table = pq.read_table(path)
            mask = _first_per_rule(table.column("rule").to_pylist(), keep)
            table = table.filter(pa.array(mask))
            if table.num_rows:
                with storage.atomic_output(path) as sink:
                    pq.write_table(table, sink, compression="zstd")
            else:
                storage.remove(path)
        out.append(DropFile(f.path, {r: n for r, n in keep.items() if n}, f.counts))
    return out


def _first_per_rule(rules: list[str], keep: dict[str, int]) -> list[bool]:
    seen: Counter[str] = Counter()
    mask = []
    for rule in rules:
        seen[rule] += 1
        mask.append(seen[rule] <= keep.get(rule, 0))
    return mask


def read_drops(directory: str, filters: Any = None, files: list[str] | None = None) -> pa.Table:
    """Rows of the listed parts (every part when ``files`` is None) matching pyarrow
    ``filters``: only the row groups that can match are read."""
    names = files if files is not None else storage.listdir(directory)
    tables = []
    for name in names:
        fs, p = storage.resolve(storage.join(directory, name))
        tables.append(pq.read_table(p, filesystem=fs, filters=filters, schema=DROP_SCHEMA))
    return pa.concat_tables(tables) if tables else DROP_SCHEMA.empty_table()
