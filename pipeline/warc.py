"""Recording fetched responses to WARC (gzip or zstd) and reading them back, with warcio.

What our WARC files hold, per fetched page, is a ``request`` and a ``response`` record, linked
by ``WARC-Concurrent-To``:

* ``WARC-Target-URI`` is the FINAL URL (after redirects), as in any crawl;
* ``WARC-Webtext-Requested-URI`` is the URL we were asked to fetch (the candidate's), and
  ``WARC-Webtext-Doc-Id`` its document id: replay matches on these, so a page reached through
  redirects is found under the URL Reddit posted;
* the HTTP payload is the DECODED body (what the fetcher kept after undoing gzip/deflate/br), so
  ``Content-Encoding``, ``Transfer-Encoding`` and ``Content-Length`` are rewritten to match it;
  the wire's encoding is kept in ``X-Webtext-Original-Content-Encoding``. Replaying never
  decompresses our own files again, and any WARC reader gets a consistent record.

A file is written under a temporary name and renamed on :meth:`WarcRecorder.close`, so a killed
run leaves no WARC that looks complete. :func:`iter_responses` reads any WARC/ARC (ours, a
previous crawl, Common Crawl extracts; plain, gzipped or zstd-compressed): it yields response
records with the payload as stored (de-chunked, but still content-encoded for other crawlers'
files), cut at ``max_body + 1`` bytes so a caller can tell an oversized record without holding
it whole.
"""

from __future__ import annotations

import io
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from foundation import storage

REQUESTED_URI = "WARC-Webtext-Requested-URI"
DOC_ID = "WARC-Webtext-Doc-Id"
ORIGINAL_ENCODING = "X-Webtext-Original-Content-Encoding"
_REWRITTEN = frozenset({"content-encoding", "transfer-encoding", "content-length"})


@dataclass(frozen=True)
class WarcResponse:
    """One response record: ``target_uri, status, headers, body`` plus our linkage fields."""

    target_uri: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    requested_uri: str = ""  # ours only; "" for other crawlers' files
    doc_id: str = ""
    date: str = ""  # WARC-Date, ISO 8601
    damaged: str = ""  # why the stored payload is not whole ("" when it is)

    def header(self, name: str) -> str:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), "")

    @property
    def key_uri(self) -> str:
        """The URL this response answers: the requested one when recorded, else the target."""
        return self.requested_uri or self.target_uri

    @property
    def timestamp(self) -> int:
        try:
            return int(datetime.fromisoformat(self.date).timestamp())
        except ValueError:
            return 0


