"""The archive backends against a real pywb on 127.0.0.1 (tests/archive_world.py): which
capture a URL gets, and the outcomes when there is none or the archive misbehaves."""

from __future__ import annotations

from dataclasses import replace

import pytest

from foundation.config import ArchiveConfig, ConfigError, FetchConfig, JobConfig
from foundation.records import FetchResult
from pipeline.archive.cdx import parse_cdx, unix_time
from pipeline.archive.fetcher import ArchiveFetcher, LiveThenArchive, is_dead
from pipeline.http_client import Fetcher
from tests.archive_world import (
    ARTICLES,
    LIVE_ALIVE,
    NEWS,
    SUBMITTED,
    FakeArchive,
    cdx_line,
)
from tests.hostile_server import candidate
from tests.page_server import article_html

FETCH = FetchConfig(
    allow_addresses=("127.0.0.1",),
    read_timeout_s=5.0,
    total_timeout_s=10.0,
    per_host_delay_s=0.0,
    retries=0,
)
ARCHIVE = dict(requests_per_s=1000.0, concurrency=4, retries=0, backoff_s=0.0)


def submitted(url: str, when: int = SUBMITTED):
    return replace(candidate(url), created_utc=when)


def in_order(fetcher, urls: list[str]) -> list[FetchResult]:
    """The results of ``urls`` in their order (a fetcher yields them as they end)."""
    got = {e.result.candidate.url: e.result for e in fetcher.stream([submitted(u) for u in urls])}
    fetcher.close()
    return [got[u] for u in urls]


def fetch(world_or_source, urls, tmp_path, fetch_cfg=FETCH, **archive) -> list[FetchResult]:
    """Each of ``urls`` from one archive, with a fresh lookup cache."""
    source = getattr(world_or_source, "source", world_or_source)
    cfg = ArchiveConfig(sources=(source,), **{**ARCHIVE, **archive})
    cache = tmp_path / "lookups" / str(len(list(tmp_path.glob("lookups/*"))))
    return in_order(ArchiveFetcher(fetch_cfg, cfg, str(cache)), urls)


def one(world, url, tmp_path, **archive) -> FetchResult:
    (result,) = fetch(world, [url], tmp_path, **archive)
    return result


def test_the_capture_nearest_the_submission_is_read_with_its_provenance(archive_world, tmp_path):
    r = one(archive_world, f"{NEWS}/story", tmp_path)
    assert r.outcome == "fetched", r.error
    assert r.body == article_html(ARTICLES["/story", 2017])
    assert (r.source, r.final_url, r.content_type) == ("local", f"{NEWS}/story", "text/html")
    assert r.fetch_time == unix_time("20170601000000")  # the capture time
    assert r.record == f"{archive_world.pywb.cdx_url('arch')[:-4]}/20170601000000id_/{NEWS}/story"


def test_a_fixed_as_of_date_picks_the_capture_nearest_it(archive_world, tmp_path):
    assert one(archive_world, f"{NEWS}/story", tmp_path, as_of="2019-12-31").body == article_html(
        ARTICLES["/story", 2019]
    )
    assert one(archive_world, f"{NEWS}/story", tmp_path, as_of="2014-06-01").body == article_html(
        ARTICLES["/story", 2015]
    )


def test_a_capture_beyond_the_skew_limit_is_not_used(archive_world, tmp_path):
    r = one(archive_world, f"{NEWS}/story", tmp_path, as_of="2013-01-01", max_skew_days=30)
    assert r.outcome == "archive.too_far"
    assert "max_skew_days=30" in r.error and not r.body


def test_non_200_captures_are_skipped_however_near(archive_world, tmp_path):
    r = one(archive_world, f"{NEWS}/flaky", tmp_path)  # a 404 two weeks off, a 200 a year off
    assert r.outcome == "fetched" and r.body == article_html(ARTICLES["/flaky", 2016])
    gone = one(archive_world, f"{NEWS}/gone", tmp_path)
    assert gone.outcome == "archive.no_capture" and "none usable" in gone.error
    never = one(archive_world, f"{NEWS}/never-archived", tmp_path)
    assert never.outcome == "archive.no_capture" and "none listed" in never.error


