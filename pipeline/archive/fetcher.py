"""The archive backends: pages read from web archives, with the live fetcher's interface.

    list[Candidate] --ArchiveFetcher.stream--> Exchange per candidate, as each ends
    list[Candidate] --LiveThenArchive.stream--> the same, live first, archives for dead links

Both have ``stream`` and ``close`` like :class:`pipeline.http_client.Fetcher`, so the per-unit
checkpoints of :mod:`pipeline.fetch` (WARC + log, resume without asking again) work unchanged.

For each candidate, the sources of ``[archive]`` are tried in order. In one source: look the URL
up (:mod:`pipeline.archive.cdx`), choose the capture nearest to the target time (the
submission's, or ``archive.as_of``), and read it through its content route (``replay``: the
original bytes at ``CONTENT/<timestamp>id_/<url>``; ``warc``, Common Crawl's: the WARC record
at the capture's filename, offset and length, by one Range request to ``CONTENT + filename``,
:mod:`pipeline.archive.records`, a revisit record resolved to the capture whose payload it
repeats, looked up in the same index). A redirect capture leads to the capture of its target,
looked up anew, within ``fetch.max_redirects``. The page then passes the live rules
(content type, size, decompression caps). Every request goes through a :class:`Fetcher` built
from the fetch settings with the archive's politeness (``requests_per_s`` and ``concurrency``
per archive host, ``retries``, ``backoff_s``, Retry-After on 429/503) and without robots.txt:
the SSRF guard and ``fetch.allow_addresses`` apply to archive hosts as to any other.

Outcomes: ``fetched`` (``source`` = the archive's name, ``fetch_time`` = the capture time,
``record`` = the replay URL, or ``DATA_URL/filename@offset``), ``archive.<reason>``
(no_capture, too_far, rate_limited, unreachable, blocked_address, bad_record,
too_many_redirects, error) or the live rules'
``fetch.<reason>`` for a capture that is not a usable page. When every source fails, the
outcome is the most actionable failure (one a rerun may cure first) and the error lists each
source's.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from urllib.parse import urljoin

from foundation import storage
from foundation.config import ArchiveConfig, ArchiveSource, ConfigError, FetchConfig
from foundation.records import Candidate, FetchResult
from pipeline.archive.capture import Capture
from pipeline.archive.cdx import (
    REDIRECT_STATUSES,
    ArchiveFailure,
    CdxClient,
    LookupCache,
    choose,
    request,
    status_failure,
    unix_time,
)
from pipeline.fetch_rules import FetchFailure, detect_charset
from pipeline.http_client import PAGE, Exchange, Fetcher, Response, completed

log = logging.getLogger(__name__)

FAILURE_ORDER = (
    "rate_limited",
    "unreachable",
    "blocked_address",
    "error",
    "bad_record",
    "too_many_redirects",
    "too_far",
    "no_capture",
)
"""Which source's failure a candidate's outcome names when all fail: the first in this order."""

WHY = {
    "archive.no_capture": "no capture with status 200 in the columnar index",
    "archive.too_far": "the columnar index's nearest capture is past archive.max_skew_days",
}
"""The error of a candidate the columnar join found no capture for, by outcome."""

Found = Mapping[str, Capture | str]
"""Candidates' captures by doc id, as the columnar join found them (an outcome where none)."""

DEAD = frozenset(
    {"fetch.dns", "fetch.connection", "fetch.http_404", "fetch.http_410", "fetch.not_in_warc"}
)


def is_dead(outcome: str) -> bool:
    """A live or replayed outcome that says the page is gone (archives may still have it): no
    such host, refused or reset connections, 404/410, 5xx after the retries, no record in the
    replayed WARC. A robots refusal is not."""
    if outcome in DEAD:
        return True
    code = outcome.removeprefix("fetch.http_")
    return code != outcome and code.isdigit() and 500 <= int(code) < 600


def lookups_dir(cfg: ArchiveConfig, fetch_dir: str) -> str:
    return cfg.cache_dir or storage.join(fetch_dir, "lookups")


