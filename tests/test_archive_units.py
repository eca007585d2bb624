"""The archive backend inside the fetch stage: per-unit checkpoints with provenance, and a
killed run that resumes without asking the archive again for finished units (real pywb)."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from foundation.config import ArchiveConfig
from foundation.records import FetchResult
from foundation.shards import read_table
from pipeline.archive.cdx import unix_time
from pipeline.fetch import FetchUnits, unit_files
from tests.archive_world import ARTICLES, NEWS, SUBMITTED
from tests.hostile_server import candidate
from tests.page_server import article_html
from tests.test_archive import ARCHIVE, FETCH
from tests.test_fetch import Collect, write_unit

ARCHIVED = replace(FETCH, backend="archive")


def run_units(units: list[str], run: str, archive: ArchiveConfig) -> list[FetchResult]:
    collect = Collect(f"{run}.results.{len(os.listdir(os.path.dirname(run)))}.pkl")
    with TestPipeline(runner="FnApiRunner") as p:
        batches = p | beam.Create(units) | FetchUnits(ARCHIVED, os.path.join(run, "fetch"), archive)
        assert_that(batches | beam.FlatMap(list), collect)
    return sorted(collect.load(), key=lambda r: r.candidate.doc_id)


def lookups(run: str) -> int:
    return sum(len(files) for _, _, files in os.walk(os.path.join(run, "fetch", "lookups")))


def test_a_killed_archive_run_resumes_without_asking_again_for_finished_units(
    archive_world, tmp_path
):
    run = str(tmp_path / "run")
    a = [replace(candidate(f"{NEWS}/{p}"), created_utc=SUBMITTED) for p in ("story", "gone")]
    b = [replace(candidate(f"{NEWS}/{p}"), created_utc=SUBMITTED) for p in ("rev", "moved")]
    units = [write_unit(run, 0, a), write_unit(run, 1, b)]
    archive = ArchiveConfig(sources=(archive_world.source,), **ARCHIVE)
    first = run_units(units, run, archive)
    by_url = {r.candidate.url: r for r in first}
    story = by_url[f"{NEWS}/story"]
    assert (story.outcome, story.source) == ("fetched", "local")
    assert story.body == article_html(ARTICLES["/story", 2017])
    assert by_url[f"{NEWS}/gone"].outcome == "archive.no_capture"
    assert by_url[f"{NEWS}/moved"].final_url == f"{NEWS}/landing?a=1&b=2"
    log0 = read_table(unit_files(os.path.join(run, "fetch"), units[0])[1]).to_pylist()
    row = next(r for r in log0 if r["url"] == f"{NEWS}/story")
    assert (row["source"], row["record"]) == ("local", story.record)

    # Killed while unit 1 was in flight: its log (which marks it complete) was never written.
    # Without the lookup cache, every lookup the rerun makes is a query to the archive.
    os.remove(unit_files(os.path.join(run, "fetch"), units[1])[1])
    for root, _, files in os.walk(os.path.join(run, "fetch", "lookups")):
        for name in files:
            os.remove(os.path.join(root, name))
    again = run_units(units, run, archive)
    assert again == first  # provenance included, replayed from unit 0's checkpoint
    assert lookups(run) == 3  # unit 1 only: /rev, /moved and its redirect's target


@pytest.mark.slow  # two Beam pipelines in worker processes
def test_ingest_recovers_dead_links_from_the_archive_with_provenance(archive_world, tmp_path):
    from foundation.config import JobConfig, with_overrides
    from foundation.layout import RunLayout
    from foundation.shards import read_shards
    from pipeline.ingest import run_ingest
    from tests.page_server import submission, write_dump
    from webtext.status import format_status, run_status

    live = archive_world.live.base_url
    urls = [f"{live}/alive", f"{live}/gone-live", f"{NEWS}/story", f"{NEWS}/gone"]
    dump = tmp_path / "RS_test.zst"
    write_dump(dump, [submission(i, u, created_utc=SUBMITTED) for i, u in enumerate(urls)])
    run = tmp_path / "run"
    cfg = with_overrides(
        JobConfig(),
        {
            "output.run_dir": str(run),
            "output.workers": 1,
            "source.dumps": (str(dump),),
            "fetch.backend": "live+archive",
            "fetch.allow_addresses": ("127.0.0.1",),
            "fetch.per_host_delay_s": 0.0,
            "fetch.retries": 0,
            "archive.sources": (archive_world.source,),
            **{f"archive.{k}": v for k, v in ARCHIVE.items()},
            "quality.min_words": 100,
        },
    )
    result = run_ingest(cfg, RunLayout.at(str(run)), progress=False)
    docs = {d["url"]: d for d in read_shards(str(run / "shards")).to_pylist()}
    assert sorted(docs) == sorted(urls[:3])  # news.example has no DNS: dead, then archived
    assert (docs[urls[0]]["source"], docs[urls[0]]["record"]) == ("live", "")
    for url in urls[1:3]:
        assert docs[url]["source"] == "local"
        assert docs[url]["record"].startswith(archive_world.source.split("=", 1)[1][:-4])
    assert docs[urls[2]]["fetch_time"] == unix_time("20170601000000")
    counts = result.shards.counts
    assert (counts["fetched.live"], counts["fetched.local"]) == (1, 2)
    assert counts["archive.no_capture"] == 1
    assert "pages: live 1, local 2" in format_status(str(run), run_status(str(run)))


def columnar_index(world, urls: list[str], path) -> str:
    """A Parquet index laid out as Common Crawl's columnar table, of what pywb lists for
    ``urls``: the same captures, files, offsets and lengths as its CDX server gives."""
    import json
    import urllib.parse
    import urllib.request

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.archive.cc_index import surt_key
    from tests.test_cc_index import CC_SCHEMA

    rows = []
    for url in urls:
        query = urllib.parse.urlencode({"url": url, "output": "json"}, quote_via=urllib.parse.quote)
        with urllib.request.urlopen(f"{world.pywb.cdx_url('arch')}?{query}", timeout=10) as r:
            lines = [json.loads(line) for line in r.read().splitlines() if line.strip()]
        for c in lines:
            rows.append(
                {
                    "url_surtkey": surt_key(c["url"]),
                    "url": c["url"],
                    "fetch_time": datetime.strptime(c["timestamp"], "%Y%m%d%H%M%S").replace(
                        tzinfo=UTC
                    ),
                    "fetch_status": int(c["status"]) if c.get("status", "-").isdigit() else 0,
                    "content_digest": c.get("digest", ""),
                    "content_mime_type": c.get("mime", ""),
                    "content_mime_detected": c.get("mime", ""),
                    "warc_filename": c["filename"],
                    "warc_record_offset": int(c["offset"]),
                    "warc_record_length": int(c["length"]),
                }
            )
    folder = path / "subset=warc"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=CC_SCHEMA), folder / "part-0.parquet")
    return str(path)


def test_the_columnar_route_finds_each_units_captures_in_one_join(archive_world, tmp_path):
    """Candidates joined to a columnar index once, per unit, then read by byte range without a
    CDX query; the join's spill is removed, and a rerun does not join again."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.archive.captures import captures_dir, find_captures, join_settings
    from pipeline.archive.cc_index import IndexInputError
    from pipeline.archive.fetcher import check_sources

    run = str(tmp_path / "run")
    paths = ("story", "flaky", "gone", "pdf", "never-archived")
    cands = [replace(candidate(f"{NEWS}/{p}"), created_utc=SUBMITTED) for p in paths]
    units = [write_unit(run, 0, cands[:3]), write_unit(run, 1, cands[3:])]
    index = columnar_index(archive_world, [c.url for c in cands], tmp_path / "table")
    archive = ArchiveConfig(sources=(archive_world.cc_source,), columnar_index=index, **ARCHIVE)
    fetch_dir = os.path.join(run, "fetch")
    options = PipelineOptions(["--runner=FnApiRunner"])
    assert find_captures(archive, fetch_dir, units, options) == 2
    assert sorted(os.listdir(captures_dir(fetch_dir))) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    assert find_captures(archive, fetch_dir, units, options) == 0  # a rerun keeps them
    assert not os.path.exists(join_settings(archive, fetch_dir).spill_dir)
    with pytest.raises(IndexInputError, match="no Parquet file"):
        check_sources(ARCHIVED, replace(archive, columnar_index=str(tmp_path / "none")), fetch_dir)

    got = {r.candidate.url.rsplit("/", 1)[1]: r for r in run_units(units, run, archive)}
    assert (got["story"].outcome, got["story"].source) == ("fetched", "cc")
    assert got["story"].body == article_html(ARTICLES["/story", 2017])
    assert got["story"].record.startswith(f"{archive_world.data.base_url}/news.warc.gz@")
    assert got["story"].fetch_time == unix_time("20170601000000")
    assert got["flaky"].body == article_html(ARTICLES["/flaky", 2016])  # the nearest 200
    for missing in ("gone", "never-archived"):
        assert got[missing].outcome == "archive.no_capture"
        assert "columnar index" in got[missing].error
    assert got["pdf"].outcome == "fetch.content_type"
    assert lookups(run) == 0  # no CDX query was needed
