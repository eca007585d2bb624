"""The URL phase at scale: dumps split into chunks, postings spilled to buckets, units from spill.

What a user relies on: the same candidates, unit files and drop counts as folding every
posting in memory; bad lines keep their file and line number when parsed in chunks; the spill
files are used and removed; a killed run resumes to the same output.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import zstandard

from foundation.config import FilterConfig, JobConfig, with_overrides
from foundation.layout import RunLayout
from foundation.records import Candidate, Drop, Submission, candidate_to_row
from foundation.shards import Manifest
from foundation.write import shard_of
from pipeline import sources
from pipeline.candidates import fold
from pipeline.ingest import run_urls, spill_dir
from pipeline.postings import BUCKETS, bad_example, read_postings
from pipeline.sources import chunk_items, read_dump, split_dump
from pipeline.submissions import prepare
from pipeline.url_filters import UrlRules
from tests.page_server import submission


def _lines(n: int) -> list[str]:
    """Reposts under other spellings, self posts, media, Wikipedia, low karma, bad lines."""
    lines = []
    for i in range(n):
        page = i % (n // 3 or 1)
        url = [
            f"http://Site{page % 7}.com/story/{page}/",
            f"http://www.site{page % 7}.com/story/{page}?utm_source=x",
            f"https://en.wikipedia.org/wiki/{i}",
            f"https://i.imgur.com/{i}.jpg",
        ][i % 4 if i % 5 else 0]
        sub = submission(i, url, score=(i * 7) % 6, is_self=i % 11 == 0, over_18=i % 13 == 0)
        lines.append(json.dumps(sub))
        if i % 197 == 5:
            lines.append("{not json")
        if i % 89 == 3:
            lines.append("")
    return lines


def _dump(path: Path, lines: list[str]) -> Path:
    path.write_bytes(zstandard.ZstdCompressor().compress(("\n".join(lines) + "\n").encode()))
    return path


def _via_chunks(path: str, directory: Path, chunk_bytes: int, parts: int = 1) -> list:
    """The items of every reader's chunks, in chunk order (the truncation drop last)."""
    chunks, drops = [], []
    for part in range(parts):
        for chunk in split_dump(path, str(directory), chunk_bytes, part, parts):
            (drops if isinstance(chunk, Drop) else chunks).append(chunk)
    chunks.sort(key=lambda c: c.first_line)
    assert len({c.path for c in chunks}) == len(chunks)  # each chunk from one reader
    return [item for c in chunks for item in chunk_items(c)] + drops


@pytest.mark.parametrize(("chunk_bytes", "parts"), [(1, 1), (700, 1), (1 << 20, 1), (700, 3)])
def test_chunks_give_every_line_with_its_number(tmp_path, chunk_bytes, parts, monkeypatch):
    monkeypatch.setattr(sources, "MAX_LINE_BYTES", 400)
    lines = _lines(300)
    lines[40] = "x" * 5000  # over MAX_LINE_BYTES
    dump = str(_dump(tmp_path / "RS_x.zst", lines))
    whole = list(read_dump(dump))
    chunked = _via_chunks(dump, tmp_path / "chunks", chunk_bytes, parts)
    assert chunked == whole
    bad = [d for d in chunked if isinstance(d, Drop)]
    assert {d.reason for d in bad} == {"source.bad_json", "source.line_too_long"}
    assert f"{dump}:41" in {d.where for d in bad}
    for d in bad:  # each names the very line that is bad
        number = int(d.where.rsplit(":", 1)[1])
        assert lines[number - 1] == "x" * 5000 or lines[number - 1] == "{not json"