def archive_fetch_config(fetch: FetchConfig, archive: ArchiveConfig) -> FetchConfig:
    """The fetch settings with the archive's politeness, for requests to archive hosts."""
    return replace(
        fetch,
        per_host_concurrency=archive.concurrency,
        per_host_delay_s=1.0 / archive.requests_per_s,
        retries=archive.retries,
        backoff_s=archive.backoff_s,
        max_retry_after_s=archive.max_retry_after_s,
        respect_robots=False,
    )


def payload_digest(body: bytes) -> str:
    """The CDX form of a payload digest: base32 of its SHA-1."""
    return base64.b32encode(hashlib.sha1(body).digest()).decode("ascii")


class ArchiveFetcher:
    """See the module docstring. Thread-safe; call :meth:`close` when done."""

    def __init__(self, fetch: FetchConfig, archive: ArchiveConfig, cache_dir: str, guard=None):
        self.fetch_cfg, self.cfg = fetch, archive
        self.http = Fetcher(archive_fetch_config(fetch, archive), guard)
        self.cdx = CdxClient(self.http.get, LookupCache(cache_dir), archive.max_captures)
        self.sources = archive.archives
        self.target = archive.target_time
        self.max_skew_s = archive.max_skew_days * 86400
        from pipeline.archive.records import RecordReader

        self.records = {
            s.name: RecordReader(self.http, s.content) for s in self.sources if s.route == "warc"
        }
        from pipeline.archive.captures import columnar_source

        columnar = columnar_source(archive)
        self.columnar = columnar.name if columnar else None

    def close(self) -> None:
        self.http.close()

    def stream(self, candidates: list[Candidate], found: Found | None = None) -> Iterator[Exchange]:
        """Each candidate's Exchange as it ends; ``found`` (by doc id, from the columnar join,
        :mod:`pipeline.archive.captures`) replaces the columnar source's CDX queries."""

        def one(candidate: Candidate) -> Exchange:
            return self.fetch_one(candidate, None if found is None else found.get(candidate.doc_id))

        for _, exchange in completed(one, candidates, self.fetch_cfg.concurrency):
            yield exchange

    def fetch_one(self, candidate: Candidate, found: Capture | str | None = None) -> Exchange:
        clock = self.http.begin()
        target = candidate.created_utc if self.target is None else self.target
        failures: list[tuple[ArchiveSource, ArchiveFailure]] = []
        result = None
        for source in self.sources:
            first = found if source.name == self.columnar else None
            try:
                resp, capture = self._from(source, candidate.url, target, first)
            except ArchiveFailure as e:
                failures.append((source, e))
                continue
            except FetchFailure as e:  # the capture is there but not a usable page
                result = FetchResult(
                    candidate,
                    f"fetch.{e.reason}",
                    status=e.status,
                    error=f"{source.name}: {e}",
                    source=source.name,
                    record=e.url,
                )
                break
            except Exception as e:  # a bug costs one URL, logged in full
                log.exception("unexpected error reading %s from %s", candidate.url, source.name)
                failures.append((source, ArchiveFailure("error", repr(e))))
                continue
            body = resp.body
            result = FetchResult(
                candidate,
                "fetched",
                status=resp.status,
                final_url=capture.url,
                content_type=resp.content_type,
                body=body,
                encoding=detect_charset(resp.header("content-type"), body),
                fetch_time=unix_time(capture.timestamp),
                source=source.name,
                record=resp.url,
            )
            return Exchange(
                result,
                resp.reason,
                tuple(resp.headers),
                tuple(resp.request_headers),
                time.monotonic() - clock.start,
                clock.queued_s,
                clock.fetching_s,
            )
        if result is None:
            result = failed(candidate, failures)
        return Exchange(
            result,
            elapsed=time.monotonic() - clock.start,
            queued_s=clock.queued_s,
            fetching_s=clock.fetching_s,
        )

    def _from(
        self, source: ArchiveSource, url: str, target: int, first: Capture | str | None = None
    ) -> tuple[Response, Capture]:
        """The page ``source`` holds for ``url`` at ``target``, following redirect captures;
        ``first``: the URL's capture (or why there is none) as the columnar index gave it."""
        for hop in range(self.fetch_cfg.max_redirects + 1):
            if hop == 0 and isinstance(first, str):
                raise ArchiveFailure(first.removeprefix("archive."), WHY.get(first, first))
            if hop == 0 and first is not None:
                capture = first
            else:
                capture = choose(self.cdx.lookup(source, url, target), target, self.max_skew_s)
            resp = self._read(source, capture)
            if resp.status in REDIRECT_STATUSES:
                location = resp.header("location").strip()
                if not location:
                    raise ArchiveFailure("bad_record", f"{resp.url}: a redirect with no Location")
                url = urljoin(capture.url, location)
                continue
            if resp.status != 200:
                raise ArchiveFailure(*status_failure(source, resp.status, resp.url))
            return resp, capture
        raise ArchiveFailure(
            "too_many_redirects",
            f"{source.name}: more than {self.fetch_cfg.max_redirects} redirect captures",
        )

    def _read(self, source: ArchiveSource, capture: Capture) -> Response:
        if source.route == "warc":
            return self._read_record(source, capture)
        replay = f"{source.content}/{capture.timestamp}id_/{capture.url}"
        resp = request(self.http.get, source, replay, PAGE)
        listed = capture.digest.removeprefix("sha1:").upper()
        if (
            resp.status == 200
            and len(listed) == 32
            and not resp.header("content-encoding")
            and payload_digest(resp.body) != listed
        ):
            raise ArchiveFailure(
                "bad_record", f"{replay}: payload does not match the listed digest (damaged?)"
            )
        return resp

    def _read_record(self, source: ArchiveSource, capture: Capture) -> Response:
        """The WARC record ``capture`` names, by byte range from the source's data server
        (Common Crawl's route), a revisit resolved to its payload, a 2xx under the live rules."""
        from pipeline.archive.records import RecordFailure
        from pipeline.fetch import stored_page

        reader = self.records[source.name]
        got = reader.read_resolved(capture, lambda revisit: self._original(source, revisit))
        address = f"{reader.url_of(capture)}@{capture.offset}"
        if isinstance(got, RecordFailure):
            raise record_failure(source, got, address)
        resp = Response(address, got.status, "", list(got.headers), got.header("content-type"))
        if 200 <= got.status < 300:
            try:
                resp.content_type, resp.body = stored_page(got, self.fetch_cfg)
            except FetchFailure as e:
                raise FetchFailure(e.reason, str(e), got.status, address) from e
        return resp

    def _original(self, source: ArchiveSource, revisit) -> Capture | None:
        """The capture a revisit record repeats: the 200 capture of its referred URL with its
        payload digest, at its referred date when the record gives one, else the nearest."""
        when = revisit.refers_to_timestamp or revisit.capture.timestamp
        digest = revisit.digest.removeprefix("sha1:").upper()
        captures = self.cdx.lookup(source, revisit.refers_to_uri, unix_time(when))
        same = [
            c
            for c in captures
            if c.status == 200
            and (not c.digest or c.digest.removeprefix("sha1:").upper() == digest)
        ]
        if not same:
            return None
        target = unix_time(when)
        return min(same, key=lambda c: (abs(unix_time(c.timestamp) - target), c.timestamp))


