"""WARC replay through an index: the join carries index entries, never pages; damaged records
drop with a reason that names the file and the offset."""

from __future__ import annotations

import io
import os
import pickle
import random
from dataclasses import replace

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.pipeline import PipelineVisitor
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from foundation.shards import read_table
from pipeline.fetch import DAMAGED, PAGE_BATCH, ReplayWarc, _match
from pipeline.warc import KEPT, WarcEntry, WarcRecorder, index_responses, read_response
from tests.hostile_server import candidate
from tests.test_fetch import LIVE, Collect, run_replay

HTML = (("Content-Type", "text/html"),)
BIG = b"<html><body>" + b"<p>a long page about rivers</p>" * 5000 + b"</body></html>"


class _Outputs(PipelineVisitor):
    """The output PCollection of the transform whose label ends with ``label``."""

    def __init__(self, label: str):
        self.label, self.found = label, None

    def enter_composite_transform(self, node) -> None:
        if node.full_label.endswith(self.label):
            self.found = node.outputs[None]

    visit_transform = enter_composite_transform


class _OnlyEntries:
    """Matcher: every grouped response is a WarcEntry, small next to the page it points at."""

    def __init__(self, path: str):
        self.path = path

    def __call__(self, actual) -> None:
        sizes = []
        for _key, groups in actual:
            for entry in groups["responses"]:
                assert isinstance(entry, WarcEntry), type(entry)
                sizes.append(len(pickle.dumps(entry)))
        with open(self.path, "wb") as f:
            pickle.dump(sizes, f)


def test_join_by_url_carries_index_entries_not_pages(tmp_path):
    url = "http://big.example/page"
    with WarcRecorder(str(tmp_path / "a.warc.gz")) as rec:
        rec.write(url, url, 200, "OK", HTML, BIG, fetch_time=1000)
    cfg = replace(LIVE, backend="warc", warc_inputs=(str(tmp_path / "a.warc.gz"),))
    sizes_path = str(tmp_path / "sizes.pkl")
    collect = Collect(str(tmp_path / "results.pkl"))
    with TestPipeline(runner="FnApiRunner") as p:
        lists = p | beam.Create([candidate(url)]) | ReplayWarc(cfg, str(tmp_path / "fetch"))
        results = lists | beam.FlatMap(list)
        visitor = _Outputs("JoinByUrl")
        p.visit(visitor)
        assert_that(visitor.found, _OnlyEntries(sizes_path), label="Grouped")
        assert_that(results, collect, label="Results")
    (result,) = collect.load()
    assert (result.outcome, result.body) == ("fetched", BIG)  # read at its offset after the join
    with open(sizes_path, "rb") as f:
        (size,) = pickle.load(f)
    assert size < 1000 < len(BIG)


def test_several_captures_pick_the_whole_latest_2xx(tmp_path):
    """2xx before other statuses, then the latest; a damaged capture never shadows a whole one."""
    url = "http://dup.example/a"
    path = tmp_path / "caps.warc.gz"
    with WarcRecorder(str(path)) as rec:
        rec.write(url, url, 200, "OK", HTML, b"<html>old</html>", fetch_time=1000)
        rec.write(url, url, 200, "OK", HTML, b"<html>newest</html>", fetch_time=3000)
        rec.write(url, url, 503, "Busy", HTML, b"<html>busy</html>", fetch_time=4000)
    entries = [e for _, e in index_responses(str(path))]
    c = candidate(url)
    for order in (entries, entries[::-1]):
        (r,) = _match((c.canonical_url, {"candidates": [c], "responses": order}), LIVE)
        assert (r.outcome, r.body, r.fetch_time) == ("fetched", b"<html>newest</html>", 3000)
    newest_damaged = [
        replace(e, damaged="truncated") if e.timestamp == 3000 else e for e in entries
    ]
    (r,) = _match((c.canonical_url, {"candidates": [c], "responses": newest_damaged}), LIVE)
    assert (r.outcome, r.body) == ("fetched", b"<html>old</html>")


def _plain_warc(path, records) -> None:
    """An uncompressed WARC (records at plain offsets), as some tools write them."""
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=False)
        for uri, body in records:
            http = StatusAndHeaders("200 OK", list(HTML), protocol="HTTP/1.1")
            writer.write_record(
                writer.create_warc_record(
                    uri, "response", payload=io.BytesIO(body), http_headers=http
                )
            )


