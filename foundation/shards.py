"""The text-shard schema and the manifest every stage reads and writes.

A shard directory holds ``part-00000.parquet`` (or ``.arrow``) files and one ``_manifest.json``.
The manifest is the commit record: a shard exists for downstream stages only once it is listed
there with its row count and sha256, so a killed job never leaves a half shard that looks whole.
The manifest's ``checksum`` (over the listed files' hashes) binds later artefacts, such as a
contamination report, to exactly these shards.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from foundation import storage
from foundation.errors import WebtextError

SCHEMA_VERSION = 2
"""2: text shards say where each page's bytes came from (``source``, ``record``). Shards of
version 1 lack those columns and still read (as null)."""
MANIFEST = "_manifest.json"
REJECTED = "_manifest.rejected.json"
"""Written instead of the manifest when a commit check vetoes the stage (the reason inside)."""

SUBMISSION_TYPE = pa.struct(
    [
        ("id", pa.string()),
        ("subreddit", pa.string()),
        ("score", pa.int64()),
        ("created_utc", pa.int64()),
    ]
)

TEXT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # stable: hash of the canonical URL
        pa.field("url", pa.string(), nullable=False),  # as first posted
        pa.field("canonical_url", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("submissions", pa.list_(SUBMISSION_TYPE), nullable=False),
        pa.field("karma", pa.int64(), nullable=False),
        pa.field("created_utc", pa.int64(), nullable=False),  # earliest submission, unix s
        pa.field("title", pa.string()),
        pa.field("date", pa.string()),  # publication date when the page gives one
        pa.field("text", pa.string(), nullable=False),
        pa.field("language", pa.string()),
        pa.field("n_chars", pa.int64(), nullable=False),
        pa.field("n_words", pa.int64(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),  # of the normalised text
        pa.field("fetch_time", pa.int64(), nullable=False),  # unix s; an archive's capture time
        pa.field("http_status", pa.int32(), nullable=False),
        # Provenance (version 2): "live", "warc" or the archive's name; the record's address
        # (an archive's replay URL, or WARC file@offset; "" when fetched live).
        pa.field("source", pa.string()),
        pa.field("record", pa.string()),
    ]
)

URL_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("canonical_url", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("karma", pa.int64(), nullable=False),
        pa.field("created_utc", pa.int64(), nullable=False),
        pa.field("submissions", pa.list_(SUBMISSION_TYPE), nullable=False),
    ]
)

Format = Literal["parquet", "arrow"]
SUFFIX: dict[str, str] = {"parquet": ".parquet", "arrow": ".arrow"}


class ShardError(WebtextError, RuntimeError):
    """A shard or manifest is missing, corrupt or does not match its manifest."""


@dataclass(frozen=True)
class ShardFile:
    path: str  # relative to the shard directory
    rows: int
    bytes: int
    sha256: str


@dataclass
class Manifest:
    """What a shard directory holds; written last, atomically, by the stage's commit step."""

    kind: str  # "text", "tokens", ...
    format: str
    files: list[ShardFile] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    created: float = field(default_factory=time.time)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def checksum(self) -> str:
        """sha256 over the files' names and hashes: changes iff the shard contents change."""
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.path):
            h.update(f"{f.path}\t{f.sha256}\n".encode())
        return h.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows"] = self.rows
        d["checksum"] = self.checksum
        return d

    def save(self, directory: str) -> None:
        storage.write_text(
            storage.join(directory, MANIFEST), json.dumps(self.to_dict(), indent=2) + "\n"
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "manifest") -> Manifest:
        try:
            files = [ShardFile(**f) for f in d["files"]]
            m = cls(
                kind=d["kind"],
                format=d["format"],
                files=files,
                counts=dict(d.get("counts", {})),
                config=dict(d.get("config", {})),
                extra=dict(d.get("extra", {})),
                schema_version=int(d["schema_version"]),
                created=float(d.get("created", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ShardError(f"{where}: malformed manifest ({e!r})") from e
        if m.schema_version > SCHEMA_VERSION:
            raise ShardError(
                f"{where}: schema version {m.schema_version} is newer than this webtext "
                f"understands ({SCHEMA_VERSION}); upgrade webtext"
            )
        if "checksum" in d and d["checksum"] != m.checksum:
            raise ShardError(f"{where}: manifest checksum does not match its file list")
        return m

    @classmethod
    def load(cls, directory: str, kind: str | None = None) -> Manifest:
        """The manifest of a finished shard directory, checked to be of ``kind`` when given.

        A missing directory, an unfinished one and another stage's output each raise
        ShardError naming the directory and the command that makes the expected kind.
        """
        path = storage.join(directory, MANIFEST)
        if not storage.exists(path):
            raise ShardError(_no_manifest(directory, kind))
        try:
            data = json.loads(storage.read_text(path))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ShardError(f"{path}: manifest is not valid JSON ({e})") from e
        manifest = cls.from_dict(data, where=path)
        if kind is not None and manifest.kind != kind:
            raise ShardError(
                f"{directory}: a {manifest.kind!r} directory, expected {_described(kind)}"
            )
        return manifest

    def paths(self, directory: str) -> list[str]:
        return [storage.join(directory, f.path) for f in self.files]

    def verify(self, directory: str, checksums: bool = True) -> None:
        """Raise ShardError naming the first file that is missing, truncated or altered."""
        for f in self.files:
            path = storage.join(directory, f.path)
            if not storage.exists(path):
                raise ShardError(f"{path}: listed in the manifest but missing")
            if storage.size(path) != f.bytes:
                raise ShardError(
                    f"{path}: {storage.size(path)} bytes, manifest says {f.bytes} (truncated?)"
                )
            if checksums and storage.sha256_file(path) != f.sha256:
                raise ShardError(f"{path}: sha256 does not match the manifest (corrupt)")


MADE_BY = {
    "urls": "`webtext ingest`",
    "text": "`webtext ingest` or `webtext dedup`",
    "tokens": "`webtext tokenize`",
}
"""The command that makes each kind of shard directory, for messages."""
_KIND_NAMES = {"urls": "URL units", "text": "text shards", "tokens": "token shards"}


def _described(kind: str | None) -> str:
    if kind is None:
        return "a finished shard directory"
    made_by = f" (made by {MADE_BY[kind]})" if kind in MADE_BY else ""
    return f"{_KIND_NAMES.get(kind, repr(kind))}{made_by}"


def _no_manifest(directory: str, kind: str | None) -> str:
    if not storage.exists(directory):
        return f"{directory}: no such directory; expected {_described(kind)}"
    return f"{directory}: no manifest ({MANIFEST}); expected {_described(kind)}"


def shard_name(index: int, fmt: str) -> str:
    return f"part-{index:05d}{SUFFIX[fmt]}"


ROW_GROUP = 2048


def write_table(table: pa.Table, path: str, fmt: str) -> ShardFile:
    """Write one shard atomically and describe it for the manifest."""
    with storage.atomic_output(path) as out:
        if fmt == "parquet":
            pq.write_table(table, out, compression="zstd", row_group_size=ROW_GROUP)
        elif fmt == "arrow":
            with ipc.new_file(out, table.schema) as writer:
                writer.write_table(table)
        else:
            raise ValueError(f"unknown shard format {fmt!r}")
    return ShardFile(
        path=path.rsplit("/", 1)[-1],
        rows=table.num_rows,
        bytes=storage.size(path),
        sha256=storage.sha256_file(path),
    )


def write_row_groups(tables: Iterable[pa.Table], schema: pa.Schema, path: str) -> ShardFile:
    """Write one Parquet shard from consecutive tables of ROW_GROUP rows (the last may be
    shorter), holding one at a time: the same bytes as :func:`write_table` of them all."""
    rows = 0
    with (
        storage.atomic_output(path) as out,
        pq.ParquetWriter(out, schema, compression="zstd") as writer,
    ):
        for table in tables:
            writer.write_table(table, row_group_size=ROW_GROUP)
            rows += table.num_rows
    return ShardFile(
        path=path.rsplit("/", 1)[-1],
        rows=rows,
        bytes=storage.size(path),
        sha256=storage.sha256_file(path),
    )


def read_table(path: str, columns: list[str] | None = None) -> pa.Table:
    """Read one shard (format from its suffix); a corrupt file raises ShardError naming it."""
    fs, p = storage.resolve(path)
    try:
        if p.endswith(".arrow"):
            with fs.open_input_file(p) as f:
                table = ipc.open_file(f).read_all()
            return table.select(columns) if columns else table
        return pq.read_table(p, filesystem=fs, columns=columns)
    except (pa.ArrowInvalid, OSError) as e:
        raise ShardError(f"{path}: cannot read shard ({e})") from e


def iter_batches(
    directory: str, columns: list[str] | None = None, verify: bool = True
) -> Iterator[pa.RecordBatch]:
    """Stream the record batches of every shard a manifest lists, in manifest order."""
    manifest = Manifest.load(directory)
    if verify:
        manifest.verify(directory, checksums=False)
    for path in manifest.paths(directory):
        yield from read_table(path, columns).to_batches()


def read_shards(directory: str, columns: list[str] | None = None) -> pa.Table:
    """Every shard a manifest lists as one table (small runs and tests; stream big ones)."""
    manifest = Manifest.load(directory)
    manifest.verify(directory, checksums=False)
    tables = [read_table(path, columns) for path in manifest.paths(directory)]
    return pa.concat_tables(tables) if tables else pa.table({})


def table_from_rows(rows: list[dict[str, Any]], schema: pa.Schema = TEXT_SCHEMA) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)
