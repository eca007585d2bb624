"""The live fetcher: many requests in flight per worker, polite per host, capped and guarded.

    list[Candidate] --Fetcher.fetch_many--> list[FetchResult]   (same order, one each)

    (url, first byte, length) --Fetcher.fetch_range--> bytes     (an archived record's range)

Built once per DoFn (in ``setup``) from a :class:`FetchConfig`. Threads (``cfg.concurrency``)
do the waiting; urllib3 does HTTP. What each request goes through:

* the SSRF guard (:mod:`pipeline.address_guard`) on every hop, robots.txt and retries included;
  the connection goes to the checked IP, with the name only in the Host header and, for https,
  as TLS server name and the name the certificate must match;
* :class:`HostGate`: at most ``per_host_concurrency`` requests per host and
  ``per_host_delay_s`` between two request starts to it (retry waits hold no slot);
* robots.txt (:mod:`pipeline.robots`) for the origin of every hop;
* redirects followed by hand (each hop is a new guarded request), ``max_redirects`` at most;
* retries with exponential backoff (``backoff_s * 2**attempt``) for 429, 5xx, timeouts and
  connection errors; a 429's or 503's Retry-After is honoured up to ``max_retry_after_s`` and a
  longer one ends the retries; other 4xx are final;
* caps: connect/read timeouts per socket operation and ``total_timeout_s`` per request (one
  attempt of one hop), checked between body reads with the socket timeout shortened to what is
  left, so a server dripping a byte a second is cut off on time; ``deadline_s`` per URL, over
  everything above (robots.txt, hops, attempts, retry waits, waits for a host slot), which
  shortens every wait and timeout to what is left of it (:class:`URLClock`); Content-Length against
  ``max_bytes`` before reading, the streamed body against it while reading, the decoded size
  against ``max_decompressed_bytes`` (:class:`pipeline.fetch_rules.BodyDecoder`). While the
  status line and headers arrive, only ``read_timeout_s`` per socket read applies (http.client
  reads them; its 100-header, 64 KiB-line limits bound how long a header drip can last).

Outcomes are ``fetched`` or ``fetch.<reason>``: blocked_address, dns, bad_url, robots,
too_many_redirects, timeout, deadline, connection, tls, too_large, decompression_bomb,
decode_error, content_encoding, content_type, http_<status>, error (an unexpected bug, logged
with the URL). ``timeout`` is a per-operation or per-attempt cap; ``deadline`` is
``deadline_s``, and its error says the stage it ended in ("waiting for a slot for host X",
"reading the body of URL", "waiting 4.0s to retry after HTTP 503"...).

Other clients (the web archives' CDX queries and replays, :mod:`pipeline.archive`) send their
requests through :meth:`Fetcher.get`: the same guard, gate, retries and caps, without robots.txt
or redirects (they follow them by their own rules), under one clock per URL (:meth:`begin`).

Each exchange also says where its URL's time went: ``queued_s`` waiting for per-host slots and
``fetching_s`` holding one (connecting, sending, reading), summed over robots.txt, hops and
attempts; ``elapsed`` is the whole, retry waits and name resolution included.
"""

from __future__ import annotations

import email.utils
import logging
import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import quote, urljoin, urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)

from foundation.config import FetchConfig
from foundation.records import Candidate, FetchResult
from pipeline import fetch_rules
from pipeline.address_guard import BlockedAddress, ResolveError, Target, resolve_target
from pipeline.fetch_rules import BodyDecoder, FetchFailure
from pipeline.robots import MAX_ROBOTS_BYTES, RobotsCache

log = logging.getLogger(__name__)

REDIRECTS = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
CHUNK = 64 * 1024
ByteRange = tuple[int, int] | None  # (first byte, length) of a Range request
PAGE, ROBOTS, DATA = "page", "robots", "data"
"""What a body is, which sets its rules: a page (HTML only, ``max_bytes``), robots.txt (cut at
MAX_ROBOTS_BYTES, as RFC 9309 allows) or data (any type, ``max_bytes``; a CDX answer)."""


