"""The live fetcher against misbehaving local servers: every case ends fast with its outcome."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from urllib3.connectionpool import HTTPConnectionPool

from foundation.config import FetchConfig
from foundation.records import Candidate
from pipeline.address_guard import Target, resolve_target
from pipeline.http_client import (
    Exchange,
    Fetcher,
    HostGate,
    interleave_by_host,
    parse_retry_after,
)
from tests.hostile_server import CP1252, LATIN1, PAGE, HostileServer
from tests.page_server import PageServer

CFG = FetchConfig(
    allow_addresses=("127.0.0.1",),
    connect_timeout_s=1.0,
    read_timeout_s=1.0,
    total_timeout_s=1.5,
    max_bytes=200_000,
    max_decompressed_bytes=1_000_000,
    max_redirects=3,
    retries=2,
    backoff_s=0.05,
    per_host_concurrency=8,
    per_host_delay_s=0.0,
    concurrency=16,
    user_agent="webtext-test/1.0",
)


def cand(url: str) -> Candidate:
    return Candidate(
        doc_id="0" * 32, canonical_url=url, url=url, domain="d", karma=3, created_utc=0,
        submissions=(),
    )  # fmt: skip


def fetch(url: str, cfg: FetchConfig = CFG, **kw):
    fetcher = Fetcher(cfg, **kw)
    try:
        return fetcher.fetch_many([cand(url)])[0]
    finally:
        fetcher.close()


@pytest.mark.parametrize(
    "path,body,encoding",
    [
        ("/page", PAGE, "utf-8"),  # charset from the header
        ("/latin1", LATIN1, "iso8859-1"),  # from <meta charset>
        ("/cp1252", CP1252, "cp1252"),  # undeclared, not UTF-8: the fallback
        ("/noctype", PAGE, "utf-8"),  # no Content-Type: sniffed as HTML
        ("/gzip-page", PAGE, "utf-8"),  # gzip decoded
    ],
)
def test_html_pages_are_fetched_with_their_charset(hostile, path, body, encoding):
    r = fetch(hostile.url(path))
    assert (r.outcome, r.status, r.content_type) == ("fetched", 200, "text/html")
    assert r.body == body
    assert r.encoding == encoding
    assert r.final_url == hostile.url(path)
    assert r.fetch_time > 0


HOSTILE = [
    ("/slow", "fetch.timeout"),
    ("/endless", "fetch.too_large"),
    ("/huge-length", "fetch.too_large"),
    ("/png", "fetch.content_type"),
    ("/octet", "fetch.content_type"),
    ("/gzip-bomb", "fetch.decompression_bomb"),
    ("/deflate-bomb", "fetch.decompression_bomb"),
    ("/br-bomb", "fetch.decompression_bomb"),
    ("/loop", "fetch.too_many_redirects"),
    ("/404", "fetch.http_404"),
    ("/private/page", "fetch.robots"),
]


@pytest.mark.parametrize("path,outcome", HOSTILE)
def test_hostile_routes_end_quickly_with_their_outcome(hostile, path, outcome):
    start = time.monotonic()
    r = fetch(hostile.url(path))
    elapsed = time.monotonic() - start
    assert r.outcome == outcome, r.error
    assert r.body == b"" and r.error
    # the slow drip is cut at total_timeout_s (1.5 s), everything else is near-instant
    assert elapsed < CFG.total_timeout_s + 1.0


def test_slow_drip_is_not_retried_and_stops_at_total_timeout(hostile):
    before = hostile.count("/slow")
    start = time.monotonic()
    assert fetch(hostile.url("/slow")).outcome == "fetch.timeout"
    assert time.monotonic() - start < CFG.total_timeout_s + 0.5
    assert hostile.count("/slow") == before + 1


def test_bomb_costs_at_most_the_cap(hostile):
    cfg = replace(CFG, max_decompressed_bytes=9 * 1024 * 1024)  # the bomb is 8 MiB of zeros
    for kind in ("gzip", "deflate", "br"):
        r = fetch(hostile.url(f"/{kind}-bomb"), cfg)
        assert r.outcome == "fetched" and len(r.body) == 8 * 1024 * 1024, r.error


@pytest.mark.parametrize("route,status", [("/429", 429), ("/500", 500)])
def test_retries_then_success(hostile, route, status):
    key = f"{route}-ok"
    r = fetch(hostile.url(f"{route}?k={key}&n=2"))
    assert r.outcome == "fetched"
    assert hostile.count(f"{route}?{key}", key=True) - 1 == 3  # two failures, then the page


@pytest.mark.parametrize("route,status", [("/429", 429), ("/500", 500)])
def test_retries_give_up_after_cfg_retries(hostile, route, status):
    key = f"{route}-fail"
    r = fetch(hostile.url(f"{route}?k={key}&n=99"))
    assert (r.outcome, r.status) == (f"fetch.http_{status}", status)
    assert hostile.count(f"{route}?{key}", key=True) - 1 == CFG.retries + 1


def test_retry_after_beyond_the_cap_is_not_retried(hostile):
    r = fetch(hostile.url("/429?k=long&n=99&after=3600"))
    assert r.outcome == "fetch.http_429"
    assert hostile.count("/429?long", key=True) - 1 == 1


def test_no_retry_on_404(hostile):
    before = hostile.count("/404")
    assert fetch(hostile.url("/404")).outcome == "fetch.http_404"
    assert hostile.count("/404") == before + 1


def test_connection_refused_is_retried_then_recorded():
    cfg = replace(CFG, retries=1)
    r = fetch("http://127.0.0.1:9/", cfg)  # the discard port: nothing listens
    assert r.outcome == "fetch.connection"


def test_robots_txt_fetched_once_per_origin_and_disallow_honoured(hostile):
    fetcher = Fetcher(CFG)
    before = hostile.count("/robots.txt")
    urls = [hostile.url(p) for p in ("/page", "/private/page", "/latin1", "/private/page")]
    results = fetcher.fetch_many([cand(u) for u in urls])
    assert [r.outcome for r in results] == ["fetched", "fetch.robots", "fetched", "fetch.robots"]
    assert hostile.count("/robots.txt") == before + 1
    ignoring = fetch(hostile.url("/private/page"), replace(CFG, respect_robots=False))
    assert ignoring.outcome == "fetched"


def test_user_agent_from_config(hostile):
    fetch(hostile.url("/page"), replace(CFG, user_agent="my-crawler/2.0 (+mail)"))
    assert "my-crawler/2.0 (+mail)" in hostile.agents


def test_connects_to_the_checked_address_without_a_second_lookup(hostile):
    """The name never resolves (.invalid), yet the request reaches the checked address."""
    port = hostile.server_address[1]

    def guard(host: str, p: int) -> Target:
        return Target(host=host, port=p, addresses=("127.0.0.1",))

    r = fetch(f"http://page.invalid:{port}/page", replace(CFG, respect_robots=False), guard=guard)
    assert r.outcome == "fetched", r.error
    assert hostile.hosts[-1] == f"page.invalid:{port}"


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:{port}/page",
        "http://2130706433:{port}/page",
        "http://0x7f.1:{port}/page",
        "http://[::ffff:127.0.0.1]:{port}/page",
        "http://10.0.0.1/",
    ],
)
def test_redirect_hops_are_checked_again(hostile, location):
    """The test server is let through; each redirect target must pass the real guard."""
    port = hostile.server_address[1]

    def guard(host: str, p: int) -> Target:
        if (host, p) == ("127.0.0.1", port):
            return Target(host=host, port=p, addresses=("127.0.0.1",))
        return resolve_target(host, p)

    before = hostile.count("/page")
    url = hostile.url("/to?u=" + location.format(port=port))
    for robots in (True, False):
        r = fetch(url, replace(CFG, allow_addresses=(), respect_robots=robots), guard=guard)
        assert r.outcome == "fetch.blocked_address", r.error
    assert hostile.count("/page") == before  # the private target was never contacted


def test_private_start_url_blocked_by_default(hostile):
    r = fetch(hostile.url("/page"), replace(CFG, allow_addresses=()))
    assert r.outcome == "fetch.blocked_address"


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{other}/page",  # another loopback port, a live server there
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://169.254.169.254:{port}/",  # not even through 0.0.0.0/0 on the allowed port
        "http://10.0.0.4/",  # the allowed range 10.0.0.0/30's neighbour
        "http://[::1]:{port}/page",  # the same server by another address
    ],
)
def test_the_allow_list_lets_through_what_it_lists_and_no_redirect_beyond(hostile, location):
    """The real guard, with ``fetch.allow_addresses`` only: the listed server is fetched, a
    redirect from it anywhere else is refused before any connection."""
    port = hostile.server_address[1]
    cfg = replace(CFG, allow_addresses=(f"127.0.0.1:{port}", "10.0.0.0/30", f"0.0.0.0/0:{port}"))
    assert fetch(hostile.url("/to?u=" + hostile.url("/page")), cfg).outcome == "fetched"
    with HostileServer() as other:
        target = location.format(port=port, other=other.server_address[1])
        before = hostile.count("/page")
        for robots in (True, False):
            r = fetch(hostile.url("/to?u=" + target), replace(cfg, respect_robots=robots))
            assert r.outcome == "fetch.blocked_address", r.error
        assert other.count("/page") == 0 and other.count("/robots.txt") == 0
    assert hostile.count("/page") == before


def test_the_deprecated_boolean_still_allows_private_addresses(hostile):
    cfg = replace(CFG, allow_addresses=(), allow_private_addresses=True)
    assert fetch(hostile.url("/page"), cfg).outcome == "fetched"
    r = fetch(hostile.url("/to?u=http://169.254.169.254/"), cfg)
    assert r.outcome == "fetch.blocked_address"  # but not link-local or metadata addresses


def test_requests_overlap(hostile):
    """20 requests of 0.3 s each take far less than 20 * 0.3 s."""
    cfg = replace(CFG, per_host_concurrency=20, concurrency=20)
    fetcher = Fetcher(cfg)
    start = time.monotonic()
    results = fetcher.fetch_many([cand(hostile.url(f"/sleep?s=0.3&i={i}")) for i in range(20)])
    elapsed = time.monotonic() - start
    assert all(r.ok for r in results)
    assert elapsed < 2.0, elapsed  # serial would be 6 s


def test_stream_yields_each_page_as_it_ends_and_stops_when_closed(hostile):
    """A slow page does not hold back the others (the caller extracts them meanwhile), and
    closing the stream early starts no further requests."""
    fetcher = Fetcher(replace(CFG, respect_robots=False))
    urls = [hostile.url("/sleep?s=0.6&k=slow")] + [hostile.url(f"/page?k={i}") for i in range(3)]
    got = [e.result.candidate.url for e in fetcher.stream([cand(u) for u in urls])]
    assert sorted(got) == sorted(urls) and got[-1] == urls[0]

    one_at_a_time = Fetcher(replace(CFG, concurrency=1, respect_robots=False))
    mark = len(hostile.starts)
    stream = one_at_a_time.stream([cand(hostile.url(f"/page?stop={i}")) for i in range(10)])
    assert next(stream).result.ok
    stream.close()
    assert len(hostile.starts) - mark <= 2  # the first, and at most the one already running


def test_a_released_connection_is_not_touched_again(monkeypatch):
    """Once a body's last byte is read, urllib3 hands the kept-alive connection back to the pool,
    and the next request (on another thread) may close it at once, as a 404 does: the finished
    fetch must not touch its socket any more (it did: EBADF, one page lost in an ingest run)."""
    put_conn = HTTPConnectionPool._put_conn

    def taken_and_closed(pool, conn):
        if conn is not None:
            conn.close()
        put_conn(pool, conn)

    monkeypatch.setattr(HTTPConnectionPool, "_put_conn", taken_and_closed)
    pages = {f"/{i}.html": b"<html><p>page %d</p></html>" % i for i in range(3)}
    with PageServer(pages) as server:
        results = Fetcher(replace(CFG, respect_robots=False)).fetch_many(
            [cand(server.base_url + p) for p in pages]
        )
    assert [(r.outcome, r.body) for r in results] == [("fetched", b) for b in pages.values()]


def test_per_host_concurrency_and_delay(hostile):
    fetcher = Fetcher(replace(CFG, per_host_concurrency=2, concurrency=10, respect_robots=False))
    hostile.max_concurrent = 0
    start = time.monotonic()
    results = fetcher.fetch_many([cand(hostile.url(f"/sleep?s=0.2&j={i}")) for i in range(6)])
    assert all(r.ok for r in results)
    assert hostile.max_concurrent == 2
    assert time.monotonic() - start >= 3 * 0.2

    spaced = Fetcher(replace(CFG, per_host_delay_s=0.15, respect_robots=False))
    mark = len(hostile.starts)
    spaced.fetch_many([cand(hostile.url(f"/page?d={i}")) for i in range(4)])
    starts = [t for _, t in hostile.starts[mark:]]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 3 and min(gaps) >= 0.13, gaps


def test_results_keep_input_order_and_hosts_interleave():
    urls = ["http://a/1", "http://a/2", "http://a/3", "http://b/1", "http://c/1", "http://b/2"]
    order = interleave_by_host([cand(u) for u in urls])
    assert [urls[i] for i in order[:3]] == ["http://a/1", "http://b/1", "http://c/1"]
    assert sorted(order) == list(range(len(urls)))


def test_bad_urls():
    assert fetch("ftp://example.com/x").outcome == "fetch.bad_url"
    assert fetch("http://[::1/").outcome == "fetch.bad_url"


def test_retry_after_parsing():
    assert parse_retry_after("5", 0) == 5.0
    assert parse_retry_after("", 0) is None
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 40.0) == 60.0


def test_host_gate_blocks_past_the_limit():
    gate = HostGate(limit=1, delay_s=0.0)
    with gate.slot("h"):
        start = time.monotonic()
        with gate.slot("other"):  # other hosts are not held up
            assert time.monotonic() - start < 0.1


def exchange(url: str, cfg: FetchConfig) -> Exchange:
    fetcher = Fetcher(cfg)
    try:
        return fetcher.exchanges([cand(url)])[0]
    finally:
        fetcher.close()


@pytest.mark.parametrize(
    "path,stage,requests",
    [
        ("/to?u=/slow", "reading the body of http", 1),  # a drip the per-attempt caps allow
        ("/sleep?s=3&k=deadline", "waiting for the response from 127.0.0.1", 1),
        ("/500?k=deadline-retry&n=5", "waiting 2.0s to retry after HTTP 500", 1),
    ],
)
def test_the_deadline_ends_a_url_across_hops_and_retries_and_says_where(
    hostile, path, stage, requests
):
    """Each attempt keeps within its own caps; fetch.deadline_s ends the URL as a whole."""
    name = urlsplit(path).path
    cfg = replace(CFG, deadline_s=0.8, total_timeout_s=5.0, retries=3, backoff_s=2.0)
    before = hostile.count(name)
    e = exchange(hostile.url(path), cfg)
    assert e.result.outcome == "fetch.deadline", e.result.error
    assert "fetch.deadline_s=0.8 passed while " + stage in e.result.error
    assert hostile.count(name) - before == requests  # no retry was started past the deadline


def test_the_deadline_counts_the_wait_for_a_host_slot(hostile):
    cfg = replace(
        CFG, deadline_s=1.0, per_host_concurrency=1, per_host_delay_s=5.0, respect_robots=False
    )
    fetcher = Fetcher(cfg)
    try:
        done = fetcher.exchanges([cand(hostile.url(f"/page?slot={i}")) for i in range(2)])
    finally:
        fetcher.close()
    outcomes = sorted(e.result.outcome for e in done)
    assert outcomes == ["fetch.deadline", "fetched"], [e.result.error for e in done]
    late = next(e for e in done if not e.result.ok)
    assert "waiting for a slot for host 127.0.0.1" in late.result.error
    assert late.fetching_s == 0  # it never held a slot


def test_without_a_deadline_the_per_attempt_caps_decide(hostile):
    e = exchange(hostile.url("/slow"), replace(CFG, retries=0))
    assert e.result.outcome == "fetch.timeout" and "total timeout" in e.result.error


def test_time_queued_for_a_host_slot_is_apart_from_time_fetching(hostile):
    """The second request to a host waits per_host_delay_s for its slot: queued, not fetching."""
    cfg = replace(CFG, per_host_concurrency=1, per_host_delay_s=0.5)
    fetcher = Fetcher(cfg)
    try:
        done = fetcher.exchanges([cand(hostile.url(f"/page?q={i}")) for i in range(2)])
    finally:
        fetcher.close()
    assert all(e.result.ok and e.fetching_s > 0 for e in done)
    assert max(e.queued_s for e in done) >= 0.4  # the gate's enforced spacing
    for e in done:
        assert e.queued_s + e.fetching_s <= e.elapsed


def test_a_robots_txt_cut_by_one_urls_deadline_is_asked_again_for_the_next():
    """The deadline covers robots.txt; one URL running out says nothing of the origin's rules."""
    with PageServer({"/robots.txt": b"", "/a": PAGE, "/b": PAGE}, delay_s=0.6) as server:
        server.httpd.handle_error = lambda *args: None  # it answers after we hung up: expected
        fetcher = Fetcher(replace(CFG, deadline_s=0.4, retries=0))
        try:
            for path in ("/a", "/b"):
                (r,) = fetcher.fetch_many([cand(server.base_url + path)])
                assert r.outcome == "fetch.deadline" and "robots.txt" in r.final_url, r.error
        finally:
            fetcher.close()
        assert server.requests["/robots.txt"] == 2 and server.requests["/a"] == 0
