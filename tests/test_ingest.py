"""The whole ingestion job on real Beam, over real HTTP from local servers."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from foundation.config import JobConfig, with_overrides
from foundation.layout import RunLayout
from foundation.shards import Manifest, read_shards
from pipeline.ingest import IngestError, run_ingest
from tests.page_server import PageServer, article_html, submission, write_dump

pytestmark = pytest.mark.slow


def _config(run_dir: Path, dump: Path, **overrides) -> JobConfig:
    base = {
        "output.run_dir": str(run_dir),
        "output.workers": 2,
        "output.unit_urls": 8,
        "output.shard_docs": 10,
        "source.dumps": (str(dump),),
        "fetch.allow_addresses": ("127.0.0.1",),
        "fetch.per_host_concurrency": 8,
        "fetch.per_host_delay_s": 0.0,
        "fetch.retries": 0,
        "quality.min_words": 100,
    }
    base.update(overrides)
    return with_overrides(JobConfig(), base)


def _documents(shards: Path) -> list[dict]:
    return read_shards(str(shards)).to_pylist()


def test_ingest_generated_pages_end_to_end(tmp_path):
    pages = {f"/a/{i}.html": article_html(i) for i in range(20)}
    pages["/copy.html"] = pages["/a/0.html"]  # syndicated copy: an exact duplicate
    with PageServer(pages) as server:
        base = server.base_url
        subs = [submission(i, f"{base}/a/{i}.html", score=3 + i) for i in range(20)]
        subs += [
            submission(100, f"{base}/a/1.html?utm_source=x#top", score=50),  # same URL, spelled
            submission(101, f"{base}/a/2.html", score=1),  # low karma, but the URL has karma
            submission(102, f"{base}/low.html", score=2),  # low karma
            submission(103, "https://en.wikipedia.org/wiki/GPT-2", score=99),
            submission(104, "https://de.m.wikipedia.org/wiki/Reddit", score=99),
            submission(105, f"{base}/self", score=99, is_self=True),
            submission(106, f"{base}/nsfw.html", score=99, over_18=True),
            submission(107, f"{base}/pic.jpg", score=99),
            submission(108, f"{base}/missing.html", score=99),  # 404
            submission(109, f"{base}/copy.html", score=4),
        ]
        dump = tmp_path / "RS_test.zst"
        write_dump(dump, subs)
        cfg = _config(tmp_path / "run", dump)
        result = run_ingest(cfg, RunLayout.at(cfg.output.run_dir), progress=False)

    shards = tmp_path / "run" / "shards"
    docs = _documents(shards)
    ids = [d["id"] for d in docs]
    assert len(ids) == len(set(ids)) == 20  # 20 articles; the copy folded into article 0
    by_url = {d["url"].rsplit("/", 1)[-1]: d for d in docs}
    assert {s["id"] for s in by_url["1.html"]["submissions"]} == {"s1", "s100"}
    assert by_url["1.html"]["karma"] == 50  # max aggregate by default
    survivor = by_url.get("0.html") or by_url["copy.html"]
    assert {s["id"] for s in survivor["submissions"]} == {"s0", "s109"}
    assert all(d["n_words"] >= 100 and d["text"] for d in docs)

    counts = result.shards.counts | result.urls.counts
    assert counts["dedup.exact"] == 1
    assert counts["shards.documents"] == 20
    assert counts["url.wikipedia"] == 2
    assert counts["submission.low_karma"] >= 1
    assert counts["submission.self"] == 1
    assert counts["submission.nsfw"] == 1
    assert any(k.startswith("fetch.") and k != "fetch.urls" for k in counts)  # the 404
    manifest = Manifest.load(str(shards))
    manifest.verify(str(shards))
    assert manifest.rows == 20 and len(manifest.files) == 2  # shard_docs=10
    as_dataset = ds.dataset(str(shards), format="parquet").to_table()  # the directory as it is
    assert sorted(as_dataset.column("id").to_pylist()) == sorted(ids)

    fetch_dir = tmp_path / "run" / "fetch"
    log_rows = [r for p in fetch_dir.glob("*.log.parquet") for r in pq.read_table(p).to_pylist()]
    assert len(log_rows) == result.urls.rows  # every URL has a recorded outcome
    assert not list(fetch_dir.glob("*.warc*"))  # checkpoints gone: fetch.record_warc is off
    assert not (fetch_dir / "spill").exists()  # the documents' spill files are removed
    report = json.loads((tmp_path / "run" / "dedup" / "report.json").read_text())
    assert report["removed"]["exact"] == 1  # the exact-dedup count reaches the dedup report

    urls_log = assert_drop_log_matches(result.urls, tmp_path / "run" / "drops" / "urls")
    pages_log = assert_drop_log_matches(result.shards, tmp_path / "run" / "drops" / "shards")
    by_id = {r["id"]: r for r in urls_log if r["id"]}
    assert by_id["s103"]["rule"] == "url.wikipedia"
    assert by_id["s103"]["url"] == "https://en.wikipedia.org/wiki/GPT-2"
    assert by_id["s100"]["rule"] == "url.duplicate"  # its URL is kept under s1
    assert by_id["s102"]["rule"] == "submission.low_karma"
    fetch = [r for r in pages_log if r["stage"] == "fetch"]
    assert [r["url"] for r in fetch] == [f"{base}/missing.html"] and fetch[0]["id"]
    (exact,) = [r for r in pages_log if r["rule"] == "dedup.exact"]
    assert exact["kept"] == survivor["id"] and exact["url"].endswith(("0.html", "copy.html"))


NOT_DROPS = {"source.submissions", "shards.documents", "fetch.urls"}


def assert_drop_log_matches(manifest: Manifest, drops: Path) -> list[dict]:
    """The drop log of a stage: one row per dropped item, rule for rule as the manifest counts
    them, in exactly the parts the manifest lists."""
    from collections import Counter

    logged = manifest.extra["drops"]
    assert sorted(p.name for p in drops.iterdir()) == sorted(logged["files"])
    rows = pq.read_table([str(drops / name) for name in logged["files"]]).to_pylist()
    counted = {
        k: v
        for k, v in manifest.counts.items()
        if k not in NOT_DROPS and not k.startswith("fetched.")  # pages per source, kept
    }
    assert Counter(r["rule"] for r in rows) == counted == logged["rows"]
    assert logged["capped"] == {} and logged["max_per_rule"] is None
    return rows


def test_ingest_corpus_pages(tmp_path, corpus):
    gold = json.loads((corpus / "pages" / "gold.json").read_text())
    entries = sorted(gold.values(), key=lambda e: e["stored_as"])[:40]
    pages = {
        f"/{i}.html": gzip.decompress((corpus / "pages" / e["stored_as"]).read_bytes())
        for i, e in enumerate(entries)
    }
    with PageServer(pages) as server:
        subs = [submission(i, f"{server.base_url}{p}") for i, p in enumerate(pages)]
        dump = tmp_path / "RS_corpus.zst"
        write_dump(dump, subs)
        cfg = _config(tmp_path / "run", dump, **{"quality.min_words": 50, "dedup.near": False})
        result = run_ingest(cfg, RunLayout.at(cfg.output.run_dir), progress=False)
    docs = _documents(tmp_path / "run" / "shards")
    assert len(docs) >= 25, result.shards.counts  # most real articles pass extraction
    assert all(d["language"] is None or len(d["language"]) == 2 for d in docs)
    assert sum(result.shards.counts.get(k, 0) for k in result.shards.counts if "fetch." in k)


def test_too_many_bad_lines_fail_with_a_clear_message(tmp_path):
    dump = tmp_path / "RS_bad.zst"
    lines = [json.dumps(submission(i, f"http://127.0.0.1:9/{i}")) for i in range(10)]
    lines += ["{not json", '{"id": "x"}', "[1, 2]"]
    import zstandard

    dump.write_bytes(zstandard.ZstdCompressor().compress(("\n".join(lines) + "\n").encode()))
    with pytest.raises(IngestError, match=r"RS_bad\.zst"):
        cfg = _config(tmp_path / "run", dump)
        run_ingest(cfg, RunLayout.at(cfg.output.run_dir), progress=False)


def _ingest_command(run_dir: Path, dump: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "webtext.cli",
        "ingest",
        str(dump),
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--output-workers",
        "1",
        "--output-unit-urls",
        "3",
        "--fetch-allow-addresses",
        "127.0.0.1",
        "--fetch-per-host-concurrency",
        "2",
        "--fetch-per-host-delay-s",
        "0",
        "--quality-min-words",
        "100",
    ]


def test_killed_job_resumes_without_refetching_or_duplicating(tmp_path):
    pages = {f"/p/{i}.html": article_html(1000 + i) for i in range(24)}
    with PageServer(pages, delay_s=0.25) as server:
        dump = tmp_path / "RS_kill.zst"
        gone = [f"{server.base_url}/gone/{i}.html" for i in range(4)]  # 404s: logged drops
        subs = [submission(i, f"{server.base_url}{p}") for i, p in enumerate(pages)]
        write_dump(dump, subs + [submission(100 + i, url) for i, url in enumerate(gone)])
        run_dir = tmp_path / "run"
        fetch_dir = run_dir / "fetch"
        proc = subprocess.Popen(
            _ingest_command(run_dir, dump),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            done = list(fetch_dir.glob("*.log.parquet")) if fetch_dir.exists() else []
            if len(done) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the job finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        finished = {p.name for p in fetch_dir.glob("*.log.parquet")}
        fetched_before = sum(server.requests.values())
        assert not (run_dir / "shards" / "_manifest.json").exists()
        done_urls = set()
        for name in finished:
            done_urls |= {r["url"] for r in pq.read_table(fetch_dir / name).to_pylist()}

        server.requests.clear()
        rerun = subprocess.run(
            _ingest_command(run_dir, dump), capture_output=True, text=True, timeout=300
        )
        assert rerun.returncode == 0, rerun.stderr[-3000:]

    refetched = {p for p in server.requests if f"{server.base_url}{p}" in done_urls}
    assert not refetched, f"finished units were fetched again: {refetched}"
    assert fetched_before > 0
    docs = _documents(run_dir / "shards")
    assert sorted(d["url"] for d in docs) == sorted(f"{server.base_url}{p}" for p in pages)
    assert not (fetch_dir / "spill").exists()  # what the killed run spilled is gone too
    shards = Manifest.load(str(run_dir / "shards"))
    logged = assert_drop_log_matches(shards, run_dir / "drops" / "shards")
    assert sorted(r["url"] for r in logged) == sorted(gone)  # each once, though run twice


def test_a_page_beside_a_slow_neighbour_is_kept(tmp_path):
    """A host that hangs on one page longer than the extraction time limit costs that page only:
    its neighbour's extraction is timed from when its child starts on it, not from the fetch."""
    pages = {"/good.html": article_html(7), "/hangs.html": article_html(8)}
    with PageServer(pages, delays={"/hangs.html": 6.0}) as server:
        dump = tmp_path / "RS_neighbour.zst"
        write_dump(dump, [submission(i, f"{server.base_url}{p}") for i, p in enumerate(pages)])
        overrides = {"extract.timeout_s": 1.0, "fetch.read_timeout_s": 3.0, "dedup.near": False}
        cfg = _config(tmp_path / "run", dump, **overrides)
        result = run_ingest(cfg, RunLayout.at(cfg.output.run_dir), progress=False)
    docs = _documents(tmp_path / "run" / "shards")
    assert [d["url"] for d in docs] == [f"{server.base_url}/good.html"], result.shards.counts
    assert result.shards.counts.get("extract.timeout", 0) == 0
    assert result.shards.counts["fetch.timeout"] == 1  # the hanging page, at the fetcher


