"""WARC recording and replay: a recorded fetch replays to an equal FetchResult."""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import replace
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.fetch import result_from_response
from pipeline.http_client import Fetcher
from pipeline.warc import (
    CHECKPOINT,
    KEPT,
    ORIGINAL_ENCODING,
    WarcCompression,
    WarcRecorder,
    iter_responses,
)
from tests.hostile_server import PAGE, candidate
from tests.test_fetch_client import CFG


def record(exchanges, path, compression=KEPT):
    with WarcRecorder(path, compression) as rec:
        for e in exchanges:
            r = e.result
            rec.write(
                r.candidate.url, r.final_url, r.status, e.reason, e.headers, r.body,
                e.request_headers, doc_id=r.candidate.doc_id, fetch_time=r.fetch_time,
            )  # fmt: skip


@pytest.mark.parametrize("compression", [KEPT, CHECKPOINT], ids=lambda c: c.codec)
def test_record_and_replay_give_equal_results(hostile, tmp_path, compression):
    paths = ["/page", "/latin1", "/cp1252", "/gzip-page", "/noctype"]
    redirect = hostile.url("/to?u=" + hostile.url("/latin1"))
    candidates = [candidate(hostile.url(p)) for p in paths] + [candidate(redirect)]
    exchanges = Fetcher(CFG).exchanges(candidates)
    assert all(e.result.ok for e in exchanges)
    path = str(tmp_path / f"x{compression.suffix}")
    record(exchanges, path, compression)

    responses = list(iter_responses(path))
    assert len(responses) == len(candidates)
    by_requested = {r.requested_uri: r for r in responses}
    for e in exchanges:
        live = e.result
        resp = by_requested[live.candidate.url]
        assert resp.target_uri == live.final_url
        assert resp.doc_id == live.candidate.doc_id
        replayed = result_from_response(live.candidate, resp, CFG)
        assert (live.source, replayed.source) == ("live", "warc")  # provenance differs
        assert replace(replayed, source="live") == live  # and nothing else
    # the redirect: recorded under the final URL, linked to the requested one
    assert by_requested[redirect].target_uri == hostile.url("/latin1")
    # decoded body stored; the wire's encoding kept aside
    gz = by_requested[hostile.url("/gzip-page")]
    assert gz.body == PAGE and gz.header(ORIGINAL_ENCODING) == "gzip"
    assert gz.header("content-encoding") == ""


def test_recorder_is_atomic(tmp_path):
    path = str(tmp_path / "a.warc.gz")
    with pytest.raises(RuntimeError), WarcRecorder(path) as rec:
        rec.write("http://a/", "http://a/", 200, "OK", (), b"x")
        raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []
    rec = WarcRecorder(path)
    assert os.listdir(tmp_path) != ["a.warc.gz"]  # only a temporary while open
    rec.close()
    assert os.listdir(tmp_path) == ["a.warc.gz"]


def foreign_warc(path, records):
    """A WARC as another crawler writes it: raw payloads, content-encoded, maybe chunked."""
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for uri, status, headers, payload in records:
            http = StatusAndHeaders(f"{status} X", headers, protocol="HTTP/1.1")
            writer.write_record(
                writer.create_warc_record(
                    uri, "response", payload=io.BytesIO(payload), http_headers=http
                )
            )


def test_foreign_records_get_the_live_rules(tmp_path):
    path = str(tmp_path / "cc.warc.gz")
    html = b"<html><head><meta charset='koi8-r'></head><body>x</body></html>"
    chunked = b"5\r\n<html\r\n3\r\n>hi\r\n0\r\n\r\n"
    foreign_warc(
        path,
        [
            ("http://a.example/gz", 200, [("Content-Type", "text/html"),
                                          ("Content-Encoding", "gzip")], gzip.compress(html)),
            ("http://a.example/chunked", 200, [("Content-Type", "text/html"),
                                               ("Transfer-Encoding", "chunked")], chunked),
            ("http://a.example/img", 200, [("Content-Type", "image/jpeg")], b"\xff\xd8"),
            ("http://a.example/big", 200, [("Content-Type", "text/html")], b"<p>" * 100_000),
            ("http://a.example/gone", 404, [("Content-Type", "text/html")], b"no"),
        ],
    )  # fmt: skip
    got = {
        r.target_uri.rsplit("/", 1)[1]: result_from_response(candidate(r.target_uri), r, CFG)
        for r in iter_responses(path, max_body=CFG.max_bytes)
    }
    assert (got["gz"].outcome, got["gz"].body, got["gz"].encoding) == ("fetched", html, "koi8-r")
    assert got["chunked"].body == b"<html>hi"
    assert got["img"].outcome == "fetch.content_type"
    assert got["big"].outcome == "fetch.too_large"
    assert (got["gone"].outcome, got["gone"].status) == ("fetch.http_404", 404)
    small = replace(CFG, max_decompressed_bytes=10)
    bomb = result_from_response(candidate("http://a.example/gz"), next(iter_responses(path)), small)
    assert bomb.outcome == "fetch.decompression_bomb"


def _members(path: str, compression: WarcCompression) -> list[bytes]:
    """The file's gzip members or zstd frames, each decompressed."""
    import zlib

    import zstandard

    data, members = Path(path).read_bytes(), []
    while data:
        if compression.codec == "gzip":
            d = zlib.decompressobj(zlib.MAX_WBITS + 16)
        else:
            d = zstandard.ZstdDecompressor().decompressobj()
        members.append(d.decompress(data))
        data = d.unused_data
    return members


BODIES = [(b"<p>page %d of a site about rivers and their bridges</p>" % i) * 300 for i in range(5)]


def write_pages(path: str, compression: WarcCompression, bodies: list[bytes]) -> None:
    with WarcRecorder(path, compression) as rec:
        for i, body in enumerate(bodies):
            url = f"http://example.com/{i}"
            rec.write(url, url, 200, "OK", (("Content-Type", "text/html"),), body)


@pytest.mark.parametrize("compression", [KEPT, CHECKPOINT], ids=lambda c: c.codec)
def test_every_record_is_its_own_member_and_reads_back(tmp_path, compression):
    """One gzip member (WARC/1.1 Annex D) or zstd frame (the IIPC warc-zstd draft) per record,
    so a record can be read from its offset alone."""
    path = str(tmp_path / f"a{compression.suffix}")
    write_pages(path, compression, BODIES)
    assert [r.body for r in iter_responses(path)] == BODIES
    members = _members(path, compression)
    assert len(members) == 1 + 2 * len(BODIES)  # warcinfo, then a request and a response each
    assert all(m.startswith(b"WARC/1.") for m in members)
    assert os.path.getsize(path) < sum(map(len, BODIES)) / 5


def test_reads_zstd_warcs_with_a_dictionary_frame(tmp_path):
    """The draft's other layout: a skippable frame holding the (here compressed) dictionary
    the record frames were compressed with."""
    import zstandard

    plain = str(tmp_path / "plain.warc.zst")
    write_pages(plain, CHECKPOINT, BODIES * 40)
    records = _members(plain, CHECKPOINT)
    dictionary = zstandard.train_dictionary(4096, records)
    cctx = zstandard.ZstdCompressor(dict_data=dictionary)
    packed = zstandard.ZstdCompressor().compress(dictionary.as_bytes())
    path = tmp_path / "dict.warc.zst"
    path.write_bytes(
        b"\x5d\x2a\x4d\x18"
        + len(packed).to_bytes(4, "little")
        + packed
        + b"".join(cctx.compress(r) for r in records)
    )
    assert [r.body for r in iter_responses(str(path))] == BODIES * 40
