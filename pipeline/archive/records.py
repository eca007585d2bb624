"""Archived records read by byte range: one HTTP response out of a WARC file on a data server.

    Capture (filename, offset, length) --RecordReader.read--> WarcResponse | Revisit | RecordFailure

Common Crawl keeps every record as one gzip member of a WARC file on its data server
(``https://data.commoncrawl.org/`` + the index's ``warc_filename``); its indexes give each
record's offset and length, so one Range request reads one record. pywb collections and other
CDX servers list the same three fields.

What a record goes through, in this order:

* the request: :meth:`pipeline.http_client.Fetcher.fetch_range`, so the SSRF guard (a data
  server on loopback or a private address only through ``fetch.allow_addresses``), the per-host
  gate, retries with backoff and Retry-After, and every timeout apply as to a live page; a
  server that ignores Range (200 with the whole file) is closed unread (``archive.no_range``);
* the size: a record longer than ``fetch.max_bytes`` plus :data:`RECORD_HEADROOM` (its WARC and
  HTTP headers) is not requested (``fetch.too_large``); the member is decompressed with at most
  ``fetch.max_decompressed_bytes`` plus the headroom coming out (``fetch.decompression_bomb``);
* the record: a member cut short, a gzip error, a WARC record shorter than its length, a
  ``WARC-Payload-Digest`` that does not match, a record for another URL or of another type are
  ``archive.bad_record``, naming the file and offset (warcio returns many damaged records
  without raising, so each is checked here);
* the archived response: :func:`to_fetch_result` applies the live fetcher's rules (status,
  content type, caps on the stored and decoded body, charset) through
  :func:`pipeline.fetch.result_from_response`.

A revisit record carries no payload: :class:`Revisit` gives what finds the capture it refers to
(``WARC-Refers-To-Target-URI``, ``WARC-Refers-To-Date``, the payload digest); the caller looks
that capture up in its index and :meth:`RecordReader.read_resolved` reads it. A 3xx record is
returned as it is: :func:`redirect_location` gives its target, whose capture the caller looks up.
Failures of the request are ``archive.<reason>`` (``archive.http_404``, ``archive.connection``,
``archive.rate_limited`` for a 429 that outlasted its retries).
"""

from __future__ import annotations

import io
import logging
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urljoin

from foundation.config import FetchConfig
from foundation.records import Candidate, FetchResult
from pipeline.archive.capture import Capture
from pipeline.fetch import result_from_response
from pipeline.fetch_rules import FetchFailure
from pipeline.http_client import REDIRECTS, Fetcher
from pipeline.warc import WarcResponse, digest_matches, response_from_record

log = logging.getLogger(__name__)

BAD_RECORD = "archive.bad_record"
RECORD_HEADROOM = 64 * 1024
"""Bytes allowed beyond the body caps for a record's WARC and HTTP headers."""
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Revisit:
    """A revisit record: its payload is an earlier capture's, which these fields find."""

    capture: Capture
    target_uri: str
    date: str  # its own WARC-Date (ISO 8601)
    refers_to_uri: str  # WARC-Refers-To-Target-URI, else its own target URI
    refers_to_timestamp: str  # WARC-Refers-To-Date as 14 digits; "" when absent
    digest: str  # WARC-Payload-Digest ("sha1:BASE32"): the payload it repeats


@dataclass(frozen=True)
class RecordFailure:
    """Why no archived response came out of a capture; ``outcome`` goes to the fetch log."""

    outcome: str  # archive.bad_record, archive.<request failure>, fetch.too_large, ...
    error: str


Read = WarcResponse | Revisit | RecordFailure


def timestamp14(iso: str) -> str:
    """``2017-12-31T23:59:59Z`` -> ``20171231235959`` (the CDX form); "" if unreadable."""
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%Y%m%d%H%M%S")
    except ValueError:
        return ""