@dataclass(frozen=True)
class Exchange:
    """A FetchResult plus what a WARC record of it needs (headers as received)."""

    result: FetchResult
    reason: str = ""  # HTTP reason phrase of the final response
    headers: tuple[tuple[str, str], ...] = ()
    request_headers: tuple[tuple[str, str], ...] = ()
    elapsed: float = 0.0
    queued_s: float = 0.0
    fetching_s: float = 0.0


@dataclass
class URLClock:
    """One URL's time: its overall deadline (``fetch.deadline_s``) and where the time went."""

    limit_s: float | None
    start: float = field(default_factory=time.monotonic)
    queued_s: float = 0.0
    fetching_s: float = 0.0

    def left(self) -> float:
        if self.limit_s is None:
            return math.inf
        return self.start + self.limit_s - time.monotonic()

    def expired(self, stage: str, url: str, status: int = 0) -> FetchFailure:
        return FetchFailure(
            "deadline", f"fetch.deadline_s={self.limit_s:g} passed while {stage}", status, url
        )

    def check(self, stage: str, url: str) -> None:
        if self.left() <= 0:
            raise self.expired(stage, url)


class SlotTimeout(Exception):
    """No slot for the host came free within the time given."""


@dataclass
class Response:
    url: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    content_type: str = ""
    body: bytes = b""
    request_headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), "")


class HostGate:
    """Per-host concurrency and spacing of request starts, shared by a fetcher's threads."""

    def __init__(self, limit: int, delay_s: float):
        self.limit, self.delay_s = limit, delay_s
        self._cond = threading.Condition()
        self._active: dict[str, int] = defaultdict(int)
        self._next_start: dict[str, float] = {}

    @contextmanager
    def slot(self, host: str, within_s: float = math.inf) -> Iterator[float]:
        """Hold a slot for ``host``; yields the seconds waited for it (see :meth:`acquire`)."""
        waited = self.acquire(host, within_s)
        try:
            yield waited
        finally:
            self.release(host)

    def acquire(self, host: str, within_s: float = math.inf) -> float:
        """Take a slot for ``host``: the seconds waited, or SlotTimeout if none comes free
        within ``within_s``. Give it back with :meth:`release`."""
        with self._cond:
            asked = time.monotonic()
            give_up = asked + within_s
            while True:
                now = time.monotonic()
                wait = self._next_start.get(host, 0.0) - now
                if self._active[host] < self.limit and wait <= 0:
                    break
                if now >= give_up:
                    raise SlotTimeout(host)
                timeout = min(wait if wait > 0 else math.inf, give_up - now)
                self._cond.wait(timeout=None if timeout == math.inf else timeout)
            self._active[host] += 1
            self._next_start[host] = now + self.delay_s
        return now - asked

    def release(self, host: str) -> None:
        with self._cond:
            self._active[host] -= 1
            self._cond.notify_all()


def interleave_by_host(candidates: list[Candidate]) -> list[int]:
    """Indices ordered round-robin over hosts, so one big host does not occupy every thread."""
    queues: dict[str, deque[int]] = {}
    for i, c in enumerate(candidates):
        try:
            host = urlsplit(c.url).hostname or ""
        except ValueError:
            host = ""
        queues.setdefault(host, deque()).append(i)
    order: list[int] = []
    while queues:
        for host in list(queues):
            order.append(queues[host].popleft())
            if not queues[host]:
                del queues[host]
    return order


def parse_retry_after(value: str, now: float) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date); None if absent."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def completed(
    fn: Callable[[Candidate], Exchange], candidates: list[Candidate], concurrency: int
) -> Iterator[tuple[int, Exchange]]:
    """(index, ``fn(candidate)``) as each ends, up to ``concurrency`` at a time, hosts
    interleaved; closing the iterator early cancels the calls that have not started."""
    workers = max(1, min(concurrency, len(candidates)))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch")
    try:
        futures = {pool.submit(fn, candidates[i]): i for i in interleave_by_host(candidates)}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def split_url(url: str):
    """``urlsplit`` and the port of an absolute http(s) URL, or FetchFailure("bad_url")."""
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError as e:
        raise FetchFailure("bad_url", f"malformed URL ({e})", url=url) from e
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise FetchFailure("bad_url", f"not an http(s) URL: {url!r}", url=url)
    return parts, port