def test_damaged_records_drop_with_a_clear_reason(tmp_path):
    urls = [f"http://d.example/{i}" for i in range(3)]
    noise = [random.Random(i).randbytes(3000).hex().encode() for i in range(3)]  # incompressible
    bodies = [b"<html><p>page %d %s</p></html>" % (i, n) for i, n in enumerate(noise)]

    truncated = tmp_path / "truncated.warc.gz"
    with WarcRecorder(str(truncated), KEPT) as rec:
        for u, b in zip(urls[:2], bodies[:2], strict=True):
            rec.write(u, u, 200, "OK", HTML, b)
    second = [e for _, e in index_responses(str(truncated))][1]
    data = truncated.read_bytes()
    truncated.write_bytes(data[: second.offset + 2000])  # the second response loses its end

    garbled = tmp_path / "garbled.warc"
    _plain_warc(garbled, [(urls[2], bodies[2])])
    raw = garbled.read_bytes()
    garbled.write_bytes(raw.replace(b"page 2", b"page 9"))  # payload no longer matches its digest

    cfg = replace(LIVE, backend="warc", warc_inputs=(str(truncated), str(garbled)))
    results = {
        r.candidate.url: r
        for r in run_replay([candidate(u) for u in urls], cfg, str(tmp_path / "r"))
    }
    assert (results[urls[0]].outcome, results[urls[0]].body) == ("fetched", bodies[0])
    for url, why in ((urls[1], "truncated"), (urls[2], "WARC-Payload-Digest")):
        r = results[url]
        assert r.outcome == DAMAGED and r.body == b""
        assert why in r.error and "at offset" in r.error, r.error
        assert r.error.startswith(str(truncated if url == urls[1] else garbled))


def test_a_record_is_read_again_alone_from_every_compression(tmp_path):
    from pipeline.warc import CHECKPOINT

    for compression in (KEPT, CHECKPOINT):
        path = str(tmp_path / f"x{compression.suffix}")
        with WarcRecorder(path, compression) as rec:
            for i in range(4):
                u = f"http://z.example/{i}"
                rec.write(u, u, 200, "OK", HTML, b"<p>%d</p>" % i * (i + 1))
        for key, entry in index_responses(path):
            body = read_response(entry).body
            assert body == b"<p>%d</p>" % int(key[-1]) * (int(key[-1]) + 1)
            assert not entry.damaged
    plain = str(tmp_path / "plain.warc")
    _plain_warc(plain, [(f"http://p.example/{i}", b"<b>%d</b>" % i) for i in range(3)])
    assert [read_response(e).body for _, e in index_responses(plain)] == [
        b"<b>%d</b>" % i for i in range(3)
    ]
    assert os.path.getsize(plain) > 0


def test_replay_reads_each_record_once_and_gives_extraction_lists_of_pages(tmp_path):
    """Pages leave in lists of several (extraction works on a list in parallel), each chosen
    record is read once although the fetch log is written too, and the log has every URL."""
    n = 3 * PAGE_BATCH
    urls = [f"http://many.example/{i}" for i in range(n)]
    path = str(tmp_path / "many.warc.gz")
    with WarcRecorder(path) as rec:
        for i, url in enumerate(urls):
            rec.write(url, url, 200, "OK", HTML, b"<html><p>page %d</p></html>" % i)
    missing = candidate("http://many.example/gone")
    cfg = replace(LIVE, backend="warc", warc_inputs=(path,))
    collect = Collect(str(tmp_path / "lists.pkl"))
    p = TestPipeline(runner="FnApiRunner")
    lists = (
        p
        | beam.Create([candidate(u) for u in urls] + [missing])
        | ReplayWarc(cfg, str(tmp_path / "fetch"))
    )
    assert_that(lists, collect)
    result = p.run()
    result.wait_until_finish()
    batches = collect.load()
    assert sorted(len(b) for b in batches)[-1] > 1 and all(len(b) <= PAGE_BATCH for b in batches)
    assert len(batches) < n / 2  # lists of several pages, not one per list
    results = [r for b in batches for r in b]
    assert sorted(r.candidate.url for r in results) == sorted([*urls, missing.url])
    assert sum(r.ok for r in results) == n
    reads = result.metrics().query(MetricsFilter().with_name("records_read"))["counters"]
    assert sum(c.committed for c in reads) == n  # once each: the log comes from the same reads
    log_dir = tmp_path / "fetch" / "replay"
    logged = [row for f in os.listdir(log_dir) for row in read_table(str(log_dir / f)).to_pylist()]
    assert sorted(row["url"] for row in logged) == sorted([*urls, missing.url])
