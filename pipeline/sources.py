"""Pushshift submission dumps -> PCollection[Submission | Drop].

Dumps are read as they are distributed: zstd (Pushshift's 2 GiB window), xz, bz2, gzip or
plain NDJSON, recognised by their magic bytes (the file name only as a fallback). Every file is
streamed in small chunks through an incremental decompressor and split into lines here, so a
30 GB dump never sits in memory and a truncated or corrupt stream is *noticed* (zstd's stream
reader would return a silent early EOF) and reported where it broke, keeping every line read
before it. Concatenated streams (multi-frame zstd, pbzip2, multi-member gzip) are read whole.

Each bad line becomes ``Drop("source.<reason>", where="path:line", detail=...)``:

    bad_json        not JSON (or not UTF-8)             not_object     JSON but not an object
    missing_url     no/empty url                        missing_score  no score
    missing_id      no id                               missing_created_utc
    bad_type        a field of the wrong type           line_too_long  a line over MAX_LINE_BYTES
    truncated       the compressed stream ends early or is corrupt (where = the line it broke in)

The job goes on; the ingest job fails afterwards through :func:`check_bad_fraction` when too
large a share of lines was bad.
"""

from __future__ import annotations

import bz2
import functools
import hashlib
import itertools
import logging
import lzma
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import apache_beam as beam
from apache_beam.metrics import Metrics

from foundation import storage
from foundation.errors import WebtextError
from foundation.records import Drop, Submission
from foundation.shards import MANIFEST

log = logging.getLogger(__name__)

ZSTD_MAX_WINDOW = 2**31
"""Pushshift compresses with ``--long=31``; the decoder must allow that window."""
CHUNK_BYTES = 1 << 16
"""Compressed bytes fed to the decoder at a time (keeps each decoded piece small)."""
MAX_LINE_BYTES = 16 << 20
"""A longer line is dropped (``source.line_too_long``) instead of growing a buffer forever."""
DUMP_SUFFIXES = (".zst", ".zstd", ".xz", ".lzma", ".bz2", ".gz", ".json", ".jsonl", ".ndjson")
"""Files a *directory* pattern picks up (plus names without a suffix, like ``RS_2011-01``)."""
_GLOB_CHARS = frozenset("*?[")


class BadInputError(WebtextError, RuntimeError):
    """The dumps cannot be used: a pattern matches no dump file (raised before any pipeline
    runs), or too many lines are malformed (the job stops instead of silently losing data)."""


class DumpNotFoundError(BadInputError, FileNotFoundError):
    """A dump pattern matches no dump file; also a FileNotFoundError, as callers expect."""


# --- finding files -------------------------------------------------------------------------------


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _skipped(path: str) -> bool:
    """Hidden files (partial downloads, editor files) and a stage's ``_manifest.json``."""
    return _name(path).startswith((".", "_"))


def _looks_like_dump(path: str) -> bool:
    name = _name(path)
    return name.lower().endswith(DUMP_SUFFIXES) or "." not in name


def _is_directory(path: str) -> bool:
    import pyarrow.fs as pafs

    fs, p = storage.resolve(path)
    return fs.get_file_info(p).type == pafs.FileType.Directory


def _dumps_in_directory(directory: str) -> list[str]:
    """The dump-like files directly inside ``directory``; none is an error saying what is there."""
    from apache_beam.io.filesystems import FileSystems

    pattern = FileSystems.join(directory, "*")
    inside = [m.path for m in FileSystems.match([pattern])[0].metadata_list]
    found = [p for p in inside if not _skipped(p) and _looks_like_dump(p)]
    if found:
        return found
    if any(_name(p) == MANIFEST for p in inside):
        what = f"it is a webtext stage's output ({MANIFEST}), not Pushshift dumps"
    else:
        what = "it is empty" if not inside else f"it holds {len(inside)} other file(s)"
    suffixes = ", ".join(DUMP_SUFFIXES)
    raise DumpNotFoundError(f"{directory}: no dump files ({suffixes}) in this directory; {what}")


