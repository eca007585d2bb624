"""The fetch stage on Beam: per-unit checkpoints, resume without refetching, WARC replay."""

from __future__ import annotations

import os
import pickle
from dataclasses import replace
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from foundation.records import Candidate, FetchResult, candidate_to_row
from foundation.shards import URL_SCHEMA, read_table, write_table
from pipeline.fetch import FetchUnits, ReplayWarc, discard_unit_warcs, replay_hits, unit_files
from pipeline.replay_join import choose
from pipeline.warc import CHECKPOINT, WarcRecorder, index_responses, iter_responses
from tests.hostile_server import PAGE, candidate
from tests.test_fetch_client import CFG

LIVE = replace(CFG, per_host_delay_s=0.0)


def write_unit(run: str, index: int, candidates: list[Candidate]) -> str:
    path = os.path.join(run, "urls", f"part-{index:05d}.parquet")
    rows = [candidate_to_row(c) for c in candidates]
    write_table(pa.Table.from_pylist(rows, schema=URL_SCHEMA), path, "parquet")
    return path


class Collect:
    """An assert_that matcher that hands the PCollection back through a pickle file (the
    matcher itself is pickled, so it cannot fill a list of the test's)."""

    def __init__(self, path: str):
        self.path = path

    def __call__(self, actual) -> None:
        with open(self.path, "wb") as f:
            pickle.dump(list(actual), f)

    def load(self) -> list:
        with open(self.path, "rb") as f:
            return pickle.load(f)


def run_fetch(units: list[str], run: str, cfg=LIVE) -> list[FetchResult]:
    collect = Collect(f"{run}.results.pkl")
    with TestPipeline(runner="FnApiRunner") as p:
        batches = p | beam.Create(units) | FetchUnits(cfg, os.path.join(run, "fetch"))
        assert_that(batches | beam.FlatMap(list), collect)
    return collect.load()


def log_rows(path: str) -> list[dict]:
    return read_table(path).to_pylist()


@pytest.fixture
def units(hostile, tmp_path):
    run = str(tmp_path / "run")
    a = [
        candidate(hostile.url(p)) for p in ("/page?u=a1", "/latin1?u=a2", "/404?u=a3", "/png?u=a4")
    ]
    b = [candidate(hostile.url(p)) for p in ("/page?u=b1", "/to?u=/cp1252", "/private/page?u=b3")]
    return run, [write_unit(run, 0, a), write_unit(run, 1, b)], a + b


def test_fetch_units_write_warc_and_log_per_unit(hostile, units):
    run, paths, candidates = units
    results = run_fetch(paths, run)
    outcome = {r.candidate.url: r.outcome for r in results}
    assert len(results) == len(candidates) == len(outcome)
    assert [outcome[c.url] for c in candidates] == [
        "fetched", "fetched", "fetch.http_404", "fetch.content_type",
        "fetched", "fetched", "fetch.robots",
    ]  # fmt: skip
    for unit, members in zip(paths, (candidates[:4], candidates[4:]), strict=True):
        warc, log = unit_files(os.path.join(run, "fetch"), unit)
        rows = log_rows(log)
        assert sorted(r["doc_id"] for r in rows) == sorted(c.doc_id for c in members)
        fetched = {r["doc_id"] for r in rows if r["outcome"] == "fetched"}
        assert {r.doc_id for r in iter_responses(warc)} == fetched
        for r in rows:  # time waiting for a host slot is apart from time fetching
            assert r["queued_s"] >= 0 and r["queued_s"] + r["fetching_s"] <= r["elapsed"]
            assert r["fetching_s"] > 0 or r["outcome"] == "fetch.robots"
    redirected = next(r for r in results if r.candidate.url.endswith("/to?u=/cp1252"))
    assert redirected.final_url == hostile.url("/cp1252")
    log = unit_files(os.path.join(run, "fetch"), paths[1])[1]
    row = next(r for r in log_rows(log) if "cp1252" in r["url"])
    assert (row["final_url"], row["encoding"], row["status"]) == (
        hostile.url("/cp1252"),
        "cp1252",
        200,
    )
    assert next(r for r in results if r.candidate.url.endswith("u=a1")).body == PAGE
    assert discard_unit_warcs(os.path.join(run, "fetch")) == 2
    assert not any(".warc" in n for n in os.listdir(os.path.join(run, "fetch")))


def test_recorded_warcs_are_gzipped_for_any_reader(hostile, units):
    """With ``record_warc`` the unit WARCs are the user's: gzip, named ``.warc.gz``."""
    run, paths, _ = units
    run_fetch(paths, run, replace(LIVE, record_warc=True))
    for unit in paths:
        warc, log = unit_files(os.path.join(run, "fetch"), unit, record_warc=True)
        assert warc.endswith(".warc.gz") and Path(warc).read_bytes()[:2] == b"\x1f\x8b"
        fetched = {r["doc_id"] for r in log_rows(log) if r["outcome"] == "fetched"}
        assert {r.doc_id for r in iter_responses(warc)} == fetched
    assert not any(n.endswith(".warc.zst") for n in os.listdir(os.path.join(run, "fetch")))