def test_a_redirect_capture_leads_to_the_capture_of_its_target(archive_world, tmp_path):
    r = one(archive_world, f"{NEWS}/moved", tmp_path)  # relative Location with '&' in its query
    assert r.outcome == "fetched", r.error
    assert r.final_url == f"{NEWS}/landing?a=1&b=2"
    assert r.body == article_html(ARTICLES["/landing", 2017])
    capped = fetch(archive_world, [f"{NEWS}/moved"], tmp_path, replace(FETCH, max_redirects=0))
    assert capped[0].outcome == "archive.too_many_redirects"


def test_a_revisit_record_gives_the_payload_it_points_to(archive_world, tmp_path):
    r = one(archive_world, f"{NEWS}/rev", tmp_path)  # the revisit (2017-06) is the nearest
    assert r.outcome == "fetched", r.error
    assert r.body == article_html(ARTICLES["/rev", 2014])
    assert r.fetch_time == unix_time("20170601000000")


def test_damaged_and_non_html_captures(archive_world, tmp_path):
    damaged, pdf = fetch(archive_world, [f"{NEWS}/damaged", f"{NEWS}/pdf"], tmp_path)
    assert damaged.outcome == "archive.bad_record" and "digest" in damaged.error
    assert pdf.outcome == "fetch.content_type"  # the live rules apply to archived bytes


def test_the_common_crawl_route_reads_the_same_pages_by_byte_range(archive_world, tmp_path):
    """CDX from pywb (CC's index software), each record by Range from the data server: the same
    page as replay, redirect captures followed, a revisit resolved to its original's payload,
    damage and content rules the same outcomes; provenance names the file and offset."""
    paths = ("story", "moved", "rev", "flaky", "gone", "damaged", "pdf", "never-archived")
    urls = [f"{NEWS}/{p}" for p in paths]
    replayed = fetch(archive_world, urls, tmp_path)
    asked = len(archive_world.data.ranges)
    ranged = fetch(archive_world.cc_source, urls, tmp_path)
    fields = ("outcome", "body", "final_url", "fetch_time", "content_type", "encoding")
    for url, r, c in zip(urls, replayed, ranged, strict=True):
        assert [getattr(c, f) for f in fields] == [getattr(r, f) for f in fields], url
    story, moved, rev = ranged[:3]
    assert story.outcome == "fetched" and story.source == "cc"
    file, offset = story.record.rsplit("@", 1)
    assert file == f"{archive_world.data.base_url}/news.warc.gz" and int(offset) > 0
    assert moved.body == article_html(ARTICLES["/landing", 2017])
    assert rev.body == article_html(ARTICLES["/rev", 2014])
    assert ranged[5].outcome == "archive.bad_record" and "Digest" in ranged[5].error
    new_ranges = archive_world.data.ranges[asked:]
    assert new_ranges and all(r.startswith("bytes=") for r in new_ranges)
    capped = fetch(archive_world.cc_source, urls[1:2], tmp_path, replace(FETCH, max_redirects=0))
    assert capped[0].outcome == "archive.too_many_redirects"


def test_a_data_server_without_the_record_or_down_is_a_counted_outcome(archive_world, tmp_path):
    cdx = archive_world.pywb.cdx_url("arch")
    (missing,) = fetch(
        f"cc={cdx} warc:{archive_world.data.base_url}/gone/", [f"{NEWS}/story"], tmp_path
    )
    assert missing.outcome == "archive.bad_record" and "404" in missing.error
    (down,) = fetch(f"cc={cdx} warc:{archive_world.dead}/", [f"{NEWS}/story"], tmp_path)
    assert down.outcome == "archive.unreachable" and "cc:" in down.error