class Fetcher:
    """See the module docstring. Thread-safe; call :meth:`close` when done."""

    def __init__(self, cfg: FetchConfig, guard: Callable[[str, int], Target] | None = None):
        """``guard(host, port)`` resolves and checks a host (default: the SSRF guard with
        ``cfg.allow_addresses``); tests pass one that admits only their own server."""
        self.cfg = cfg
        self.guard = guard or partial(resolve_target, allow=cfg.allow_list)
        self.pools = urllib3.PoolManager(
            num_pools=max(64, cfg.concurrency * 2),
            maxsize=cfg.per_host_concurrency,
            retries=False,
        )
        self.gate = HostGate(cfg.per_host_concurrency, cfg.per_host_delay_s)
        self.robots = (
            RobotsCache(self._fetch_robots, cfg.user_agent) if cfg.respect_robots else None
        )
        self._logged: set[str] = set()
        self._log_lock = threading.Lock()
        self._local = threading.local()  # .clock: the URL this thread is fetching

    @property
    def _clock(self) -> URLClock:
        """The clock of the URL this thread is fetching (:meth:`begin`), or a new one."""
        clock = getattr(self._local, "clock", None)
        return clock if clock is not None else self.begin()

    def close(self) -> None:
        self.pools.clear()

    # --- many -----------------------------------------------------------------------------

    def fetch_many(self, candidates: list[Candidate]) -> list[FetchResult]:
        return [e.result for e in self.exchanges(candidates)]

    def exchanges(self, candidates: list[Candidate]) -> list[Exchange]:
        """Fetch all, up to ``cfg.concurrency`` at a time; the exchanges in candidate order."""
        out: list[Exchange | None] = [None] * len(candidates)
        for i, exchange in self._completed(candidates):
            out[i] = exchange
        return [e for e in out if e is not None]

    def stream(self, candidates: list[Candidate]) -> Iterator[Exchange]:
        """Fetch all, up to ``cfg.concurrency`` at a time, yielding each exchange as it ends.

        The caller works on one page (extracts it, records it) while the rest are still in
        flight, so a worker's CPU is not idle while it waits on the network. Closing the
        iterator early cancels the requests that have not started.
        """
        for _, exchange in self._completed(candidates):
            yield exchange

    def _completed(self, candidates: list[Candidate]) -> Iterator[tuple[int, Exchange]]:
        return completed(self.fetch_one, candidates, self.cfg.concurrency)

    # --- one ------------------------------------------------------------------------------

    def begin(self) -> URLClock:
        """Start the clock of a URL on this thread: what follows counts against its deadline."""
        clock = self._local.clock = URLClock(self.cfg.deadline_s)
        return clock

    def get(self, url: str, kind: str = DATA) -> Response:
        """One guarded GET under the caps and retries of ``cfg``, no robots.txt, no redirects
        followed (a 3xx comes back as is), on the clock :meth:`begin` started; raises
        FetchFailure. A non-2xx status is returned, its body unread."""
        split_url(url)
        resp = self._with_retries(url, kind)
        if kind == PAGE and 200 <= resp.status < 300:
            try:
                resp.content_type = fetch_rules.check_sniffed(resp.content_type, resp.body)
            except FetchFailure as e:
                raise FetchFailure(e.reason, str(e), resp.status, resp.url) from e
        return resp

    def fetch_one(self, candidate: Candidate) -> Exchange:
        clock = self.begin()
        start = clock.start
        try:
            resp = self._follow(candidate.url)
            if not 200 <= resp.status < 300:
                raise FetchFailure(
                    f"http_{resp.status}", f"HTTP {resp.status}", resp.status, resp.url
                )
            try:
                content_type = fetch_rules.check_sniffed(resp.content_type, resp.body)
            except FetchFailure as e:
                raise FetchFailure(e.reason, str(e), resp.status, resp.url) from e
            result = FetchResult(
                candidate=candidate,
                outcome="fetched",
                status=resp.status,
                final_url=resp.url,
                content_type=content_type,
                body=resp.body,
                encoding=fetch_rules.detect_charset(resp.content_type, resp.body),
                fetch_time=int(time.time()),
            )
            return Exchange(
                result,
                resp.reason,
                tuple(resp.headers),
                tuple(resp.request_headers),
                time.monotonic() - start,
                clock.queued_s,
                clock.fetching_s,
            )
        except FetchFailure as e:
            self._log_once(e.reason, candidate.url, str(e))
            result = FetchResult(
                candidate=candidate,
                outcome=f"fetch.{e.reason}",
                status=e.status,
                final_url=e.url,
                fetch_time=int(time.time()),
                error=str(e),
            )
        except Exception as e:  # a bug must cost one URL, not the unit; it is logged in full
            log.exception("unexpected error fetching %s", candidate.url)
            result = FetchResult(
                candidate, "fetch.error", fetch_time=int(time.time()), error=repr(e)
            )
        return Exchange(
            result,
            elapsed=time.monotonic() - start,
            queued_s=clock.queued_s,
            fetching_s=clock.fetching_s,
        )

    def fetch_range(self, url: str, start: int, length: int) -> bytes:
        """Bytes ``start .. start+length-1`` of ``url`` by an HTTP Range request, through the same
        guard, host gate, redirects, retries and timeouts as a page (robots.txt aside: a data
        server's files are a dataset, not a site crawled), or FetchFailure: ``no_range`` when
        the server answers anything but 206 for that range (a 200 with the whole file is closed
        unread), ``too_large`` past ``length`` bytes, ``http_<status>`` for an error status.
        Its time counts on the clock of the URL being fetched (:meth:`begin`), so an archived
        page's ``queued_s`` and ``fetching_s`` include the read of its record."""
        resp = self._follow(url, robots=False, kind=DATA, byte_range=(start, length))
        if resp.status != 206:
            if 200 <= resp.status < 300:
                msg = f"HTTP {resp.status} to a Range request: the server ignores Range"
                raise FetchFailure("no_range", msg, resp.status, resp.url)
            raise FetchFailure(f"http_{resp.status}", f"HTTP {resp.status}", resp.status, resp.url)
        content_range = resp.header("content-range")
        if not content_range.startswith(f"bytes {start}-"):
            msg = f"asked for bytes from {start}, got Content-Range {content_range!r}"
            raise FetchFailure("no_range", msg, resp.status, resp.url)
        return resp.body

    def _log_once(self, reason: str, url: str, message: str) -> None:
        with self._log_lock:
            if reason in self._logged:
                return
            self._logged.add(reason)
        log.info("fetch.%s (first of its kind): %s: %s", reason, url, message)

    def _follow(
        self, url: str, robots: bool = True, kind: str = PAGE, byte_range: ByteRange = None
    ) -> Response:
        for hop in range(self.cfg.max_redirects + 1):
            split_url(url)
            if hop:
                self._clock.check(f"following redirect {hop} to {url}", url)
            if robots and self.robots is not None:
                self.robots.check(url)
            resp = self._with_retries(url, kind, byte_range)
            location = resp.header("location")
            if resp.status not in REDIRECTS or not location:
                return resp
            url = urljoin(url, location.strip())
        raise FetchFailure(
            "too_many_redirects", f"more than {self.cfg.max_redirects} redirects", 0, url
        )

    def _fetch_robots(self, robots_url: str) -> tuple[int, bytes]:
        resp = self._follow(robots_url, robots=False, kind=ROBOTS)
        return resp.status, resp.body

    def _with_retries(self, url: str, kind: str, byte_range: ByteRange = None) -> Response:
        cfg = self.cfg
        for attempt in range(cfg.retries + 1):
            last = attempt == cfg.retries
            backoff = cfg.backoff_s * 2**attempt
            try:
                resp = self._request(url, kind, byte_range)
            except FetchFailure as e:
                if last or not e.retry:
                    raise
                self._retry_wait(backoff, f"{e.reason} ({e})", url)
                continue
            if last or not (resp.status == 429 or 500 <= resp.status < 600):
                return resp
            if resp.status in (429, 503):
                asked = parse_retry_after(resp.header("retry-after"), time.time())
                if asked is not None and asked > cfg.max_retry_after_s:
                    return resp
                backoff = backoff if asked is None else asked
            self._retry_wait(backoff, f"HTTP {resp.status}", url)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _retry_wait(self, seconds: float, after: str, url: str) -> None:
        """Sleep before a retry, unless the URL's deadline comes first: no wait is wasted."""
        if seconds >= self._clock.left():
            raise self._clock.expired(f"waiting {seconds:.1f}s to retry after {after}", url)
        time.sleep(seconds)

    # --- one request ----------------------------------------------------------------------

    def _request(self, url: str, kind: str, byte_range: ByteRange = None) -> Response:
        cfg = self.cfg
        parts, port = split_url(url)
        try:
            target = self.guard(parts.hostname, port)
        except BlockedAddress as e:
            raise FetchFailure("blocked_address", str(e), url=url) from e
        except ResolveError as e:
            raise FetchFailure("dns", str(e), url=url) from e

        host_header = (
            target.host if port == DEFAULT_PORTS[parts.scheme] else f"{target.host}:{port}"
        )
        path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
        if parts.query:
            path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
        headers = {
            "Host": host_header,
            "User-Agent": cfg.user_agent,
            "Accept": ACCEPT if kind == PAGE else "text/plain,*/*;q=0.1",
            "Accept-Encoding": BodyDecoder.ACCEPT,
        }
        if byte_range is not None:
            start, length = byte_range
            headers["Range"] = f"bytes={start}-{start + length - 1}"
            headers["Accept"] = "*/*"
            headers["Accept-Encoding"] = "identity"  # the stored bytes, as they lie in the file
        clock = self._clock
        try:
            clock.queued_s += self.gate.acquire(target.host, clock.left())
        except SlotTimeout:
            raise clock.expired(f"waiting for a slot for host {target.host}", url) from None
        held = time.monotonic()
        try:
            deadline = held + cfg.total_timeout_s
            raw = self._open(target, parts.scheme, path, headers, url)
            resp = Response(
                url=url,
                status=raw.status,
                reason=raw.reason or "",
                headers=list(raw.headers.items()),
                content_type=raw.headers.get("content-type", ""),
                request_headers=list(headers.items()),
            )
            drained = False
            try:
                # A server that ignores Range answers 200 with the whole file: nothing is read.
                if raw.status == 206 if byte_range is not None else 200 <= raw.status < 300:
                    resp.body, drained = self._read_body(raw, resp, deadline, kind, byte_range)
            finally:
                if not drained:  # unread bytes would corrupt the next request on it
                    raw.close()
                raw.release_conn()
        finally:
            clock.fetching_s += time.monotonic() - held
            self.gate.release(target.host)
        return resp

    def _open(
        self, target: Target, scheme: str, path: str, headers: dict[str, str], url: str
    ) -> urllib3.BaseHTTPResponse:
        """Send the request to the checked addresses in turn until one accepts the connection."""
        cfg = self.cfg
        pool_kwargs = {}
        if scheme == "https":
            name = target.host.strip("[]")
            pool_kwargs = {"server_hostname": name, "assert_hostname": name}
        clock = self._clock
        for i, address in enumerate(target.addresses):
            left = clock.left()
            if left <= 0:
                raise clock.expired(f"connecting to {target.host}", url)
            timeout = urllib3.Timeout(
                connect=min(cfg.connect_timeout_s, left),
                read=min(cfg.read_timeout_s, cfg.total_timeout_s, left),
            )
            pool = self.pools.connection_from_host(
                address, target.port, scheme, pool_kwargs=pool_kwargs
            )
            try:
                return pool.urlopen(
                    "GET",
                    path,
                    headers=headers,
                    redirect=False,
                    retries=False,
                    assert_same_host=False,
                    preload_content=False,
                    decode_content=False,
                    release_conn=False,
                    timeout=timeout,
                )
            except (NewConnectionError, ConnectTimeoutError) as e:
                if i + 1 < len(target.addresses):
                    continue  # e.g. an IPv6 address on a host without IPv6 routes
                clock.check(f"connecting to {target.host}", url)
                reason = "connection" if isinstance(e, NewConnectionError) else "timeout"
                raise FetchFailure(reason, f"cannot connect ({e})", url=url, retry=True) from e
            except (ReadTimeoutError, TimeoutError) as e:
                clock.check(f"waiting for the response from {target.host}", url)
                raise FetchFailure("timeout", f"timed out ({e})", url=url, retry=True) from e
            except SSLError as e:
                raise FetchFailure("tls", f"TLS error ({e})", url=url) from e
            except (HTTPError, OSError) as e:
                msg = f"connection failed ({e})"
                raise FetchFailure("connection", msg, url=url, retry=True) from e
        raise FetchFailure("dns", "no address to connect to", url=url)

    def _read_body(
        self,
        raw: urllib3.BaseHTTPResponse,
        resp: Response,
        deadline: float,
        kind: str,
        byte_range: ByteRange = None,
    ) -> tuple[bytes, bool]:
        """The decoded body, and whether the response was read to its end."""
        cfg = self.cfg
        limit = MAX_ROBOTS_BYTES if kind == ROBOTS else cfg.max_bytes
        if byte_range:
            limit = byte_range[1]
        if kind == PAGE:
            try:
                fetch_rules.check_content_type(resp.content_type)
            except FetchFailure as e:
                raise FetchFailure(e.reason, str(e), resp.status, resp.url) from e
        declared = resp.header("content-length")
        if kind != ROBOTS and declared.isdigit() and int(declared) > limit:
            raise FetchFailure(
                "too_large", f"Content-Length {declared} exceeds {limit}", resp.status, resp.url
            )
        # A byte range is kept as stored (a gzip member, say): its reader decodes it, capped.
        encoding = "" if byte_range else resp.header("content-encoding")
        decoder = BodyDecoder(encoding, cfg.max_decompressed_bytes)
        size, chunks = 0, []
        clock, stage = self._clock, f"reading the body of {resp.url}"
        while True:
            url_left = clock.left()
            if url_left <= 0:
                raise clock.expired(stage, resp.url, resp.status)
            left = deadline - time.monotonic()
            if left <= 0:
                raise FetchFailure(
                    "timeout", f"total timeout {cfg.total_timeout_s}s", resp.status, resp.url
                )
            left = min(left, url_left)
            # Looked up on every read: once the body's last byte is read, urllib3 hands a
            # kept-alive connection back to the pool, and its socket belongs to the next request.
            sock = getattr(raw.connection, "sock", None)
            if sock is not None:
                sock.settimeout(min(cfg.read_timeout_s, left))
            try:
                chunk = raw.read1(CHUNK)
            except (ReadTimeoutError, TimeoutError) as e:
                if clock.left() <= 0:
                    raise clock.expired(stage, resp.url, resp.status) from e
                msg = f"read timed out ({e})"
                raise FetchFailure("timeout", msg, resp.status, resp.url, retry=True) from e
            except (HTTPError, OSError) as e:
                msg = f"body read failed ({e})"
                raise FetchFailure("connection", msg, resp.status, resp.url, retry=True) from e
            if not chunk:
                return b"".join(chunks), True
            size += len(chunk)
            if size > limit:
                if kind == ROBOTS:  # past the cap: parse what fits, as RFC 9309 allows
                    return b"".join(chunks), False
                raise FetchFailure(
                    "too_large", f"body exceeds {limit} bytes", resp.status, resp.url
                )
            try:
                chunks.append(decoder.feed(chunk))
            except FetchFailure as e:
                raise FetchFailure(e.reason, str(e), resp.status, resp.url) from e
