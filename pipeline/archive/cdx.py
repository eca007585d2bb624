"""CDX lookups: which captures an archive holds of a URL, and which one to read.

    (ArchiveSource, url, target time) --CdxClient.lookup--> list[Capture]
    list[Capture] --choose(target, max_skew)--> Capture   (or ArchiveFailure: no_capture, too_far)

One query per URL and source,
``CDX_URL?url=<encoded>&output=json&closest=<ts>&sort=closest&limit=N``, understood by pywb
(Common Crawl's index server, institutions' archives) and the Wayback Machine's CDX API alike;
the answer is read in either format (pywb's JSON lines of objects, or Wayback's one JSON array
with a header row). The URL must be percent-encoded: pywb silently matches nothing for an
unencoded ``&``.

The capture chosen is the nearest to the target time among those an archive can give a page
from: status 200, a redirect (its target is looked up next, by the caller) or a revisit (whose
payload the archive replays; a revisit of a capture listed with another status is skipped).
Non-200 captures (404s, 5xx) are never chosen, however near.

Answers are cached (``archive.cache_dir``, one small file per query, named by a hash of the
source, the URL's SURT key and the query), so a rerun of a killed job does not ask again. Only
usable answers are cached: a rate-limited or failed query is asked again next time.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from foundation import storage
from foundation.config import ArchiveSource
from pipeline.archive.capture import Capture
from pipeline.fetch_rules import FetchFailure

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class ArchiveFailure(Exception):
    """A lookup or read that gave no page; ``reason`` is the outcome after ``archive.``."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def timestamp14(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y%m%d%H%M%S")


def unix_time(ts: str) -> int:
    """A CDX timestamp (up to 14 digits, the rest taken as the period's start) in unix s."""
    digits = (ts + "0101000000"[max(0, len(ts) - 4) :])[:14] if len(ts) < 14 else ts[:14]
    return int(datetime.strptime(digits, "%Y%m%d%H%M%S").replace(tzinfo=UTC).timestamp())


def query_url(source: ArchiveSource, url: str, target: int, limit: int) -> str:
    params = {
        "url": url,
        "output": "json",
        "closest": timestamp14(target),
        "sort": "closest",
        "limit": str(limit),
    }
    return f"{source.cdx_url}?{urlencode(params, quote_via=quote, safe='')}"


def _int(value: object) -> int:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else 0


def _capture(source: str, row: dict) -> Capture:
    """One CDX row (pywb's or Wayback's field names) as a Capture; ValueError if unusable."""
    timestamp = str(row.get("timestamp", ""))
    url = row.get("url") or row.get("original")
    if not (timestamp.isdigit() and 4 <= len(timestamp) <= 14) or not isinstance(url, str):
        raise ValueError(f"not a CDX capture: {row!r:.200}")
    return Capture(
        source=source,
        url=url,
        timestamp=timestamp,
        status=_int(row.get("status", row.get("statuscode"))),
        mime=str(row.get("mime", row.get("mimetype", ""))),
        digest=str(row.get("digest", "")),
        filename=str(row.get("filename", "")),
        offset=_int(row.get("offset")),
        length=_int(row.get("length")),
    )


