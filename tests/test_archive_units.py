"""The archive backend inside the fetch stage: per-unit checkpoints with provenance, and a
killed run that resumes without asking the archive again for finished units (real pywb)."""

from __future__ import annotations

import os
from dataclasses import replace

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