def expand_patterns(patterns: Iterable[str]) -> list[str]:
    """Files, globs or directories -> a sorted list of files, through Beam's FileSystems.

    A directory contributes its dump-like files (``DUMP_SUFFIXES`` or no suffix; not
    recursive); a glob or a file name contributes everything it matches. Hidden files and
    ``_``-names are skipped (a shell glob skips the first; a stage writes the second). A
    pattern that matches nothing raises :class:`DumpNotFoundError` naming it, before any
    pipeline runs.
    """
    from apache_beam.io.filesystems import FileSystems

    files: set[str] = set()
    for pattern in patterns:
        if not _GLOB_CHARS.intersection(pattern) and _is_directory(pattern):
            files.update(_dumps_in_directory(pattern))
            continue
        matched = FileSystems.match([pattern])[0].metadata_list
        found = [m.path for m in matched if not _skipped(m.path)]
        if not found:
            raise DumpNotFoundError(f"no dump file matches {pattern} (files, globs or folders)")
        files.update(found)
    return sorted(files)


# --- decoding ------------------------------------------------------------------------------------


class _Decoder(Protocol):
    eof: bool
    unused_data: bytes

    def decompress(self, data: bytes) -> bytes: ...


class _Plain:
    eof = False
    unused_data = b""

    def decompress(self, data: bytes) -> bytes:
        return data


def _zstd() -> _Decoder:
    import zstandard

    return zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).decompressobj()


def _gzip() -> _Decoder:
    return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)


_MAGIC: list[tuple[bytes, str]] = [
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bz2"),
    (b"\x1f\x8b", "gzip"),
]
_BY_SUFFIX = {
    ".zst": "zstd",
    ".zstd": "zstd",
    ".xz": "xz",
    ".lzma": "xz",
    ".bz2": "bz2",
    ".gz": "gzip",
}
_DECODERS: dict[str, Callable[[], _Decoder]] = {
    "zstd": _zstd,
    "xz": lzma.LZMADecompressor,
    "bz2": bz2.BZ2Decompressor,
    "gzip": _gzip,
    "plain": _Plain,
}