def test_sources_are_tried_in_order(archive_world, tmp_path):
    with FakeArchive([(200, {}, b"")]) as empty:
        cfg = ArchiveConfig(sources=(empty.source, archive_world.source), **ARCHIVE)
        fetcher = ArchiveFetcher(FETCH, cfg, str(tmp_path / "lookups"))
        found, missing = in_order(fetcher, [f"{NEWS}/story", f"{NEWS}/x"])
    assert (found.outcome, found.source) == ("fetched", "local")
    assert missing.outcome == "archive.no_capture"
    assert "fake: " in missing.error and "local: " in missing.error


def test_lookups_are_cached_so_a_rerun_does_not_ask_again(archive_world, tmp_path):
    cfg = ArchiveConfig(sources=(archive_world.source,), **ARCHIVE)
    urls = [submitted(f"{NEWS}/story"), submitted(f"{NEWS}/moved"), submitted(f"{NEWS}/gone")]
    results = []
    for _ in range(2):
        fetcher = ArchiveFetcher(FETCH, cfg, str(tmp_path / "lookups"))
        results.append(sorted((e.result.candidate.url, e.result.body, e.result.outcome)
                              for e in fetcher.stream(urls)))  # fmt: skip
        results.append(fetcher.cdx.queries)
        fetcher.close()
    first, first_queries, again, again_queries = results
    assert first == again
    assert first_queries == 4 and again_queries == 0  # /moved costs two lookups


def test_an_archive_on_loopback_is_reached_only_when_allowed(archive_world, tmp_path):
    guarded = replace(FETCH, allow_addresses=())
    (r,) = fetch(archive_world, [f"{NEWS}/story"], tmp_path, guarded)
    assert r.outcome == "archive.blocked_address"


def test_429_with_retry_after_is_waited_out_then_rate_limited_past_the_cap(tmp_path):
    page = article_html(1)
    answers = [(429, {"Retry-After": "1"}, b""), (200, {}, cdx_line(f"{NEWS}/a", "20170601000000"))]
    with FakeArchive(answers, page) as archive:
        (r,) = fetch(archive, [f"{NEWS}/a"], tmp_path, retries=2, max_retry_after_s=5)
        assert (r.outcome, r.body) == ("fetched", page)
        assert archive.requests["cdx"] == 2
    with FakeArchive([(429, {"Retry-After": "3600"}, b"")]) as archive:
        (r,) = fetch(archive, [f"{NEWS}/a"], tmp_path, retries=2, max_retry_after_s=5)
        assert r.outcome == "archive.rate_limited" and archive.requests["cdx"] == 1
    with FakeArchive([(503, {}, b"")]) as archive:
        (r,) = fetch(archive, [f"{NEWS}/a"], tmp_path, retries=1)
        assert r.outcome == "archive.rate_limited" and archive.requests["cdx"] == 2


