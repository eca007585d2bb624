"""Candidates joined to a small columnar-index fixture laid out as Common Crawl's table."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.pipeline import PipelineVisitor
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from foundation.records import Candidate
from pipeline.archive.cc_index import (
    NO_CAPTURE,
    TOO_FAR,
    IndexHit,
    IndexInputError,
    JoinColumnarIndex,
    JoinSettings,
    check_index,
    expand_index,
    join_bucket,
    row_groups,
    spill_candidates,
    spill_index,
    surt_key,
)
from pipeline.postings import n_buckets
from tests.test_fetch import Collect


class _Outputs(PipelineVisitor):
    """The output PCollection of the transform whose label ends with ``label``."""

    def __init__(self, label: str):
        self.label, self.found = label, None

    def enter_composite_transform(self, node) -> None:
        if node.full_label.endswith(self.label):
            self.found = node.outputs[None]

    visit_transform = enter_composite_transform


DAY = 86_400
T0 = int(datetime(2017, 6, 1, tzinfo=UTC).timestamp())
CC_SCHEMA = pa.schema(
    [
        ("url_surtkey", pa.string()),
        ("url", pa.string()),
        ("fetch_time", pa.timestamp("us", tz="UTC")),
        ("fetch_status", pa.int16()),
        ("content_digest", pa.string()),
        ("content_mime_type", pa.string()),
        ("content_mime_detected", pa.string()),
        ("warc_filename", pa.string()),
        ("warc_record_offset", pa.int32()),
        ("warc_record_length", pa.int32()),
    ]
)


def row(url: str, days: float, status: int = 200, offset: int = 0) -> dict:
    return {
        "url_surtkey": surt_key(url),
        "url": url,
        "fetch_time": datetime.fromtimestamp(T0 + days * DAY, UTC),
        "fetch_status": status,
        "content_digest": f"D{offset}",
        "content_mime_type": "text/html",
        "content_mime_detected": "text/html",
        "warc_filename": f"crawl-data/CC-MAIN-2017-26/w/{offset % 2}.warc.gz",
        "warc_record_offset": offset,
        "warc_record_length": 1000 + offset,
    }


WARC_ROWS = [
    row("http://near.example/a", -10, offset=1),
    row("http://near.example/a", 3, offset=2),  # the nearest
    row("http://near.example/a", 30, offset=3),
    row("http://far.example/b", 400, offset=4),  # past a 365-day skew
    row("http://status.example/c", 1, status=404, offset=5),
    row("http://status.example/c", -2, status=301, offset=6),
    row("http://status.example/c", 20, offset=7),  # the nearest 200
    row("http://redir.example/d", 0, status=301, offset=8),
    row("https://example.com/e?a=1&b=2", 5, offset=9),
    row("http://tie.example/t", -4, offset=10),  # as near as the next, and earlier
    row("http://tie.example/t", 4, offset=11),
    row("http://asof.example/f", 0, offset=12),
    row("http://asof.example/f", 200, offset=13),
]


def cand(url: str, days: float = 0) -> Candidate:
    doc_id = f"{abs(hash(url)) % 10**32:032d}"
    return Candidate(doc_id, url, url, "d", 3, T0 + int(days * DAY), ())


@pytest.fixture
def index(tmp_path) -> str:
    root = tmp_path / "table" / "crawl=CC-MAIN-2017-26"
    (root / "subset=warc").mkdir(parents=True)
    (root / "subset=crawldiagnostics").mkdir()
    table = pa.Table.from_pylist(WARC_ROWS, schema=CC_SCHEMA)
    half = len(WARC_ROWS) // 2
    pq.write_table(table.slice(0, half), root / "subset=warc" / "part-0.parquet", row_group_size=2)
    pq.write_table(table.slice(half), root / "subset=warc" / "part-1.parquet", row_group_size=3)
    diag = pa.Table.from_pylist([row("http://none.example/g", 0, offset=99)], schema=CC_SCHEMA)
    pq.write_table(diag, root / "subset=crawldiagnostics" / "part-0.parquet")
    return str(tmp_path / "table")


def join(candidates: list[Candidate], settings: JoinSettings) -> dict[str, IndexHit]:
    """The join's steps in this process, as JoinColumnarIndex wires them (fast: no runner)."""
    buckets = n_buckets(len(candidates), settings.bucket_candidates)
    refs = defaultdict(list)
    for i in range(0, len(candidates), settings.batch_rows):
        for b, ref in spill_candidates(candidates[i : i + settings.batch_rows], settings, buckets):
            refs[b].append(("c", ref))
    for spec in settings.index:
        for path in expand_index(spec):
            for task in row_groups(path):
                for b, ref in spill_index(task, settings, buckets):
                    refs[b].append(("i", ref))
    hits = [h for item in refs.items() for h in join_bucket(item, settings)]
    assert sorted(h.candidate.url for h in hits) == sorted(c.url for c in candidates)
    return {h.candidate.url: h for h in hits}