def detect_format(path: str, head: bytes) -> str:
    """``zstd``, ``xz``, ``bz2``, ``gzip`` or ``plain``: magic bytes first, then the suffix."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    lower = path.lower()
    for suffix, name in _BY_SUFFIX.items():
        if lower.endswith(suffix):
            return name
    return "plain"


def _decode_errors() -> tuple[type[BaseException], ...]:
    import zstandard

    return (EOFError, OSError, lzma.LZMAError, zlib.error, zstandard.ZstdError)


def _decoded_chunks(raw: Iterable[bytes], path: str, fmt: str) -> Iterator[bytes]:
    """Decompressed bytes of the raw chunks; raises EOFError if the last stream is cut short."""
    make = _DECODERS[fmt]
    decoder = make()
    started = False  # the current decoder has been fed data
    for data in raw:
        while data:
            if decoder.eof:  # a concatenated stream/frame/member follows
                decoder = make()
            started = True
            out = decoder.decompress(data)
            if out:
                yield out
            data = decoder.unused_data if decoder.eof else b""
    if fmt != "plain" and started and not decoder.eof:
        raise EOFError(f"{fmt} stream of {path} ends before its end marker")


# --- lines to submissions ------------------------------------------------------------------------


def _int_field(record: dict, name: str, *, truncate: bool = False) -> int | None:
    """An integer field: ints, integral floats and numeric strings (old dumps have those).

    ``truncate`` accepts any float (newer dumps have float ``created_utc``) and drops the
    fraction.
    """
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{name} is a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and (truncate or value.is_integer()):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise TypeError(f"{name}={value!r} is not an integer")


def _flag(record: dict, name: str) -> bool:
    value = record.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise TypeError(f"{name}={value!r} is not a boolean")
    return value


def _text(record: dict, name: str) -> str:
    value = record.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{name}={value!r} is not a string")
    return value


def parse_submission(record: Any, where: str) -> Submission | Drop:
    """One decoded dump record (old or ``_meta`` layout, or praw's data) -> Submission | Drop.

    Pushshift stored URLs HTML-escaped in some years (``&amp;``): that one escape is undone,
    as Reddit's own ``raw_json=1`` would; other entities are left alone (``&copy=1`` is a
    query parameter, not ``©``).
    """
    if not isinstance(record, dict):
        return Drop("source.not_object", where, type(record).__name__)
    try:
        url = _text(record, "url").strip()
        if not url:
            return Drop("source.missing_url", where)
        sub_id = _text(record, "id")
        if not sub_id:
            return Drop("source.missing_id", where)
        score = _int_field(record, "score")
        if score is None:
            return Drop("source.missing_score", where, f"id={sub_id}")
        created = _int_field(record, "created_utc", truncate=True)
        if created is None:
            return Drop("source.missing_created_utc", where, f"id={sub_id}")
        return Submission(
            id=sub_id,
            subreddit=_text(record, "subreddit"),
            url=url.replace("&amp;", "&"),
            score=score,
            created_utc=created,
            is_self=_flag(record, "is_self"),
            over_18=_flag(record, "over_18"),
            title=_text(record, "title"),
        )
    except TypeError as e:
        return Drop("source.bad_type", where, str(e))


def parse_line(line: bytes, where: str) -> Submission | Drop:
    import json

    try:
        record = json.loads(line)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        return Drop("source.bad_json", where, str(e)[:200])
    return parse_submission(record, where)


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes | None]:
    """Split a byte stream into lines; ``None`` stands for a line over MAX_LINE_BYTES."""
    pending = bytearray()
    too_long = False
    for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if not too_long:
                    pending += chunk[start:]
                    if len(pending) > MAX_LINE_BYTES:
                        too_long, pending = True, bytearray()
                break
            if too_long:
                yield None
            else:
                pending += chunk[start:end]
                yield bytes(pending) if len(pending) <= MAX_LINE_BYTES else None
            pending, too_long = bytearray(), False
            start = end + 1
    if too_long:
        yield None
    elif pending:
        yield bytes(pending)


def _line_item(line: bytes | None, where: str) -> Submission | Drop | None:
    """One dump line -> Submission | Drop; None for a blank line (numbered, not an item)."""
    if line is None or len(line) > MAX_LINE_BYTES:
        return Drop("source.line_too_long", where, f"over {MAX_LINE_BYTES} bytes")
    if not line.strip():
        return None
    return parse_line(line, where)


def _truncated(path: str, line: int, fmt: str, error: BaseException) -> Drop:
    Metrics.counter("webtext.source", "source.truncated").inc()
    log.warning("%s:%d: %s stream broken: %s", path, line, fmt, error)
    return Drop("source.truncated", f"{path}:{line}", f"{fmt}: {error}"[:300])


def _raw_chunks(f, path: str) -> tuple[str, Iterator[bytes]]:
    head = f.read(CHUNK_BYTES)
    fmt = detect_format(path, head)
    return fmt, itertools.chain([head], iter(functools.partial(f.read, CHUNK_BYTES), b""))


def read_dump(path: str) -> Iterator[Submission | Drop]:
    """Stream one dump file (any Beam filesystem) as Submissions and bad-line Drops."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    counter = Metrics.counter("webtext.source", "submissions")
    ok = bad = 0
    number = 0
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        fmt, raw = _raw_chunks(f, path)
        try:
            for number, line in enumerate(_lines(_decoded_chunks(raw, path, fmt)), start=1):
                item = _line_item(line, f"{path}:{number}")
                if item is None:
                    continue
                if isinstance(item, Drop):
                    bad += 1
                    Metrics.counter("webtext.source", item.reason).inc()
                else:
                    ok += 1
                    counter.inc()
                yield item
        except _decode_errors() as e:
            bad += 1
            yield _truncated(path, number + 1, fmt, e)
    log.info("read %s (%s): %d submissions, %d bad lines", path, fmt, ok, bad)