def test_a_cdx_server_that_answers_garbage_or_is_down_is_a_counted_outcome(tmp_path):
    with FakeArchive([(200, {}, b"<html>not a CDX answer</html>")]) as archive:
        (r,) = fetch(archive, [f"{NEWS}/a"], tmp_path)
    assert r.outcome == "archive.bad_record"
    huge = cdx_line(f"{NEWS}/a", "20170601000000") * 100
    with FakeArchive([(200, {}, huge)]) as archive:  # past fetch.max_bytes
        (r,) = fetch(archive, [f"{NEWS}/a"], tmp_path, replace(FETCH, max_bytes=len(huge) // 2))
    assert r.outcome == "archive.bad_record" and "exceeds" in r.error
    with FakeArchive([(500, {}, b"")]) as archive:
        (r,) = fetch(archive, [f"{NEWS}/a"], tmp_path)
    assert r.outcome == "archive.unreachable"
    (r,) = fetch(archive.source, [f"{NEWS}/a"], tmp_path)  # the server is gone
    assert r.outcome == "archive.unreachable" and "fake:" in r.error


def test_wayback_json_arrays_parse_like_pywb_lines():
    wayback = (
        b'[["urlkey","timestamp","original","mimetype","statuscode","digest","length"],'
        b'["com,example)/","20170601000000","http://example.com/","text/html","200","AB","9"],'
        b'["com,example)/","20180101000000","http://example.com/","warc/revisit","-","AB","9"]]'
    )
    ok, revisit = parse_cdx("wayback", wayback)
    assert (ok.url, ok.timestamp, ok.status, ok.length) == (
        "http://example.com/",
        "20170601000000",
        200,
        9,
    )
    assert (revisit.status, revisit.mime) == (0, "warc/revisit")
    assert parse_cdx("wayback", b"[]") == [] and parse_cdx("pywb", b"") == []


def test_live_then_archive_falls_back_only_on_dead_outcomes(archive_world, tmp_path):
    live = archive_world.live.base_url
    urls = [f"{live}/alive", f"{live}/gone-live", f"{live}/private/page"]
    urls += [f"{archive_world.dead}/refused", f"{live}/nowhere"]
    cfg = ArchiveConfig(sources=(archive_world.source,), **ARCHIVE)
    live_cfg = replace(FETCH, connect_timeout_s=2.0)
    fetcher = LiveThenArchive(
        Fetcher(live_cfg), ArchiveFetcher(live_cfg, cfg, str(tmp_path / "lookups"))
    )
    alive, gone, private, refused, nowhere = in_order(fetcher, urls)
    assert (alive.source, alive.body) == ("live", article_html(LIVE_ALIVE))
    assert (gone.source, gone.body) == ("local", article_html(ARTICLES["/gone-live", 2017]))
    assert (refused.source, refused.body) == ("local", article_html(ARTICLES["/refused", 2017]))
    assert private.outcome == "fetch.robots"  # archived, but a robots refusal does not fall back
    assert nowhere.outcome == "archive.no_capture"
    assert "live: fetch.http_404" in nowhere.error


def test_dead_outcomes():
    dead = ("fetch.dns", "fetch.connection", "fetch.http_404", "fetch.http_410", "fetch.http_503")
    assert all(is_dead(o) for o in dead)
    alive = ("fetched", "fetch.robots", "fetch.http_403", "fetch.content_type", "fetch.timeout")
    assert not any(is_dead(o) for o in alive)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"sources": ["nowhere"]}, "archive.sources"),
        ({"sources": ["commoncrawl"]}, "archive.sources"),
        ({"sources": ["x=ftp://a/cdx"]}, "archive.sources"),
        ({"sources": ["x=http://a/index"]}, "archive.sources"),
        ({"sources": ["x=http://a/cdx", "x=http://b/cdx"]}, "archive.sources"),
        ({"as_of": "2017-13-01"}, "archive.as_of"),
        ({"max_skew_days": 0}, "archive.max_skew_days"),
        ({"requests_per_s": -1}, "archive.requests_per_s"),
        ({"columnar_index": "/cc/table"}, "archive.columnar_index"),  # wayback: no byte ranges
    ],
)
def test_bad_archive_settings_name_the_setting(settings, named):
    with pytest.raises(ConfigError, match=named):
        JobConfig.from_dict({"archive": settings})


def test_archive_sources_parse():
    cfg = ArchiveConfig(
        sources=(
            "wayback",
            "commoncrawl:CC-MAIN-2017-51",
            "mine=http://10.0.0.1:8080/coll/cdx",
            "cc2=http://idx.local/x-index warc:http://data.local/",
        )
    )
    wayback, cc, mine, cc2 = cfg.archives
    assert (wayback.route, wayback.content) == ("replay", "https://web.archive.org/web")
    assert cc.cdx_url == "https://index.commoncrawl.org/CC-MAIN-2017-51-index"
    assert (cc.route, cc.content) == ("warc", "https://data.commoncrawl.org/")
    assert (mine.name, mine.content) == ("mine", "http://10.0.0.1:8080/coll")
    assert (cc2.route, cc2.content) == ("warc", "http://data.local/")
    flags = JobConfig().from_dict({"fetch": {"backend": "live+archive"}})
    assert flags.fetch.backend == "live+archive"