def parse_cdx(source: str, body: bytes) -> list[Capture]:
    """The captures of a CDX answer: pywb's JSON lines, or Wayback's JSON array whose first row
    names the fields; ArchiveFailure("bad_record") for anything else."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return []
    try:
        if text.startswith("["):
            rows = json.loads(text)
            if not rows:
                return []
            header, *values = rows
            return [_capture(source, dict(zip(header, v, strict=True))) for v in values]
        return [_capture(source, json.loads(line)) for line in text.splitlines() if line.strip()]
    except (ValueError, TypeError, AttributeError) as e:
        raise ArchiveFailure("bad_record", f"{source}: unreadable CDX answer ({e})") from e


def usable(capture: Capture, captures: list[Capture]) -> bool:
    """Whether a page can come from this capture (see the module docstring)."""
    if capture.status == 200 or capture.status in REDIRECT_STATUSES:
        return True
    if capture.status == 0 and capture.mime == "warc/revisit":
        original = [c.status for c in captures if c.digest == capture.digest and c.status]
        return not original or 200 in original
    return False


def choose(captures: list[Capture], target: int, max_skew_s: float) -> Capture:
    """The usable capture nearest to ``target`` (the earlier on a tie), within ``max_skew_s``."""
    candidates = [c for c in captures if usable(c, captures)]
    if not candidates:
        listed = f"{len(captures)} listed, none usable" if captures else "none listed"
        raise ArchiveFailure("no_capture", f"no capture with status 200 ({listed})")
    best = min(candidates, key=lambda c: (abs(unix_time(c.timestamp) - target), c.timestamp))
    days = abs(unix_time(best.timestamp) - target) / 86400
    if days * 86400 > max_skew_s:
        raise ArchiveFailure(
            "too_far",
            f"nearest capture {best.timestamp} is {days:.0f} days from {timestamp14(target)} "
            f"(archive.max_skew_days={max_skew_s / 86400:g})",
        )
    return best


@dataclass
class LookupCache:
    """CDX answers by query, in ``directory`` (see the module docstring)."""

    directory: str

    def path(self, source: str, key: str) -> str:
        name = hashlib.sha1(f"{source} {key}".encode()).hexdigest()
        return storage.join(self.directory, source.replace(":", "_"), name[:2], name)

    def get(self, source: str, key: str) -> bytes | None:
        path = self.path(source, key)
        return storage.read_bytes(path) if storage.exists(path) else None

    def put(self, source: str, key: str, body: bytes) -> None:
        storage.write_bytes(self.path(source, key), body)


class CdxClient:
    """Lookups through an HTTP getter (``Fetcher.get``: guard, caps, politeness, retries)."""

    def __init__(self, get, cache: LookupCache, limit: int):
        self.get, self.cache, self.limit = get, cache, limit
        self.queries = 0  # sent to a server (not answered from the cache)
        self._lock = threading.Lock()

    def lookup(self, source: ArchiveSource, url: str, target: int) -> list[Capture]:
        """The captures ``source`` lists for ``url`` nearest to ``target``; ArchiveFailure
        (rate_limited, unreachable, blocked_address, bad_record) when it gives no answer."""
        import surt

        query = query_url(source, url, target, self.limit)
        key = f"{surt.surt(url)} {timestamp14(target)} {self.limit}"
        body = self.cache.get(source.name, key)
        if body is None:
            body = self._ask(source, query)
            captures = parse_cdx(source.name, body)  # garbage is not cached
            self.cache.put(source.name, key, body)
            return captures
        return parse_cdx(source.name, body)

    def _ask(self, source: ArchiveSource, query: str) -> bytes:
        with self._lock:
            self.queries += 1
        try:
            resp = request(self.get, source, query)
        except FetchFailure as e:  # past the caps, or an undecodable body
            raise ArchiveFailure("bad_record", f"{source.name}: unusable CDX answer ({e})") from e
        if resp.status == 404:  # Common Crawl's index answers 404 "No Captures found"
            return b""
        if resp.status != 200:
            raise ArchiveFailure(*status_failure(source, resp.status, "its CDX query"))
        return resp.body


def status_failure(source: ArchiveSource, status: int, what: str) -> tuple[str, str]:
    """The outcome of a final non-2xx answer from an archive (after the retries)."""
    reason = "rate_limited" if status in (429, 503) else "unreachable"
    return reason, f"{source.name}: HTTP {status} to {what}"


def request(get, source: ArchiveSource, url: str, kind: str = "data"):
    """``get(url, kind)``, its transport failures as ArchiveFailure (content-rule failures,
    ``fetch.content_type`` and the caps, pass through as FetchFailure)."""
    try:
        return get(url, kind)
    except FetchFailure as e:
        if e.reason in ("blocked_address",):
            raise ArchiveFailure("blocked_address", f"{source.name}: {e}") from e
        if e.reason in ("dns", "connection", "timeout", "tls", "bad_url", "deadline"):
            raise ArchiveFailure("unreachable", f"{source.name}: {e}") from e
        raise