def record_failure(source: ArchiveSource, failure, address: str) -> Exception:
    """A record read that gave no response, in the backends' vocabulary: the live rules'
    ``fetch.*`` as FetchFailure, the rest as ArchiveFailure (a data server that cannot be
    reached is ``unreachable``; one that does not give the record the index names, or gives it
    damaged, ``bad_record``)."""
    kind, _, reason = failure.outcome.partition(".")
    message = f"{source.name}: {failure.error}"
    if kind == "fetch":
        return FetchFailure(reason, message, url=address)
    code = reason.removeprefix("http_")
    if reason in ("dns", "connection", "timeout", "tls", "bad_url", "deadline") or (
        code.isdigit() and int(code) >= 500
    ):
        reason = "unreachable"
    elif reason not in ("rate_limited", "blocked_address", "bad_record"):
        reason = "bad_record"  # a 404 or 416 for an indexed record, no range, no original
    return ArchiveFailure(reason, message)


def failed(candidate: Candidate, failures: list[tuple[ArchiveSource, ArchiveFailure]]):
    """The FetchResult of a candidate no source could give (see the module docstring)."""

    def rank(item: tuple[ArchiveSource, ArchiveFailure]) -> int:
        reason = item[1].reason
        return FAILURE_ORDER.index(reason) if reason in FAILURE_ORDER else 0

    reason = min(failures, key=rank)[1].reason
    error = "; ".join(f"{s.name}: {e}" for s, e in failures)
    return FetchResult(candidate, f"archive.{reason}", error=error, source="")