def _warc_date(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stored_headers(headers: tuple[tuple[str, str], ...], body: bytes) -> list[tuple[str, str]]:
    """Response headers rewritten to describe the decoded body we store."""
    out = [(k, v) for k, v in headers if k.lower() not in _REWRITTEN]
    encoding = ", ".join(v for k, v in headers if k.lower() == "content-encoding")
    if encoding:
        out.append((ORIGINAL_ENCODING, encoding))
    out.append(("Content-Length", str(len(body))))
    return out


@dataclass(frozen=True)
class WarcCompression:
    """How a WARC file is compressed: one gzip member (WARC/1.1 Annex D) or one zstd frame (the
    IIPC warc-zstd draft, without a dictionary) per record, so any record can be read alone."""

    codec: Literal["gzip", "zstd"]
    level: int
    suffix: str

    def member_compressors(self) -> Callable[[], Any]:
        """A factory of compressors, each for one record (``compress`` then ``flush``)."""
        if self.codec == "gzip":
            return lambda: zlib.compressobj(self.level, zlib.DEFLATED, zlib.MAX_WBITS + 16)
        import zstandard

        cctx = zstandard.ZstdCompressor(level=self.level, write_checksum=True)
        return cctx.compressobj


KEPT = WarcCompression("gzip", 6, ".warc.gz")
"""WARCs the user keeps (``fetch.record_warc``): gzip, which every WARC reader takes, at level 6
rather than warcio's 9, which takes longer for files of the same size (docs/benchmarks.md)."""
CHECKPOINT = WarcCompression("zstd", 3, ".warc.zst")
"""WARCs that are only the fetch checkpoint, read back by us alone and removed once the shards
are committed: zstd level 3, several times faster than gzip for smaller files
(docs/benchmarks.md)."""
_ZSTD_FRAME = b"\x28\xb5\x2f\xfd"
_ZSTD_DICTIONARY_FRAME = b"\x5d\x2a\x4d\x18"  # the draft's skippable frame 0x184D2A5D


class _Members:
    """A sink that compresses each WARC record as its own gzip member or zstd frame.

    warcio's writer (with its own gzip off) ends every record with ``flush()``, which closes the
    member here.
    """

    def __init__(self, out, new_member: Callable[[], Any]):
        self.out, self.new_member = out, new_member
        self._member = None

    def write(self, data: bytes) -> None:
        if self._member is None:
            self._member = self.new_member()
        self.out.write(self._member.compress(data))

    def flush(self) -> None:
        if self._member is not None:
            self.out.write(self._member.flush())
            self._member = None


class WarcRecorder:
    """Appends request/response pairs to one compressed WARC; thread-safe; atomic on close."""

    def __init__(self, path: str, compression: WarcCompression = KEPT):
        from warcio.warcwriter import WARCWriter

        self.path = path
        self._stack = ExitStack()
        out = self._stack.enter_context(storage.atomic_output(path))
        self._writer = WARCWriter(_Members(out, compression.member_compressors()), gzip=False)
        self._lock = threading.Lock()
        self.records = 0
        name = path.rsplit("/", 1)[-1]
        info = {"software": "webtext", "format": "WARC File Format 1.1"}
        self._writer.write_record(self._writer.create_warcinfo_record(name, info))

    def write(
        self,
        requested_uri: str,
        final_uri: str,
        status: int,
        reason: str,
        headers: tuple[tuple[str, str], ...],
        body: bytes,
        request_headers: tuple[tuple[str, str], ...] = (),
        doc_id: str = "",
        fetch_time: int = 0,
    ) -> None:
        from urllib.parse import urlsplit

        from warcio.statusandheaders import StatusAndHeaders

        writer = self._writer
        warc_headers = {REQUESTED_URI: requested_uri, DOC_ID: doc_id}
        if fetch_time:
            warc_headers["WARC-Date"] = _warc_date(fetch_time)
        http = StatusAndHeaders(
            f"{status} {reason}".strip(), stored_headers(headers, body), protocol="HTTP/1.1"
        )
        response = writer.create_warc_record(
            final_uri,
            "response",
            payload=io.BytesIO(body),
            length=len(body),
            http_headers=http,
            warc_headers_dict={k: v for k, v in warc_headers.items() if v},
        )
        parts = urlsplit(final_uri)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request = writer.create_warc_record(
            final_uri,
            "request",
            payload=io.BytesIO(b""),
            length=0,
            http_headers=StatusAndHeaders(
                f"GET {path} HTTP/1.1", list(request_headers), is_http_request=True
            ),
        )
        with self._lock:
            writer.write_request_response_pair(request, response)
            self.records += 1

    def close(self) -> None:
        """Finish the file and move it into place."""
        self._stack.close()

    def abort(self) -> None:
        """Discard the file (the temporary is removed; nothing appears at ``path``)."""
        self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> WarcRecorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._stack.__exit__(exc_type, exc, tb)


def _read_upto(stream, max_body: int | None) -> bytes:
    """All of a payload, or its first ``max_body + 1`` bytes (reads may come back short)."""
    if max_body is None:
        return stream.read()
    chunks, size = [], 0
    while size <= max_body:
        chunk = stream.read(min(1 << 20, max_body + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _zstd_decompressor(f, head: bytes) -> tuple[Any, int]:
    """The decompressor of a zstd-compressed WARC (the IIPC warc-zstd draft) whose first 8 bytes
    are ``head``, with the dictionary that a leading skippable frame may hold, and the offset
    of its first data frame."""
    import zstandard

    if head[:4] != _ZSTD_DICTIONARY_FRAME:
        return zstandard.ZstdDecompressor(), 0
    size = int.from_bytes(head[4:8], "little")
    f.seek(8)
    dictionary = f.read(size)
    if dictionary[:4] == _ZSTD_FRAME:  # the draft allows the dictionary itself compressed
        dictionary = zstandard.ZstdDecompressor().stream_reader(dictionary).read()
    dctx = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(dictionary))
    return dctx, 8 + size


def _is_zstd(head: bytes) -> bool:
    return head[:4] in (_ZSTD_FRAME, _ZSTD_DICTIONARY_FRAME)


def _zstd_reader(f, head: bytes) -> Any:
    """A zstd-compressed WARC as its decompressed stream: frames read one after another."""
    dctx, start = _zstd_decompressor(f, head)
    f.seek(start)
    return dctx.stream_reader(f, read_across_frames=True)


def response_from_record(record, max_body: int | None) -> WarcResponse:
    """A response record as a WarcResponse; ``damaged`` says why its payload is not whole."""
    from warcio.bufferedreaders import ChunkedDataReader

    http = record.http_headers
    raw = stream = record.raw_stream
    chunked = (http.get_header("transfer-encoding") or "").lower() == "chunked"
    if chunked:
        stream = ChunkedDataReader(raw, decomp_type=None)
    body = _read_upto(stream, max_body)
    try:
        status = int(http.get_statuscode() or 0)
    except ValueError:
        status = 0
    rec = record.rec_headers
    damaged = ""
    whole = max_body is None or len(body) <= max_body
    if whole and getattr(raw, "limit", 0) > 0:  # the stored record ends before its length
        damaged = f"truncated: the record ends {raw.limit} bytes short of its WARC length"
    elif whole and not chunked and not digest_matches(rec.get_header("WARC-Payload-Digest"), body):
        damaged = "WARC-Payload-Digest does not match the payload"
    return WarcResponse(
        target_uri=rec.get_header("WARC-Target-URI") or "",
        status=status,
        headers=tuple(http.headers),
        body=body,
        requested_uri=rec.get_header(REQUESTED_URI) or "",
        doc_id=rec.get_header(DOC_ID) or "",
        date=rec.get_header("WARC-Date") or "",
        damaged=damaged,
    )


def digest_matches(header: str | None, body: bytes) -> bool:
    """Whether a ``sha1:BASE32`` payload digest matches ``body`` (other or no digests: True)."""
    import base64
    import hashlib

    if not header or not header.lower().startswith("sha1:"):
        return True
    return base64.b32encode(hashlib.sha1(body).digest()).decode() == header[5:].strip().upper()


def iter_responses(path: str, max_body: int | None = None) -> Iterator[WarcResponse]:
    """Response records of a WARC or ARC file (gzipped, zstd-compressed or not), in file order."""
    from warcio.archiveiterator import ArchiveIterator

    fs, p = storage.resolve(path)
    with fs.open_input_file(p) as f:
        head = f.read(8)
        f.seek(0)
        warc = _zstd_reader(f, head) if _is_zstd(head) else f
        for record in ArchiveIterator(warc, arc2warc=True):
            if record.rec_type == "response" and record.http_headers is not None:
                yield response_from_record(record, max_body)


# --- the index: where each response lies, to read it again alone --------------------------------


@dataclass(frozen=True)
class WarcEntry:
    """A response record's index entry: what replay chooses by, and where the record lies.

    ``offset`` is where the record's gzip member or zstd frame starts in ``path`` (the record
    itself in an uncompressed file) and ``skip`` how many decompressed bytes precede the record
    there (0 when every record is its own member, as the standard asks). ``digest`` is the SHA-1
    of the payload as read (cut at ``max_body + 1`` bytes) and ``damaged`` why it is not whole.
    """

    path: str
    offset: int
    skip: int
    status: int
    timestamp: int
    digest: str
    damaged: str = ""
    target_uri: str = ""


class _ZstdFrames:
    """A zstd WARC's decompressed stream that remembers where each frame starts in the file,
    so that a record found at a decompressed offset can be read again from its frame alone."""

    def __init__(self, f, dctx, start: int):
        self.f, self.dctx = f, dctx
        self.cpos = start  # file offset of ``self.pending``
        self.pending = b""  # compressed bytes read but not yet decompressed
        self.buf, self.bpos, self.dpos = b"", 0, 0  # current frame's output; read position
        self.frames: list[tuple[int, int]] = []  # (decompressed start, file offset)

    def _next_frame(self) -> bool:
        obj, out, start = self.dctx.decompressobj(), [], self.cpos
        data = self.pending
        while True:
            if not data:
                data = self.f.read(1 << 16)
                if not data:  # the end of the file (a truncated frame gives what it had)
                    self.pending = b""
                    break
            out.append(obj.decompress(data))
            if obj.eof:
                self.pending = obj.unused_data
                self.cpos += len(data) - len(self.pending)
                break
            self.cpos += len(data)
            data = b""
        if not out:
            return False
        self.frames.append((self.dpos, start))
        self.buf, self.bpos = b"".join(out), 0
        return True

    def read(self, n: int = -1) -> bytes:
        if self.bpos >= len(self.buf) and not self._next_frame():
            return b""
        end = len(self.buf) if n < 0 else self.bpos + n
        chunk = self.buf[self.bpos : end]
        self.bpos += len(chunk)
        self.dpos += len(chunk)
        return chunk

    def tell(self) -> int:
        return self.dpos

    def locate(self, dpos: int) -> tuple[int, int]:
        """(frame's file offset, decompressed bytes to skip in it) of decompressed ``dpos``;
        frames before it are forgotten (records come in file order)."""
        import bisect

        i = max(0, bisect.bisect_right(self.frames, (dpos, float("inf"))) - 1)
        dstart, offset = self.frames[i]
        del self.frames[:i]
        return offset, dpos - dstart


def index_responses(path: str, max_body: int | None = None) -> Iterator[tuple[str, WarcEntry]]:
    """(the URL it answers, its WarcEntry) for each response record of a WARC/ARC file, in file
    order. Reading stops, with a warning, where the file cannot be decompressed any further."""
    import hashlib
    import logging

    from warcio.archiveiterator import ArchiveIterator

    fs, p = storage.resolve(path)
    with fs.open_input_file(p) as f:
        head = f.read(8)
        frames = None
        if _is_zstd(head):
            dctx, start = _zstd_decompressor(f, head)
            f.seek(start)
            stream = frames = _ZstdFrames(f, dctx, start)
        else:
            f.seek(0)
            stream = f
        records = ArchiveIterator(stream, arc2warc=True)
        try:
            for record in records:
                if record.rec_type != "response" or record.http_headers is None:
                    continue
                resp = response_from_record(record, max_body)
                dpos = records.get_record_offset()
                offset, skip = frames.locate(dpos) if frames else (dpos, 0)
                entry = WarcEntry(
                    path=path,
                    offset=offset,
                    skip=skip,
                    status=resp.status,
                    timestamp=resp.timestamp,
                    digest=hashlib.sha1(resp.body).hexdigest(),
                    damaged=resp.damaged,
                    target_uri=resp.target_uri,
                )
                yield resp.key_uri, entry
        except Exception as e:  # zlib/zstd/warcio errors: nothing after this point is readable
            logging.getLogger(__name__).warning(
                "%s: unreadable after offset %d (%r); its later records are not replayed",
                path,
                f.tell(),
                e,
            )


def read_response(entry: WarcEntry, max_body: int | None = None) -> WarcResponse:
    """The response record an entry points at, read alone (one seek, one member)."""
    from warcio.archiveiterator import ArchiveIterator

    fs, p = storage.resolve(entry.path)
    with fs.open_input_file(p) as f:
        head = f.read(8)
        stream = f
        if _is_zstd(head):
            dctx, _ = _zstd_decompressor(f, head)
            f.seek(entry.offset)
            stream = dctx.stream_reader(f, read_across_frames=True)
            stream.read(entry.skip)
        else:
            f.seek(entry.offset)
        for record in ArchiveIterator(stream, arc2warc=True):
            if record.rec_type == "response" and record.http_headers is not None:
                return response_from_record(record, max_body)
            break
    raise ValueError(f"{entry.path}: no response record at offset {entry.offset}")