def gunzip_member(data: bytes, limit: int) -> bytes:
    """One whole gzip member, decompressed with at most ``limit`` bytes coming out.

    Raises FetchFailure: ``bad_record`` for a gzip error or a member cut short (zlib gives what
    it could without complaint), ``decompression_bomb`` past the limit."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as e:
        raise FetchFailure("bad_record", f"not a whole gzip member ({e})") from e
    if len(out) > limit or d.unconsumed_tail:
        raise FetchFailure("decompression_bomb", f"the record decompresses past {limit} bytes")
    if not d.eof:
        raise FetchFailure("bad_record", "the gzip member is cut short")
    return out


def redirect_location(resp: WarcResponse) -> str | None:
    """The absolute URL a 3xx capture points to (its Location may be relative), else None."""
    location = resp.header("location").strip()
    if resp.status not in REDIRECTS or not location:
        return None
    return urljoin(resp.target_uri, location)


class RecordReader:
    """Reads captures' records from ``data_url`` (their ``filename`` is relative to it) with a
    :class:`Fetcher`, whose config gives the caps. Thread-safe, as the fetcher is."""

    def __init__(self, fetcher: Fetcher, data_url: str):
        self.fetcher, self.cfg = fetcher, fetcher.cfg
        self.data_url = data_url.rstrip("/") + "/"
        self._logged: set[str] = set()
        self._lock = threading.Lock()

    def url_of(self, capture: Capture) -> str:
        return urljoin(self.data_url, capture.filename.lstrip("/"))

    def read(self, capture: Capture) -> Read:
        """The record ``capture`` points at: a response, a revisit, or why neither."""
        where = f"{capture.filename} at offset {capture.offset}"
        try:
            return self._read(capture)
        except FetchFailure as e:
            outcome = {"http_429": "archive.rate_limited", "bad_record": BAD_RECORD}.get(
                e.reason, f"archive.{e.reason}"
            )
            if e.reason in ("too_large", "decompression_bomb"):
                outcome = f"fetch.{e.reason}"  # the page is too big, as it would be live
            self._log_once(outcome, where, str(e))
            return RecordFailure(outcome, f"{where}: {e}")

    def read_resolved(
        self, capture: Capture, find_original: Callable[[Revisit], Capture | None]
    ) -> WarcResponse | RecordFailure:
        """As :meth:`read`, with a revisit replaced by the response it refers to.

        ``find_original`` looks the referred capture up (None: not in the index). The result is
        the original's status, headers and body, dated and addressed as the revisit (when the
        page was seen so)."""
        got = self.read(capture)
        if not isinstance(got, Revisit):
            return got
        original = find_original(got)
        where = f"{capture.filename} at offset {capture.offset}"
        if original is None:
            return RecordFailure(
                "archive.revisit_unresolved",
                f"{where}: revisit of {got.refers_to_uri} at {got.refers_to_timestamp or '?'}"
                " whose original capture is not in the index",
            )
        base = self.read(original)
        if isinstance(base, RecordFailure):
            return base
        problem = ""
        if isinstance(base, Revisit):
            problem = "refers to another revisit record"
        elif len(base.body) <= self.cfg.max_bytes and not digest_matches(got.digest, base.body):
            problem = f"refers to {original.filename} at offset {original.offset}, another payload"
        if problem:
            self._log_once(BAD_RECORD, where, problem)
            return RecordFailure(BAD_RECORD, f"{where}: the revisit {problem}")
        return replace(base, target_uri=got.target_uri, date=got.date)

    def _read(self, capture: Capture) -> Read:
        cfg = self.cfg
        if capture.length <= 0 or capture.offset < 0:
            raise FetchFailure("bad_record", f"no byte range ({capture.length} bytes)")
        if capture.length > cfg.max_bytes + RECORD_HEADROOM:
            raise FetchFailure("too_large", f"the record is {capture.length} bytes")
        data = self.fetcher.fetch_range(self.url_of(capture), capture.offset, capture.length)
        if len(data) < capture.length:
            raise FetchFailure("bad_record", f"{len(data)} of the record's {capture.length} bytes")
        if capture.filename.endswith(".gz") or data.startswith(_GZIP_MAGIC):
            data = gunzip_member(data, cfg.max_decompressed_bytes + RECORD_HEADROOM)
        return self._parse(data, capture)

    def _parse(self, data: bytes, capture: Capture) -> Read:
        from warcio.archiveiterator import ArchiveIterator

        try:
            for record in ArchiveIterator(io.BytesIO(data), arc2warc=True):
                return self._record(record, capture)
        except FetchFailure:
            raise
        except Exception as e:  # warcio's parse errors: no WARC record here
            raise FetchFailure("bad_record", f"unreadable WARC record ({e!r:.200})") from e
        raise FetchFailure("bad_record", "no WARC record in the range")

    def _record(self, record, capture: Capture) -> Read:
        rec = record.rec_headers
        target = rec.get_header("WARC-Target-URI") or ""
        if capture.url and target != capture.url:
            raise FetchFailure("bad_record", f"the record is for {target!r}, not {capture.url!r}")
        if record.rec_type == "revisit":
            return Revisit(
                capture=capture,
                target_uri=target,
                date=rec.get_header("WARC-Date") or "",
                refers_to_uri=rec.get_header("WARC-Refers-To-Target-URI") or target,
                refers_to_timestamp=timestamp14(rec.get_header("WARC-Refers-To-Date") or ""),
                digest=rec.get_header("WARC-Payload-Digest") or "",
            )
        if record.rec_type != "response" or record.http_headers is None:
            raise FetchFailure("bad_record", f"a {record.rec_type} record, not an HTTP response")
        resp = response_from_record(record, self.cfg.max_bytes)
        if resp.damaged:
            raise FetchFailure("bad_record", resp.damaged)
        return resp

    def _log_once(self, outcome: str, where: str, message: str) -> None:
        with self._lock:
            if outcome in self._logged:
                return
            self._logged.add(outcome)
        log.info("%s (first of its kind): %s: %s", outcome, where, message)


def to_fetch_result(
    candidate: Candidate, got: WarcResponse | RecordFailure, cfg: FetchConfig
) -> FetchResult:
    """A read record as the FetchResult live fetching would give: the same rules and caps."""
    if isinstance(got, RecordFailure):
        return FetchResult(candidate, got.outcome, error=got.error)
    return result_from_response(candidate, got, cfg)
