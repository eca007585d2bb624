"""Archived records read by Range from a local data server, as from data.commoncrawl.org."""

from __future__ import annotations

import gzip
import io
import time
import zlib
from dataclasses import replace

import pytest

from foundation.config import FetchConfig
from foundation.records import Candidate
from pipeline.archive.capture import Capture
from pipeline.archive.records import (
    BAD_RECORD,
    RecordFailure,
    RecordReader,
    Revisit,
    gunzip_member,
    redirect_location,
    to_fetch_result,
)
from pipeline.fetch_rules import FetchFailure
from pipeline.http_client import Fetcher
from pipeline.warc import WarcResponse
from tests.range_server import RangeServer

CFG = FetchConfig(
    allow_addresses=("127.0.0.1",),
    connect_timeout_s=1.0,
    read_timeout_s=1.0,
    total_timeout_s=2.0,
    max_bytes=100_000,
    max_decompressed_bytes=400_000,
    retries=1,
    backoff_s=0.05,
    per_host_delay_s=0.0,
    per_host_concurrency=4,
)
PAGE = b"<html><head><title>Then</title></head><body><p>As it was in 2017.</p></body></html>"
FILE = "crawl-data/CC-MAIN-2017-51/segments/1/warc/CC-MAIN-0001.warc.gz"


def _record(writer, url: str, date: str, status: str, headers, body: bytes, **warc):
    from warcio.statusandheaders import StatusAndHeaders

    http = StatusAndHeaders(status, headers, protocol="HTTP/1.1")
    return writer.create_warc_record(
        url,
        "response",
        payload=io.BytesIO(body),
        length=len(body),
        http_headers=http,
        warc_headers_dict={"WARC-Date": date, **warc},
    )


def build_warc() -> tuple[bytes, dict[str, Capture]]:
    """A WARC.gz written the way Common Crawl writes them (one gzip member per record), and the
    capture of each record by name."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    html = [("Content-Type", "text/html; charset=utf-8")]
    records = {
        "page": _record(
            writer, "http://example.com/a", "2017-12-01T10:00:00Z", "200 OK", html, PAGE
        ),
        "redirect": _record(
            writer,
            "http://example.com/old",
            "2017-12-02T10:00:00Z",
            "301 Moved Permanently",
            [("Location", "/b")],
            b"",
        ),
        "pdf": _record(
            writer,
            "http://example.com/doc",
            "2017-12-03T10:00:00Z",
            "200 OK",
            [("Content-Type", "application/pdf")],
            b"%PDF-1.4 ...",
        ),
        "gzipped": _record(
            writer,
            "http://example.com/z",
            "2017-12-04T10:00:00Z",
            "200 OK",
            [*html, ("Content-Encoding", "gzip")],
            gzip.compress(PAGE),
        ),
        "bad_digest": _record(
            writer,
            "http://example.com/d",
            "2017-12-05T10:00:00Z",
            "200 OK",
            html,
            PAGE,
            **{"WARC-Payload-Digest": "sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
        ),
    }
    page_digest = records["page"].rec_headers.get_header("WARC-Payload-Digest")
    records["revisit"] = writer.create_revisit_record(
        "http://example.com/a",
        page_digest,
        "http://example.com/a",
        "2017-12-01T10:00:00Z",
        http_headers=StatusAndHeaders("200 OK", html, protocol="HTTP/1.1"),
        warc_headers_dict={"WARC-Date": "2017-12-20T10:00:00Z"},
    )
    captures = {}
    for name, record in records.items():
        start = out.tell()
        writer.write_record(record)
        url = record.rec_headers.get_header("WARC-Target-URI")
        captures[name] = Capture(
            "cc", url, "", 0, filename=FILE, offset=start, length=out.tell() - start
        )
    data = out.getvalue()
    # A member that decompresses well to a WARC record shorter than its Content-Length.
    page = captures["page"]
    whole = gzip.decompress(data[page.offset : page.offset + page.length])
    short = gzip.compress(whole[:-14])
    captures["short_record"] = replace(page, offset=len(data), length=len(short))
    return data + short, captures


@pytest.fixture(scope="module")
def warc():
    return build_warc()


@pytest.fixture(scope="module")
def server(warc):
    data, _ = warc
    with RangeServer({"/" + FILE: data}) as s:
        yield s


@pytest.fixture
def reader(server):
    fetcher = Fetcher(CFG)
    yield RecordReader(fetcher, server.base_url + "/")
    fetcher.close()


def cand(url: str) -> Candidate:
    return Candidate("0" * 32, url, url, "example.com", 3, 0, ())


def test_a_response_record_is_read_by_its_byte_range(reader, server, warc):
    _, caps = warc
    cap = caps["page"]
    got = reader.read(cap)
    assert isinstance(got, WarcResponse)
    assert (got.status, got.target_uri, got.body) == (200, "http://example.com/a", PAGE)
    assert got.date == "2017-12-01T10:00:00Z"
    assert got.header("content-type") == "text/html; charset=utf-8"
    assert f"bytes={cap.offset}-{cap.offset + cap.length - 1}" in server.ranges
    result = to_fetch_result(cand(cap.url), got, CFG)
    assert (result.outcome, result.body, result.encoding) == ("fetched", PAGE, "utf-8")
    assert result.final_url == "http://example.com/a"


def test_the_range_read_counts_on_the_clock_of_the_url_being_fetched(server, warc):
    """The fetch log's fetching_s of an archived page includes the read of its record."""
    fetcher = Fetcher(CFG)
    clock = fetcher.begin()
    assert isinstance(
        RecordReader(fetcher, server.base_url + "/").read(warc[1]["page"]), WarcResponse
    )
    fetcher.close()
    assert clock.fetching_s > 0
    assert clock.queued_s + clock.fetching_s <= time.monotonic() - clock.start


