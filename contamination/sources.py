"""Where documents come from: test sets and training data as files, folders or shard dirs.

Input: paths. Output: :class:`DocSource` units and ``(doc_id, text)`` pairs.

- Plain text (``.txt`` or any unknown suffix when named directly): the whole file is one
  document, or one document per line, or per blank-line-separated paragraph (``text_docs``).
- JSONL (``.jsonl``, ``.ndjson``): one document per line, the text in a named field.
- Parquet (``.parquet``) and Arrow IPC (``.arrow``): one document per row, a named column.
- A folder: every file of those kinds below it, in sorted path order.
- A shard directory (it holds ``_manifest.json``): the files its manifest lists, column ``text``.

Bad input fails early with :class:`ContaminationInputError` naming the file (and line).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from foundation import shards, storage
from foundation.errors import WebtextError
from foundation.textfiles import json_objects, read_utf8

Kind = Literal["text", "jsonl", "parquet", "arrow"]
SUFFIX_KIND: dict[str, Kind] = {
    ".txt": "text",
    ".text": "text",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".arrow": "arrow",
}
TextDocs = Literal["file", "line", "paragraph"]


class ContaminationInputError(WebtextError, ValueError):
    """A test set or training file cannot be used; the message names the file (and line)."""


@dataclass(frozen=True)
class ReadOptions:
    text_docs: TextDocs = "file"
    """Plain text: the whole file is one document, or each line, or each paragraph."""
    field: str = "text"
    """The JSONL field or Parquet/Arrow column holding the text."""


@dataclass(frozen=True)
class DocSource:
    """One file of documents: the unit of parallel work."""

    path: str
    kind: Kind
    field: str = "text"
    text_docs: TextDocs = "file"
    id_column: str | None = None


@dataclass(frozen=True)
class TrainSide:
    """The training data: its files, and the checksum a report is bound to."""

    sources: tuple[DocSource, ...]
    kind: Literal["shards", "files"]
    checksum: str
    """The shard manifest's checksum, or a sha256 over the files' paths and sizes."""
    paths: tuple[str, ...]


def _kind(path: str) -> Kind | None:
    lower = path.lower()
    return next((k for s, k in SUFFIX_KIND.items() if lower.endswith(s)), None)


def expand(path: str, opts: ReadOptions) -> list[DocSource]:
    """The document files a path names: itself, or every known file below a folder."""
    fs, p = storage.resolve(path)
    info = fs.get_file_info(p)
    if info.type == pafs.FileType.NotFound:
        raise ContaminationInputError(f"{path}: no such file or directory")
    if info.type == pafs.FileType.File:
        return [DocSource(path, _kind(path) or "text", opts.field, opts.text_docs)]
    if storage.exists(storage.join(path, shards.MANIFEST)):
        return list(shard_sources(path))
    found = sorted(
        i.path for i in fs.get_file_info(pafs.FileSelector(p, recursive=True))
        if i.type == pafs.FileType.File and _kind(i.path)
    )  # fmt: skip
    if not found:
        known = ", ".join(SUFFIX_KIND)
        raise ContaminationInputError(f"{path}: folder holds no document files ({known})")
    prefix = path.split("://", 1)[0] + "://" if "://" in path else ""
    return [DocSource(prefix + f, _kind(f) or "text", opts.field, opts.text_docs) for f in found]


def shard_sources(directory: str) -> tuple[DocSource, ...]:
    manifest = shards.Manifest.load(directory)
    return tuple(
        DocSource(p, "arrow" if p.endswith(".arrow") else "parquet", "text", "file", "id")
        for p in manifest.paths(directory)
    )


def train_side(paths: list[str] | tuple[str, ...], opts: ReadOptions) -> TrainSide:
    """Resolve the training side: one shard directory, or any number of files/folders."""
    if not paths:
        raise ContaminationInputError("no training data given")
    if len(paths) == 1 and storage.exists(storage.join(paths[0], shards.MANIFEST)):
        manifest = shards.Manifest.load(paths[0], "text")
        manifest.verify(paths[0], checksums=False)
        return TrainSide(shard_sources(paths[0]), "shards", manifest.checksum, tuple(paths))
    sources = [s for p in paths for s in expand(p, opts)]
    h = hashlib.sha256()
    for s in sources:
        h.update(f"{s.path}\t{storage.size(s.path)}\n".encode())
    return TrainSide(tuple(sources), "files", h.hexdigest(), tuple(paths))


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def split_text(text: str, text_docs: TextDocs) -> Iterator[tuple[str, str]]:
    """``(id suffix, document)`` of a plain text: the whole text, each non-blank line (1-based
    line number) or each non-blank paragraph (``p`` + its 1-based number)."""
    if text_docs == "file":
        yield "", text
    elif text_docs == "line":
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                yield f":{i}", line
    else:
        paragraphs = (p for p in text.split("\n\n") if p.strip())
        for i, para in enumerate(paragraphs, 1):
            yield f":p{i}", para


def _text_docs(src: DocSource) -> Iterator[tuple[str, str]]:
    text = read_utf8(src.path, ContaminationInputError)
    if not text.strip():
        raise ContaminationInputError(f"{src.path}: empty file, no documents")
    name = _name(src.path)
    for suffix, doc in split_text(text, src.text_docs):
        yield name + suffix, doc


def jsonl_records(
    src: DocSource, records: Iterator[tuple[int, dict[str, Any]]]
) -> Iterator[tuple[str, str]]:
    """``(doc_id, text)`` of JSONL records ``(line, object)``; a record without the text
    field, or with a non-string one, raises naming the file and line."""
    name = _name(src.path)
    for i, record in records:
        if src.field not in record:
            raise ContaminationInputError(
                f"{src.path}:{i}: no field {src.field!r} (fields: {sorted(record)}); "
                "choose one with --contamination-field"
            )
        value = record[src.field]
        if not isinstance(value, str):
            raise ContaminationInputError(
                f"{src.path}:{i}: field {src.field!r} is {type(value).__name__}, not a string"
            )
        yield str(record.get("id", f"{name}:{i}")), value


def _jsonl_docs(src: DocSource) -> Iterator[tuple[str, str]]:
    seen = False
    for doc in jsonl_records(src, json_objects(src.path, ContaminationInputError)):
        seen = True
        yield doc
    if not seen:
        raise ContaminationInputError(f"{src.path}: empty file, no documents")


def _table_batches(src: DocSource) -> Iterator[pa.RecordBatch]:
    fs, p = storage.resolve(src.path)
    what = "Parquet" if src.kind == "parquet" else "Arrow"
    try:
        if src.kind == "parquet":
            f = pq.ParquetFile(p, filesystem=fs)
            names = f.schema_arrow.names
            reader = None
        else:
            reader = ipc.open_file(fs.open_input_file(p))
            names = reader.schema.names
    except (pa.ArrowInvalid, OSError) as e:
        raise ContaminationInputError(f"{src.path}: cannot read {what} ({e})") from e
    if src.field not in names:
        raise ContaminationInputError(
            f"{src.path}: no column {src.field!r} (columns: {names}); "
            "choose one with --contamination-field"
        )
    columns = [src.field] + ([src.id_column] if src.id_column in names else [])
    try:
        if reader is None:
            yield from f.iter_batches(batch_size=4096, columns=columns)
        else:
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i).select(columns)
    except (pa.ArrowInvalid, OSError) as e:
        raise ContaminationInputError(f"{src.path}: cannot read {what} ({e})") from e


def _table_docs(src: DocSource) -> Iterator[tuple[str, str]]:
    name = _name(src.path)
    row = 0
    for batch in _table_batches(src):
        texts = batch.column(0).to_pylist()
        ids = batch.column(1).to_pylist() if batch.num_columns > 1 else [None] * len(texts)
        for doc_id, text in zip(ids, texts, strict=True):
            yield (str(doc_id) if doc_id is not None else f"{name}:{row}"), text or ""
            row += 1
    if row == 0:
        raise ContaminationInputError(f"{src.path}: empty file, no documents")


def iter_docs(src: DocSource) -> Iterator[tuple[str, str]]:
    """``(doc_id, text)`` for every document of one source, in file order."""
    if src.kind == "text":
        return _text_docs(src)
    if src.kind == "jsonl":
        return _jsonl_docs(src)
    return _table_docs(src)


def read_test_set(path: str, opts: ReadOptions) -> tuple[list[str], list[str]]:
    """(ids, texts) of a whole test set (test sets are small enough to hold)."""
    ids: list[str] = []
    texts: list[str] = []
    for src in expand(path, opts):
        for doc_id, text in iter_docs(src):
            ids.append(doc_id)
            texts.append(text)
    return ids, texts


def parse_test_sets(specs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``NAME=PATH`` strings -> {name: path}; a bare PATH is named after its file."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            path = spec
            name = _name(spec).split(".", 1)[0]
        if not name or not path:
            raise ContaminationInputError(f"test set {spec!r}: expected NAME=PATH")
        if name in out:
            raise ContaminationInputError(f"test set name {name!r} given twice")
        out[name] = path
    return out
