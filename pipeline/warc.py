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


def _zstd_reader(f, head: bytes) -> Any:
    """A zstd-compressed WARC (the IIPC warc-zstd draft) whose first 8 bytes are ``head``, read
    from the start of ``f``, as its decompressed stream: frames read one after another, with
    the dictionary that a leading skippable frame may hold."""
    import zstandard

    if head[:4] != _ZSTD_DICTIONARY_FRAME:
        return zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
    f.seek(8)
    dictionary = f.read(int.from_bytes(head[4:8], "little"))
    if dictionary[:4] == _ZSTD_FRAME:  # the draft allows the dictionary itself compressed
        dictionary = zstandard.ZstdDecompressor().stream_reader(dictionary).read()
    dctx = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(dictionary))
    return dctx.stream_reader(f, read_across_frames=True)


def iter_responses(path: str, max_body: int | None = None) -> Iterator[WarcResponse]:
    """Response records of a WARC or ARC file (gzipped, zstd-compressed or not), in file order."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.bufferedreaders import ChunkedDataReader

    fs, p = storage.resolve(path)
    with fs.open_input_file(p) as f:
        head = f.read(8)
        f.seek(0)
        warc = _zstd_reader(f, head) if head[:4] in (_ZSTD_FRAME, _ZSTD_DICTIONARY_FRAME) else f
        for record in ArchiveIterator(warc, arc2warc=True):
            if record.rec_type != "response" or record.http_headers is None:
                continue
            http = record.http_headers
            stream = record.raw_stream
            if (http.get_header("transfer-encoding") or "").lower() == "chunked":
                stream = ChunkedDataReader(stream, decomp_type=None)
            body = _read_upto(stream, max_body)
            try:
                status = int(http.get_statuscode() or 0)
            except ValueError:
                status = 0
            rec = record.rec_headers
            yield WarcResponse(
                target_uri=rec.get_header("WARC-Target-URI") or "",
                status=status,
                headers=tuple(http.headers),
                body=body,
                requested_uri=rec.get_header(REQUESTED_URI) or "",
                doc_id=rec.get_header(DOC_ID) or "",
                date=rec.get_header("WARC-Date") or "",
            )