def test_the_live_rules_apply_to_archived_responses(reader, warc):
    _, caps = warc
    pdf = to_fetch_result(cand("u"), reader.read(caps["pdf"]), CFG)
    assert pdf.outcome == "fetch.content_type"
    gzipped = to_fetch_result(cand("u"), reader.read(caps["gzipped"]), CFG)
    assert (gzipped.outcome, gzipped.body) == ("fetched", PAGE)
    small = replace(CFG, max_decompressed_bytes=20)
    assert to_fetch_result(cand("u"), reader.read(caps["gzipped"]), small).outcome == (
        "fetch.decompression_bomb"
    )


def test_a_3xx_record_gives_its_absolute_target(reader, warc):
    _, caps = warc
    got = reader.read(caps["redirect"])
    assert isinstance(got, WarcResponse) and got.status == 301
    assert redirect_location(got) == "http://example.com/b"
    assert to_fetch_result(cand("u"), got, CFG).outcome == "fetch.http_301"
    assert redirect_location(reader.read(caps["page"])) is None


def test_a_revisit_says_what_it_refers_to_and_resolves_to_that_payload(reader, warc):
    _, caps = warc
    got = reader.read(caps["revisit"])
    assert isinstance(got, Revisit)
    assert (got.refers_to_uri, got.refers_to_timestamp) == (
        "http://example.com/a",
        "20171201100000",
    )
    asked = []

    def find(revisit: Revisit) -> Capture:
        asked.append(revisit)
        return caps["page"]

    resolved = reader.read_resolved(caps["revisit"], find)
    assert asked == [got]
    assert isinstance(resolved, WarcResponse)
    assert (resolved.status, resolved.body) == (200, PAGE)
    assert resolved.date == "2017-12-20T10:00:00Z"  # when the page was seen so


def test_a_revisit_without_its_original_or_with_another_payload_is_an_outcome(reader, warc):
    _, caps = warc
    missing = reader.read_resolved(caps["revisit"], lambda r: None)
    assert isinstance(missing, RecordFailure) and missing.outcome == "archive.revisit_unresolved"
    other = reader.read_resolved(caps["revisit"], lambda r: caps["pdf"])
    assert isinstance(other, RecordFailure) and other.outcome == BAD_RECORD


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda c, caps: replace(c, length=c.length - 20), "cut short"),
        (lambda c, caps: replace(c, offset=c.offset + 3), "gzip"),
        (lambda c, caps: caps["bad_digest"], "WARC-Payload-Digest"),
        (lambda c, caps: caps["short_record"], "truncated"),
        (lambda c, caps: replace(c, offset=caps["pdf"].offset, length=caps["pdf"].length), "for"),
    ],
    ids=["short_member", "not_gzip", "digest_mismatch", "short_record", "another_url"],
)
def test_damaged_records_are_counted_outcomes_naming_file_and_offset(reader, warc, damage, why):
    _, caps = warc
    cap = damage(caps["page"], caps)
    got = reader.read(cap)
    assert isinstance(got, RecordFailure), got
    assert got.outcome == BAD_RECORD
    assert f"{FILE} at offset {cap.offset}" in got.error and why in got.error
    assert to_fetch_result(cand("u"), got, CFG).outcome == BAD_RECORD


