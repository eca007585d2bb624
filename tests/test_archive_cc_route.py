"""The Common Crawl route end to end: columnar-index join -> Range read -> the live rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from foundation.records import Candidate
from pipeline.archive.cc_index import NO_CAPTURE, JoinSettings, surt_key
from pipeline.archive.records import RecordReader, to_fetch_result
from pipeline.http_client import Fetcher
from tests.range_server import RangeServer
from tests.test_archive_records import CFG, FILE, PAGE, build_warc
from tests.test_cc_index import CC_SCHEMA, join

WHEN = {"page": datetime(2017, 12, 1, 10, tzinfo=UTC), "pdf": datetime(2017, 12, 3, 10, tzinfo=UTC)}


def test_a_dead_link_is_read_back_from_the_capture_the_index_names(tmp_path):
    data, caps = build_warc()
    rows = [
        {
            "url_surtkey": surt_key(caps[name].url),
            "url": caps[name].url,
            "fetch_time": when,
            "fetch_status": 200,
            "content_digest": "",
            "content_mime_type": "text/html",
            "content_mime_detected": "text/html",
            "warc_filename": FILE,
            "warc_record_offset": caps[name].offset,
            "warc_record_length": caps[name].length,
        }
        for name, when in WHEN.items()
    ]
    index = tmp_path / "subset=warc"
    index.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=CC_SCHEMA), index / "part-0.parquet")
    settings = JoinSettings(index=(str(tmp_path),), spill_dir=str(tmp_path / "spill"))
    posted = int(datetime(2017, 11, 20, tzinfo=UTC).timestamp())
    urls = ["http://www.example.com/a", "http://example.com/doc", "http://example.com/gone"]
    hits = join(
        [Candidate(f"{i:032d}", u, u, "e", 3, posted, ()) for i, u in enumerate(urls)], settings
    )
    assert hits["http://example.com/gone"].outcome == NO_CAPTURE
    with RangeServer({"/" + FILE: data}) as server:
        reader = RecordReader(Fetcher(CFG), server.base_url)
        page = hits["http://www.example.com/a"]
        result = to_fetch_result(page.candidate, reader.read(page.capture), CFG)
        assert (result.outcome, result.body, result.final_url) == (
            "fetched",
            PAGE,
            caps["page"].url,
        )
        assert page.capture.timestamp == "20171201100000"
        pdf = hits["http://example.com/doc"]
        assert to_fetch_result(pdf.candidate, reader.read(pdf.capture), CFG).outcome == (
            "fetch.content_type"
        )