def _dead_port() -> int:
    """A loopback port nothing listens on: every connection to it is refused."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_crawl_where_every_fetch_fails_ends_with_an_error_after_writing_its_shards(
    tmp_path, capsys
):
    from webtext.cli import main
    from webtext.run import RunError, run_job

    base = f"http://127.0.0.1:{_dead_port()}"
    dump = tmp_path / "RS_dead.zst"
    write_dump(dump, [submission(i, f"{base}/{i}.html") for i in range(5)])
    run_dir = tmp_path / "run"
    argv = [*_ingest_command(run_dir, dump)[3:], "--fetch-retries", "0"]

    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(
            "webtext ingest: 5 of 5 fetches failed (100%), more than "
            "fetch.max_failure_fraction=0.9 allows (fetch."
        )
    ), err
    assert Manifest.load(str(run_dir / "shards")).rows == 0  # committed: what it has is written
    assert re.search(r"^\s+extract\.timeout\s+0$", out, re.M), out  # every rule, zeros included
    assert re.search(r"^\s+url\.wikipedia\s+0$", out, re.M), out

    # Allowing every failure: the run (its shards kept, not refetched) still has no documents.
    assert main([*argv, "--fetch-max-failure-fraction", "1"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("webtext ingest: no documents from 5 candidate URLs (fetch."), last

    # `webtext run` on these shards stops at ingest instead of going on with nothing.
    with pytest.raises(RunError, match=r"^ingest: 5 of 5 fetches failed \(100%\)"):
        run_job(_config(run_dir, dump), until="tokenize", progress=False)
    assert not (run_dir / "contamination").exists()


def test_a_url_phase_that_finds_nothing_to_fetch_ends_with_an_error(tmp_path, capsys):
    """``--urls-only`` on a dump whose every link a rule removes: exit 1, naming the rules."""
    from webtext.cli import main

    dump = tmp_path / "RS_none.zst"
    links = [submission(i, f"https://en.wikipedia.org/wiki/P{i}") for i in range(3)]
    write_dump(dump, [*links, submission(3, "https://example.com/a", score=1)])
    run_dir = tmp_path / "run"

    assert main([*_ingest_command(run_dir, dump)[3:], "--urls-only"]) == 1
    out, err = capsys.readouterr()
    last = err.strip().splitlines()[-1]
    assert last == (
        "webtext ingest: no candidate URLs from 4 submissions "
        f"(url.wikipedia 3, submission.low_karma 1); the counts are in {run_dir / 'urls'}"
    ), err
    assert re.search(r"^\s+url\.wikipedia\s+3$", out, re.M), out
    assert Manifest.load(str(run_dir / "urls")).rows == 0  # committed: a rerun does not redo it