def test_corrupt_bytes_inside_a_member_are_a_bad_record(warc):
    data, caps = warc
    cap = caps["page"]
    broken = bytearray(data)
    for i in range(cap.offset + 40, cap.offset + 60):
        broken[i] ^= 0x5A
    with RangeServer({"/" + FILE: bytes(broken)}) as s:
        got = RecordReader(Fetcher(CFG), s.base_url).read(cap)
    assert isinstance(got, RecordFailure) and got.outcome == BAD_RECORD


def test_missing_files_and_ranges_past_the_end_are_outcomes(reader, warc):
    data, caps = warc
    gone = reader.read(replace(caps["page"], filename="crawl-data/none.warc.gz"))
    assert isinstance(gone, RecordFailure) and gone.outcome == "archive.http_404"
    past = reader.read(replace(caps["page"], offset=len(data) + 10))
    assert isinstance(past, RecordFailure) and past.outcome == "archive.http_416"
    tail = reader.read(replace(caps["short_record"], length=caps["short_record"].length + 50))
    assert isinstance(tail, RecordFailure) and tail.outcome == BAD_RECORD  # 206, but short


def test_a_server_ignoring_range_is_not_read_beyond_the_cap(warc):
    data, caps = warc
    big = data + bytes(32 * 1024 * 1024)
    with RangeServer({"/" + FILE: big}, ignore_range=True) as s:
        got = RecordReader(Fetcher(CFG), s.base_url).read(caps["page"])
        assert isinstance(got, RecordFailure) and got.outcome == "archive.no_range"
    assert s.sent["/" + FILE] < len(big) // 2


def test_throttling_is_retried_and_then_an_outcome(warc):
    data, caps = warc
    with RangeServer({"/" + FILE: data}, failures=(503, 429)) as s:
        got = RecordReader(Fetcher(replace(CFG, retries=2)), s.base_url).read(caps["page"])
        assert isinstance(got, WarcResponse) and got.body == PAGE
    with RangeServer({"/" + FILE: data}, failures=(429, 429)) as s:
        got = RecordReader(Fetcher(CFG), s.base_url).read(caps["page"])
        assert isinstance(got, RecordFailure) and got.outcome == "archive.rate_limited"
        assert s.requests["/" + FILE] == 2  # CFG.retries = 1


def test_a_record_longer_than_the_caps_is_not_requested(reader, server, warc):
    _, caps = warc
    before = sum(server.requests.values())
    got = reader.read(replace(caps["page"], length=10_000_000))
    assert isinstance(got, RecordFailure) and got.outcome == "fetch.too_large"
    assert sum(server.requests.values()) == before


def test_a_data_server_on_loopback_needs_the_allow_list(server, warc):
    _, caps = warc
    closed = RecordReader(Fetcher(replace(CFG, allow_addresses=())), server.base_url)
    got = closed.read(caps["page"])
    assert isinstance(got, RecordFailure) and got.outcome == "archive.blocked_address"
    port_only = replace(CFG, allow_addresses=(f"127.0.0.1:{server.port}",))
    assert isinstance(
        RecordReader(Fetcher(port_only), server.base_url).read(caps["page"]), WarcResponse
    )


def test_gunzip_member_caps_what_comes_out():
    bomb = gzip.compress(bytes(1_000_000))
    with pytest.raises(FetchFailure) as e:
        gunzip_member(bomb, 10_000)
    assert e.value.reason == "decompression_bomb"
    assert gunzip_member(bomb, 1_000_000) == bytes(1_000_000)
    with pytest.raises(FetchFailure) as e:
        gunzip_member(zlib.compress(b"x"), 100)
    assert e.value.reason == "bad_record"