def test_complete_units_are_replayed_not_refetched(hostile, units):
    run, paths, _ = units
    first = run_fetch(paths[:1], run)
    page_requests = hostile.count("/page")
    # unit 1 was killed after writing its WARC but before its log: it must be fetched again
    warc_b, log_b = unit_files(os.path.join(run, "fetch"), paths[1])
    WarcRecorder(warc_b, CHECKPOINT).close()
    both = run_fetch(paths, run)
    assert hostile.count("/page") == page_requests + 1  # b1 only; a1 came from the checkpoint
    assert {r for r in both if r.candidate in {f.candidate for f in first}} == set(first)
    assert os.path.exists(log_b) and len(log_rows(log_b)) == 3
    again = run_fetch(paths, run)
    assert hostile.count("/page") == page_requests + 1
    assert set(again) == set(both)
    # a log without its WARC is not a usable checkpoint: that unit is fetched again
    os.remove(unit_files(os.path.join(run, "fetch"), paths[0])[0])
    assert set(run_fetch(paths, run)) - set(both)  # new fetch times for unit 0
    assert hostile.count("/page") == page_requests + 2
    assert os.path.exists(unit_files(os.path.join(run, "fetch"), paths[0])[0])


def replay_warc(cfg, run: str) -> ReplayWarc:
    return ReplayWarc(cfg, os.path.join(run, "fetch"), os.path.join(run, "work"))


def run_replay(candidates: list[Candidate], cfg, run: str, units: int = 1) -> list[FetchResult]:
    """Replay ``candidates``, written to ``units`` unit files, as the ingest does."""
    paths = [write_unit(run, i, candidates[i::units]) for i in range(units)]
    collect = Collect(f"{run}.results.pkl")
    with TestPipeline(runner="FnApiRunner") as p:
        lists = p | beam.Create(paths) | replay_warc(cfg, run)
        results = lists | beam.FlatMap(list)
        assert_that(results, collect)
    return collect.load()


def test_replay_from_recorded_warcs_equals_live(hostile, units, tmp_path):
    run, paths, candidates = units
    live = run_fetch(paths, run)
    missing = candidate("http://not.recorded.example/x")
    cfg = replace(LIVE, backend="warc", warc_inputs=(os.path.join(run, "fetch", "*.warc.zst"),))
    replay_run = str(tmp_path / "replay")
    replayed = run_replay([*candidates, missing], cfg, replay_run)
    by_id = {r.candidate.doc_id: r for r in replayed}
    assert len(replayed) == len(candidates) + 1
    assert by_id[missing.doc_id].outcome == "fetch.not_in_warc"
    for r in live:
        if r.ok:  # same body, charset, type, status and final URL (redirects included)
            replayed = by_id[r.candidate.doc_id]
            assert replayed.source == "warc" and ".warc.zst@" in replayed.record  # file@offset
            assert replace(replayed, source="live", record="") == r
        else:  # failures were not recorded
            assert by_id[r.candidate.doc_id].outcome == "fetch.not_in_warc"
    log_dir = os.path.join(replay_run, "fetch", "replay")
    rows = [row for name in os.listdir(log_dir) for row in log_rows(os.path.join(log_dir, name))]
    assert sorted(r["doc_id"] for r in rows) == sorted(by_id)


def test_replay_picks_the_same_duplicate_whatever_the_file_order(tmp_path):
    url = "http://dup.example/a"
    for name, body, when in (("1", b"<html>old</html>", 1000), ("2", b"<html>new</html>", 2000)):
        with WarcRecorder(str(tmp_path / f"{name}.warc.gz")) as rec:
            headers = (("Content-Type", "text/html"),)
            rec.write(url, url, 200, "OK", headers, body, fetch_time=when)
            rec.write(url, url, 503, "Busy", headers, b"<html>busy</html>", fetch_time=when + 5)
    c = candidate(url)
    records = [e for n in "12" for _, e in index_responses(str(tmp_path / f"{n}.warc.gz"))]
    for order in (records, records[::-1], records[1:] + records[:1]):
        (r,) = replay_hits(list(choose(c.canonical_url, [c], order)), LIVE)
        assert (r.outcome, r.body, r.fetch_time) == ("fetched", b"<html>new</html>", 2000)
    cfg = replace(LIVE, backend="warc", warc_inputs=(str(tmp_path),))  # a directory input
    assert run_replay([c], cfg, str(tmp_path / "r")) == [r]
