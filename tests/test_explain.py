"""``webtext explain RUN URL`` on a small real run: ingest over HTTP from the local page server."""

from __future__ import annotations

import pytest

from dedup.urls import canonicalize, doc_id
from foundation.config import JobConfig, with_overrides
from foundation.layout import RunLayout
from pipeline.ingest import run_ingest
from tests.page_server import PageServer, article_html, submission, write_dump
from webtext.cli import main

pytestmark = pytest.mark.slow

WIKI = "https://en.wikipedia.org/wiki/GPT-2"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Six articles, a near copy of article 0 (one word changed), a 404 and a Wikipedia link."""
    tmp = tmp_path_factory.mktemp("explain")
    pages = {f"/a/{i}.html": article_html(i) for i in range(6)}
    pages["/near.html"] = article_html(0).replace(b"<h1>Article 0</h1>", b"<h1>Article</h1>", 1)
    pages["/near.html"] = pages["/near.html"].replace(b"</article>", b"<p>Also.</p></article>")
    with PageServer(pages) as server:
        base = server.base_url
        subs = [submission(i, f"{base}/a/{i}.html", score=3 + i) for i in range(6)]
        subs += [
            submission(10, f"{base}/a/1.html?utm_source=x", score=40, subreddit="science"),
            submission(11, f"{base}/near.html", score=3),
            submission(12, f"{base}/missing.html", score=9),
            submission(13, WIKI, score=99),
        ]
        dump = tmp / "RS_explain.zst"
        write_dump(dump, subs)
        cfg = with_overrides(
            JobConfig(),
            {
                "output.run_dir": str(tmp / "run"),
                "output.workers": 1,
                "output.unit_urls": 4,
                "source.dumps": (str(dump),),
                "fetch.allow_addresses": ("127.0.0.1",),
                "fetch.per_host_delay_s": 0.0,
                "fetch.retries": 0,
                "quality.min_words": 100,
            },
        )
        run_ingest(cfg, RunLayout.at(cfg.output.run_dir), progress=False)
    return str(tmp / "run"), base


def _explain(capsys, *argv: str) -> tuple[int, str]:
    code = main(["explain", *argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_a_kept_url_shows_its_submissions_fetch_and_shard(run, capsys):
    run_dir, base = run
    code, out = _explain(capsys, run_dir, f"{base}/a/1.html?utm_source=x")  # another spelling
    assert code == 0, out
    assert f"canonical: {canonicalize(base + '/a/1.html')}" in out
    assert "s10  r/science  score 40" in out and "s1  r/" in out  # both submissions
    assert "fetch: fetched, HTTP 200" in out and "queued" in out and "fetching" in out
    assert "outcome: kept in shards/part-" in out
    same, by_id = _explain(capsys, run_dir, doc_id(canonicalize(base + "/a/1.html")))
    assert same == 0 and by_id.splitlines()[1:] == out.splitlines()[1:]  # a document id works too


def test_a_url_dropped_by_a_url_rule(run, capsys):
    code, out = _explain(capsys, run[0], WIKI)
    assert code == 0, out
    assert "url.wikipedia: s13" in out and "score 99" in out
    assert "outcome: removed by url.wikipedia" in out


def test_a_fetch_failure(run, capsys):
    run_dir, base = run
    code, out = _explain(capsys, run_dir, f"{base}/missing.html")
    assert code == 0, out
    assert "fetch: fetch.http_status" in out or "HTTP 404" in out
    assert "outcome: removed by fetch." in out


def test_a_near_duplicate_shows_its_survivor(run, capsys):
    run_dir, base = run
    near, kept = (doc_id(canonicalize(f"{base}{p}")) for p in ("/near.html", "/a/0.html"))
    code, out = _explain(capsys, run_dir, f"{base}/near.html")
    assert code == 0, out
    assert f"(survivor: {kept})" in out and "outcome: removed by dedup.near" in out
    code, out = _explain(capsys, run_dir, f"{base}/a/0.html")
    assert f"survivor over {near}, removed as dedup.near" in out and "kept in shards/" in out


def test_unknown_run_or_url_is_one_line(run, capsys, tmp_path):
    code, out = _explain(capsys, str(tmp_path / "nowhere"), "http://example.com/")
    assert code == 1 and out.count("\n") == 1 and "not a webtext run" in out
    code, out = _explain(capsys, run[0], "http://example.com/never-posted")
    assert code == 1 and out.count("\n") == 1 and "is not in the run" in out