# --- splitting a dump into line chunks (read in parallel) ---------------------------------------


@dataclass(frozen=True)
class DumpChunk:
    """Whole lines ``first_line``.. of dump ``source``, decompressed into the file ``path``.

    A line over MAX_LINE_BYTES is not stored: it is an empty line in the file and its index
    (from 0) is listed in ``too_long``, so its number and its drop stay what they were.
    """

    source: str
    path: str
    first_line: int
    lines: int
    too_long: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return _name(self.path).rsplit(".", 1)[0]


def _chunk_prefix(source: str) -> str:
    return hashlib.blake2b(source.encode("utf-8"), digest_size=6).hexdigest()


def _write_chunk(data: bytes, directory: str, source: str, index: int) -> str:
    path = storage.join(directory, f"{_chunk_prefix(source)}-{index:06d}.ndjson")
    storage.write_bytes(path, data)
    return path


def split_dump(
    path: str, directory: str, chunk_bytes: int, part: int = 0, parts: int = 1
) -> Iterator[DumpChunk | Drop]:
    """Decompress one dump into files of whole lines (about ``chunk_bytes`` each) in
    ``directory``; a DumpChunk per file, and a ``source.truncated`` Drop where the stream breaks.

    Only this step decompresses and finds line ends (in C: ``rfind``/``count``); parsing the
    chunks is left to whichever worker gets them. The chunk files are named by the dump and
    their index, so a retried split writes the same files. Reader ``part`` of ``parts`` writes
    and yields only chunks ``index % parts == part`` (every reader decompresses the whole dump,
    which is cheap next to parsing, to know where its chunks start); the truncation Drop comes
    from reader 0. Together the readers give what one reader gives.
    """
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    buffer = bytearray()
    lines = 0  # lines in earlier chunks
    too_long: list[int] = []  # indexes in the current chunk
    skipping = False  # inside a line over MAX_LINE_BYTES
    index = 0

    def flush(data: bytes | bytearray, end: int) -> Iterator[DumpChunk]:
        """The chunk of ``data[:end]``, written and yielded if it is this reader's."""
        nonlocal lines, too_long, index
        n = data.count(b"\n", 0, end)
        if index % parts == part:
            written = _write_chunk(bytes(data[:end]), directory, path, index)
            yield DumpChunk(path, written, lines + 1, n, tuple(too_long))
        lines += n
        too_long, index = [], index + 1

    def pending_lines() -> int:
        return buffer.count(b"\n")

    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        fmt, raw = _raw_chunks(f, path)
        try:
            for piece in _decoded_chunks(raw, path, fmt):
                if skipping:
                    end = piece.find(b"\n")
                    if end < 0:
                        continue
                    skipping, piece = False, piece[end + 1 :]
                    too_long.append(pending_lines())
                    buffer += b"\n"
                buffer += piece
                cut = buffer.rfind(b"\n")
                if len(buffer) - cut - 1 > MAX_LINE_BYTES:  # an endless last line: skip it
                    del buffer[cut + 1 :]
                    skipping = True
                if len(buffer) >= chunk_bytes and cut >= 0:
                    yield from flush(buffer, cut + 1)
                    del buffer[: cut + 1]
        except _decode_errors() as e:
            cut = buffer.rfind(b"\n")
            if cut >= 0:
                yield from flush(buffer, cut + 1)
            if part == 0:
                yield _truncated(path, lines + 1, fmt, e)
            return
    if skipping:
        too_long.append(pending_lines())
        buffer += b"\n"
    elif buffer and not buffer.endswith(b"\n"):
        buffer += b"\n"
    if buffer:
        yield from flush(buffer, len(buffer))