def settings(index: str, tmp_path, **kw) -> JoinSettings:
    base = JoinSettings(
        index=(index,),
        spill_dir=str(tmp_path / "spill"),
        max_skew_days=365,
        bucket_candidates=2,  # several buckets even for a few candidates
        batch_rows=2,
    )
    return replace(base, **kw)


def test_each_candidate_gets_its_nearest_200_capture_within_the_skew(index, tmp_path):
    urls = [
        "http://near.example/a",
        "http://far.example/b",
        "http://status.example/c",
        "http://redir.example/d",
        "http://www.Example.com/e?b=2&a=1",  # spelled otherwise, the same SURT key
        "http://tie.example/t",
        "http://none.example/g",  # only in the crawl-diagnostics subset
        "not a url",
    ]
    hits = join([cand(u) for u in urls], settings(index, tmp_path))
    offsets = {u: h.capture.offset if h.capture else h.outcome for u, h in hits.items()}
    assert offsets == {
        "http://near.example/a": 2,
        "http://far.example/b": TOO_FAR,
        "http://status.example/c": 7,
        "http://redir.example/d": NO_CAPTURE,
        "http://www.Example.com/e?b=2&a=1": 9,
        "http://tie.example/t": 10,
        "http://none.example/g": NO_CAPTURE,
        "not a url": NO_CAPTURE,
    }
    near = hits["http://near.example/a"].capture
    assert (near.url, near.timestamp, near.status) == (
        "http://near.example/a",
        "20170604000000",
        200,
    )
    assert (near.filename, near.length, near.mime, near.digest, near.source) == (
        "crawl-data/CC-MAIN-2017-26/w/0.warc.gz",
        1002,
        "text/html",
        "D2",
        "commoncrawl",
    )
    assert hits["http://www.Example.com/e?b=2&a=1"].capture.url == "https://example.com/e?a=1&b=2"


def test_a_wider_skew_reaches_further(index, tmp_path):
    hits = join([cand("http://far.example/b")], settings(index, tmp_path, max_skew_days=401))
    assert hits["http://far.example/b"].capture.offset == 4


def test_a_fixed_as_of_replaces_the_submission_time(index, tmp_path):
    c = cand("http://asof.example/f", days=-300)
    assert join([c], settings(index, tmp_path))[c.url].capture.offset == 12
    fixed = settings(index, tmp_path, as_of=T0 + 190 * DAY)
    assert join([c], fixed)[c.url].capture.offset == 13


def test_candidates_sharing_a_key_each_get_their_own_nearest(index, tmp_path):
    early, late = cand("http://near.example/a", -9), cand("http://near.example/a#x", 40)
    hits = join([early, late], settings(index, tmp_path))
    assert hits[early.url].capture.offset == 1
    assert hits[late.url].capture.offset == 3


def test_the_transform_gives_the_same_whatever_the_bucket_and_batch_sizes(index, tmp_path):
    cs = [cand(f"{r['url']}#{i}", i * 7 - 40) for i, r in enumerate(WARC_ROWS)]
    cs.append(cand("http://none.example/g"))
    small = join(cs, settings(index, tmp_path))
    big = settings(index, tmp_path, spill_dir=str(tmp_path / "beam"), bucket_candidates=1000)
    collect = Collect(str(tmp_path / "hits.pkl"))
    grouped = Collect(str(tmp_path / "grouped.pkl"))
    with TestPipeline(runner="FnApiRunner") as p:
        assert_that(p | beam.Create(cs) | JoinColumnarIndex(big, len(cs)), collect, label="Hits")
        visitor = _Outputs("ByBucket")
        p.visit(visitor)
        assert_that(visitor.found, grouped, label="Grouped")
    assert {h.candidate.url: h for h in collect.load()} == small
    # What the GroupByKey holds (in the driver, on the local runner): file references only.
    refs = [ref for _, refs in grouped.load() for ref in refs]
    assert {side for side, _ in refs} == {"c", "i"}
    assert all(isinstance(path, str) and isinstance(i, int) for _, (path, i) in refs)
    assert sum(h.capture is not None for h in small.values()) == 11


def test_bad_index_inputs_stop_before_the_job(index, tmp_path):
    with pytest.raises(IndexInputError, match="no Parquet file"):
        check_index(settings(str(tmp_path / "nowhere"), tmp_path))
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"url": ["http://x/"]}), bad)
    with pytest.raises(IndexInputError, match="url_surtkey"):
        check_index(settings(str(bad), tmp_path))
    check_index(settings(index, tmp_path))
