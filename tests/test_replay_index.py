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

from foundation.records import Candidate, FetchResult
from foundation.shards import read_table
from pipeline.fetch import DAMAGED, PAGE_BATCH, replay_hits
from pipeline.replay_join import Hit, choose
from pipeline.warc import KEPT, WarcEntry, WarcRecorder, index_responses, read_response
from tests.hostile_server import candidate
from tests.test_fetch import LIVE, Collect, replay_warc, run_replay, write_unit

HTML = (("Content-Type", "text/html"),)
BIG = b"<html><body>" + b"<p>a long page about rivers</p>" * 5000 + b"</body></html>"


class _JoinShuffles(PipelineVisitor):
    """The input of every GroupByKey of the replay join (not the fetch log's writer, whose log
    rows are small and unchanged)."""

    def __init__(self):
        self.found: list[tuple[str, beam.PCollection]] = []

    def visit_transform(self, node) -> None:
        if isinstance(node.transform, beam.GroupByKey) and "/Join/" in node.full_label:
            self.found.append((node.full_label, node.inputs[0]))


_PER_URL = (Candidate, WarcEntry, Hit, FetchResult, bytes, dict)


def _per_url(value) -> bool:
    if isinstance(value, tuple | list):
        return any(_per_url(v) for v in value)
    return isinstance(value, _PER_URL)


def _describe(element, label: str) -> tuple[str, int, bool]:
    return label, len(pickle.dumps(element)), _per_url(element)


def test_only_file_names_and_counts_cross_the_joins_shuffles(tmp_path):
    """Neither a page nor a candidate, entry or hit crosses a shuffle: key files are joined a
    bucket at a time on the workers, and hits leave them by file and run."""
    urls = [f"http://big.example/page{i}" for i in range(40)]
    with WarcRecorder(str(tmp_path / "a.warc.gz")) as rec:
        for url in urls:
            rec.write(url, url, 200, "OK", HTML, BIG, fetch_time=1000)
    cfg = replace(LIVE, backend="warc", warc_inputs=(str(tmp_path / "a.warc.gz"),))
    unit = write_unit(str(tmp_path), 0, [candidate(u) for u in urls])
    crossed = Collect(str(tmp_path / "crossed.pkl"))
    results = Collect(str(tmp_path / "results.pkl"))
    with TestPipeline(runner="FnApiRunner") as p:
        lists = p | beam.Create([unit]) | replay_warc(cfg, str(tmp_path))
        visitor = _JoinShuffles()
        p.visit(visitor)
        described = [
            pcoll | f"Describe{i}" >> beam.Map(_describe, label)
            for i, (label, pcoll) in enumerate(visitor.found)
        ]
        assert_that(described | beam.Flatten(), crossed, label="Crossed")
        assert_that(lists | beam.FlatMap(list), results, label="Results")
    assert [(r.outcome, r.body) for r in results.load()] == [("fetched", BIG)] * len(urls)
    elements = crossed.load()
    assert len({label for label, _, _ in elements}) == 5  # units, WARCs, files, buckets, runs
    assert len(elements) < len(urls) / 4  # per file, bucket or run, not per URL
    assert not [e for e in elements if e[2] or e[1] > 1000], elements


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
        (r,) = replay_hits(list(choose(c.canonical_url, [c], order)), LIVE)
        assert (r.outcome, r.body, r.fetch_time) == ("fetched", b"<html>newest</html>", 3000)
    newest_damaged = [
        replace(e, damaged="truncated") if e.timestamp == 3000 else e for e in entries
    ]
    (r,) = replay_hits(list(choose(c.canonical_url, [c], newest_damaged)), LIVE)
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
    unit = write_unit(str(tmp_path), 0, [candidate(u) for u in urls] + [missing])
    p = TestPipeline(runner="FnApiRunner")
    lists = p | beam.Create([unit]) | replay_warc(cfg, str(tmp_path))
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


def test_buckets_units_and_index_files_do_not_change_the_choice(tmp_path):
    """Candidates in several units, each WARC's index in several files and the URLs joined in
    several buckets give the same FetchResults as one of each."""
    urls = [f"http://b.example/{i}" for i in range(12)]
    paths = [str(tmp_path / f"{n}.warc.gz") for n in "ab"]
    for n, path in enumerate(paths):
        with WarcRecorder(path) as rec:
            for i, url in enumerate(urls):  # every URL twice; which capture wins varies
                when = 1000 + (i + n) % 3
                rec.write(
                    url,
                    url,
                    200 if i % 4 else 503,
                    "",
                    HTML,
                    b"<p>%d %d</p>" % (i, n),
                    fetch_time=when,
                )
    candidates = [candidate(u) for u in urls] + [candidate("http://b.example/gone")]
    cfg = replace(LIVE, backend="warc", warc_inputs=tuple(paths))
    one = run_replay(candidates, cfg, str(tmp_path / "one"))
    small = replace(cfg, replay_bucket_urls=5)  # 13 + 24 rows: 8 buckets; index files of 5
    many = run_replay(candidates, small, str(tmp_path / "many"), units=3)
    assert sorted(many, key=repr) == sorted(one, key=repr)
    assert sum(r.ok for r in one) == 9 and len(one) == len(candidates)
    work = os.listdir(tmp_path / "many" / "work")
    kinds = [name.split("-")[0] for name in work if name.endswith(".arrow")]
    assert (kinds.count("c"), kinds.count("w"), kinds.count("h")) == (3, 6, 8)