class LiveThenArchive:
    """Live first; the dead links (:func:`is_dead`) go to the archives. A link the archives do
    not have either keeps the archives' outcome, with the live one in its error."""

    def __init__(self, live: Fetcher, archive: ArchiveFetcher):
        self.live, self.archive = live, archive

    def close(self) -> None:
        self.live.close()
        self.archive.close()

    def stream(self, candidates: list[Candidate], found: Found | None = None) -> Iterator[Exchange]:
        dead: dict[str, FetchResult] = {}
        for exchange in self.live.stream(candidates):
            r = exchange.result
            if is_dead(r.outcome):
                dead[r.candidate.doc_id] = r
            else:
                yield exchange
        for exchange in self.archive.stream([r.candidate for r in dead.values()], found):
            r = exchange.result
            yield replace(exchange, result=after_dead(dead[r.candidate.doc_id], r))


def after_dead(first: FetchResult, archived: FetchResult) -> FetchResult:
    """The result of a dead link sent to the archives: the archived page, or the archives'
    outcome with the first one (live or replayed) in its error."""
    if archived.ok:
        return archived
    return replace(
        archived, error=f"{first.source}: {first.outcome} ({first.error}); {archived.error}"
    )


def recover_dead(results: list[FetchResult], fetcher: ArchiveFetcher) -> list[FetchResult]:
    """``results`` in their order, the dead ones (:func:`is_dead`) replaced by what the archives
    give (``fetch.backend = "warc+archive"``: what the replayed WARC has no page for)."""
    dead = {r.candidate.doc_id: r for r in results if is_dead(r.outcome)}
    if not dead:
        return results
    got = {
        e.result.candidate.doc_id: after_dead(dead[e.result.candidate.doc_id], e.result)
        for e in fetcher.stream([r.candidate for r in dead.values()])
    }
    return [got.get(r.candidate.doc_id, r) for r in results]


def check_sources(fetch: FetchConfig, archive: ArchiveConfig, fetch_dir: str) -> None:
    """Stop a job before it starts over archive settings it cannot use (a columnar index
    without a source read by byte range, or one that matches no file or lacks a column)."""
    if fetch.reads_archives:
        if fetch.replays and archive.columnar_index:
            raise ConfigError(
                "archive.columnar_index: joined for fetch units only; with fetch.backend "
                "'warc+archive' the WARC's dead links are looked up by CDX query (leave it empty)"
            )
        from pipeline.archive.captures import check_columnar

        check_columnar(archive, fetch_dir)


def make_fetcher(fetch: FetchConfig, archive: ArchiveConfig, fetch_dir: str):
    """The fetcher of ``fetch.backend`` (live, archive or live+archive) for one worker."""
    if fetch.backend == "live":
        return Fetcher(fetch)
    archived = ArchiveFetcher(fetch, archive, lookups_dir(archive, fetch_dir))
    if fetch.backend == "archive":
        return archived
    return LiveThenArchive(Fetcher(fetch), archived)