def test_a_broken_stream_keeps_its_lines_and_says_where(tmp_path):
    dump = _dump(tmp_path / "RS_cut.zst", _lines(3000))
    raw = dump.read_bytes()
    cut = tmp_path / "RS_cut2.zst"
    cut.write_bytes(raw[: len(raw) // 2])
    whole = list(read_dump(str(cut)))
    chunked = _via_chunks(str(cut), tmp_path / "chunks", 4096)
    assert chunked == whole
    assert chunked[-1].reason == "source.truncated"
    assert _via_chunks(str(cut), tmp_path / "readers", 4096, parts=2) == whole


def _expected(dump: Path, cfg: FilterConfig, per_unit: int) -> tuple[dict, Counter]:
    """Units and counts the in-memory way: every posting grouped in one dict, then folded."""
    rules, counts, by_url = UrlRules.from_config(cfg), Counter(), {}
    for item in read_dump(str(dump)):
        if isinstance(item, Drop):
            counts[item.reason] += 1
            continue
        counts["source.submissions"] += 1
        out = prepare(item, rules, cfg)
        if isinstance(out, Drop):
            counts[out.reason] += 1
        else:
            by_url.setdefault(out[0], []).append(out[1])
    rows = []
    for canonical, postings in by_url.items():
        for out in fold(canonical, postings, cfg):
            if isinstance(out, Candidate):
                rows.append(candidate_to_row(out))
            else:
                counts[out.reason] += 1
    n = max(1, -(-len(rows) // per_unit))
    units: dict[str, list] = {}
    for row in sorted(rows, key=lambda r: r["doc_id"]):
        units.setdefault(f"part-{shard_of(row['doc_id'], n):05d}.parquet", []).append(row)
    return units, counts


def _config(tmp_path: Path, dump: Path, **more) -> JobConfig:
    return with_overrides(
        JobConfig(),
        {
            "output.run_dir": str(tmp_path / "run"),
            "output.workers": 2,
            "output.unit_urls": 40,
            "source.dumps": (str(dump),),
            "source.chunk_mb": 1,
            "filter.bucket_postings": 500,  # several buckets
            **more,
        },
    )


def test_url_phase_matches_the_in_memory_fold_through_its_spill(tmp_path):
    """Built and run without the phase's cleanup, the spill shows what crossed the shuffle:
    file names, not postings; the units, counts and examples are the in-memory fold's."""
    import apache_beam as beam

    from foundation.beam import beam_options
    from pipeline.ingest import build_urls_pipeline

    lines = _lines(9000)  # about 2 MB: two chunks
    dump = _dump(tmp_path / "RS_big.zst", lines)
    cfg = _config(tmp_path, dump, **{"filter.karma_aggregate": "sum"})
    urls = str(tmp_path / "run" / "urls")
    with beam.Pipeline(options=beam_options(cfg.output)) as p:
        build_urls_pipeline(p, cfg, urls)
    spill = Path(spill_dir(urls))
    assert len(list((spill / "chunks").glob("*.ndjson"))) == 2
    assert len(list((spill / "postings").glob("*.postings"))) == 2  # one per chunk
    kept = sum(len(list(read_postings(str(f), 0, BUCKETS))) for f in (spill / "postings").iterdir())
    folds = sorted(p.name for p in (spill / "candidates").glob("*.by-unit.arrow"))
    assert folds == [f"{f:04d}.by-unit.arrow" for f in range(-(-kept // 500))]  # postings / 500

    manifest = Manifest.load(urls)
    units, counts = _expected(dump, cfg.filter, cfg.output.unit_urls)
    assert manifest.counts == dict(counts)
    bad = [bad_example(d) for d in read_dump(str(dump)) if isinstance(d, Drop)]
    assert manifest.extra["bad_examples"] == sorted(bad)[:20]
    assert sorted(f.path for f in manifest.files) == sorted(units)
    for name, rows in units.items():
        assert pq.read_table(Path(urls) / name).to_pylist() == rows
    manifest.verify(urls)
    assert len(counts) > 6 and counts["submission.repeated"] == 0 < counts["url.duplicate"]


def _urls_command(run_dir: Path, dump: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "webtext.cli",
        "ingest",
        str(dump),
        "--run-dir",
        str(run_dir),
        "--urls-only",
        "--no-progress",
        "--output-workers",
        "2",
        "--output-unit-urls",
        "40",
        "--source-chunk-mb",
        "1",
        "--filter-bucket-postings",
        "2000",
    ]


@pytest.mark.slow
def test_killed_url_phase_resumes_to_the_same_output(tmp_path):
    """Killed while it spills, rerun: the same units and counts, and no spill left."""
    dump = _dump(tmp_path / "RS_kill.zst", _lines(12000))
    run_dir = tmp_path / "run"
    spill = Path(spill_dir(str(run_dir / "urls")))
    proc = subprocess.Popen(
        _urls_command(run_dir, dump),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (spill / "postings").exists():
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the job finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert spill.exists() and not (run_dir / "urls" / "_manifest.json").exists()

    rerun = subprocess.run(
        _urls_command(run_dir, dump), capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "candidate URLs" in rerun.stdout
    assert not spill.exists()
    cfg = _config(tmp_path, dump, **{"filter.bucket_postings": 2000})
    units, counts = _expected(dump, cfg.filter, 40)
    manifest = Manifest.load(str(run_dir / "urls"))
    assert manifest.counts == dict(counts)
    assert sorted(f.path for f in manifest.files) == sorted(units)
    manifest.verify(str(run_dir / "urls"))


def test_submissions_of_a_live_source_go_through_the_same_buckets(tmp_path):
    from foundation.droplog import DropLog, read_drops
    from pipeline.postings import fold_buckets, plan_folds, spill_postings

    cfg = FilterConfig(bucket_postings=4)
    log = DropLog(str(tmp_path / "drops"))
    subs = [Submission(f"s{i}", "news", f"http://e.com/{i % 3}", 5, 100 + i) for i in range(9)]
    rules = UrlRules.from_config(cfg)
    out = list(spill_postings("api", subs, rules, cfg, str(tmp_path), log))
    files = [v for tag, v in out if tag == "postings"]
    assert files == [(str(tmp_path / "api.postings"), 9)]
    assert ("count", ("source.submissions", 9)) in out
    folds = list(plan_folds(files, cfg.bucket_postings))  # 9 postings, 4 a fold: 3 folds
    assert [f for f, _ in folds] == [0, 1, 2] and folds[-1][1][1] == BUCKETS
    assert all(a[1][1] == b[1][0] for a, b in itertools.pairwise(folds))
    folded = [x for f, b in folds for x in fold_buckets(f, b, cfg, str(tmp_path / "c"), log)]
    assert sum(v[1] for tag, v in folded if tag == "candidates") == 3
    assert sum(v[1] for tag, v in folded if tag == "count" and v[0] == "url.duplicate") == 6
    logged = read_drops(log.directory).to_pylist()  # each duplicate posting, by its id
    assert sorted(r["id"] for r in logged) == ["s3", "s4", "s5", "s6", "s7", "s8"]
    assert {r["rule"] for r in logged} == {"url.duplicate"}


def test_live_api_and_a_dump_share_the_buckets(tmp_path, monkeypatch):
    """The API's submissions (batched, not chunked) fold with the dump's: a page posted in
    both is one candidate carrying both submissions."""
    from tests.reddit_server import RedditServer, make_post

    dump = _dump(tmp_path / "RS_d.zst", [json.dumps(submission(1, "http://a.com/x", score=1))])
    posts = [make_post("p1", subreddit="news", url="http://www.a.com/x/", score=5)]
    posts.append(make_post("p2", subreddit="news", url="http://b.com/y", score=1))
    with RedditServer({"news": posts}) as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("praw_site", raising=False)
        more = {
            "source.subreddits": ("news",),
            "source.reddit_url": server.url,
            "source.oauth_url": server.url,
        }
        cfg = _config(tmp_path, dump, **more)
        manifest = run_urls(cfg, RunLayout.at(cfg.output.run_dir), {})
    rows = [
        r for f in manifest.files for r in pq.read_table(tmp_path / "run/urls" / f.path).to_pylist()
    ]
    assert [(r["canonical_url"], sorted(s["id"] for s in r["submissions"])) for r in rows] == [
        ("http://a.com/x", ["p1", "s1"])
    ]
    assert manifest.counts["source.submissions"] == 3
    assert manifest.counts["submission.low_karma"] == 1
    assert not Path(spill_dir(str(tmp_path / "run/urls"))).exists()