def chunk_items(chunk: DumpChunk) -> Iterator[Submission | Drop]:
    """The Submissions and bad-line Drops of one chunk, numbered as in the whole dump."""
    data = storage.read_bytes(chunk.path)
    lines = data.split(b"\n")
    lines.pop()  # a chunk ends with a newline
    too_long = set(chunk.too_long)
    for offset, line in enumerate(lines):
        where = f"{chunk.source}:{chunk.first_line + offset}"
        item = _line_item(None if offset in too_long else line, where)
        if item is not None:
            yield item


# --- the transform and the bad-input check ------------------------------------------------------


ReaderShare = tuple[str, int, int]
"""(dump file, reader k, of n readers): one item of work at the start of the pipeline."""


def _split_share(share: ReaderShare, directory: str, chunk_bytes: int):
    path, part, parts = share
    return split_dump(path, directory, chunk_bytes, part, parts)


def reader_shares(patterns: tuple[str, ...], readers: int) -> list[ReaderShare]:
    """Every matched dump file, ``readers`` times: each reader takes a share of its chunks."""
    files = expand_patterns(patterns)
    log.info("%d dump file(s) from %d pattern(s)", len(files), len(patterns))
    return [(path, k, readers) for path in files for k in range(readers)]


class SplitDumps(beam.PTransform):
    """PBegin -> PCollection[DumpChunk | Drop]: every matched dump split into line chunks.

    Each file is decompressed by ``readers`` workers (:func:`split_dump`), each writing its
    share of the chunk files under ``directory``; the chunks then spread over every worker,
    which parse them (:func:`chunk_items`) with line numbers and bad-line drops exactly as
    :func:`read_dump`. The readers are the Create's items, so runners that partition work by
    the Create (Dask) parse one dump in ``readers`` tasks; Beam's Reshuffle does that on the
    others.
    """

    def __init__(
        self, patterns: tuple[str, ...], directory: str, chunk_bytes: int, readers: int = 1
    ) -> None:
        super().__init__()
        if isinstance(patterns, str) or not patterns:
            raise ValueError(f"SplitDumps needs a non-empty tuple of patterns, got {patterns!r}")
        if chunk_bytes <= 0:
            raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
        if readers <= 0:
            raise ValueError(f"readers must be positive, got {readers}")
        self.patterns, self.directory, self.chunk_bytes = tuple(patterns), directory, chunk_bytes
        self.readers = readers

    def expand(self, pbegin):
        return (
            pbegin
            | "Files" >> beam.Create(reader_shares(self.patterns, self.readers))
            | "SpreadFiles" >> beam.Reshuffle()
            | "Split" >> beam.FlatMap(_split_share, self.directory, self.chunk_bytes)
            | "SpreadChunks" >> beam.Reshuffle()
        )


def check_bad_fraction(
    n_ok: int,
    drops_by_reason: dict[str, int],
    max_bad_fraction: float,
    examples: list[str],
) -> None:
    """Raise :class:`BadInputError` when bad/(bad+ok) exceeds ``max_bad_fraction``.

    ``drops_by_reason`` holds counts of bad-line reasons (``source.*``; other reasons are
    ignored so a full drop table may be passed); ``examples`` are ``file:line`` places shown
    in the message so the user can look at the bad lines.
    """
    by_reason = {k: v for k, v in drops_by_reason.items() if k.startswith("source.") and v}
    bad = sum(by_reason.values())
    total = bad + n_ok
    if bad == 0 or bad / total <= max_bad_fraction:
        return
    reasons = ", ".join(f"{k}={v}" for k, v in sorted(by_reason.items(), key=lambda kv: -kv[1]))
    shown = "; ".join(examples[:5]) or "(none recorded)"
    raise BadInputError(
        f"{bad} of {total} dump lines are bad ({bad / total:.2%}), more than "
        f"source.max_bad_fraction={max_bad_fraction:.2%} allows; by reason: {reasons}; "
        f"for example: {shown}"
    )
