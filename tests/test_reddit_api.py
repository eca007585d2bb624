"""praw against a local Reddit API (tests/reddit_server.py): paging, listings, limits, errors."""

from __future__ import annotations

import logging
import time

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from foundation.config import SourceConfig
from foundation.records import Drop, Submission
from pipeline.reddit_api import ReadRedditApi, RedditApiError, read_listings
from tests.reddit_server import CLIENT_SECRET, RedditServer, make_post

NOW = time.time()


def posts(name: str, n: int) -> list[dict]:
    """n posts, one a day back from now; post i has score i."""
    return [
        make_post(
            f"{name}{i}",
            subreddit=name,
            url=f"https://example.com/{name}/{i}",
            score=i,
            created_utc=NOW - 86400 * i - 60,
        )
        for i in range(n)
    ]


@pytest.fixture
def praw_env(monkeypatch):
    def use(server: RedditServer) -> None:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("praw_site", raising=False)

    return use


def config(server: RedditServer, **kw) -> SourceConfig:
    return SourceConfig(reddit_url=server.url, oauth_url=server.url, **kw)


def test_new_listing_pages_through_and_respects_the_limit(praw_env, caplog):
    caplog.set_level(logging.DEBUG)
    with RedditServer({"python": posts("python", 250)}) as server:
        praw_env(server)
        out = list(read_listings(config(server, subreddits=("python",), limit=230)))
    assert [s.id for s in out] == [f"python{i}" for i in range(230)]  # newest first
    assert out[3] == Submission(
        "python3", "python", "https://example.com/python/3", 3, int(NOW - 86400 * 3 - 60),
        title="a post",
    )  # fmt: skip
    listings = server.listing_requests()
    assert [r.path for r in listings] == ["/r/python/new"] * 3
    assert [r.query.get("after") for r in listings] == [None, "t3_python99", "t3_python199"]
    # credentials: sent to the token endpoint, a bearer token afterwards, never logged
    token = [r for r in server.requests if r.path == "/api/v1/access_token"]
    assert len(token) == 1 and token[0].headers["Authorization"].startswith("Basic ")
    assert "grant_type=client_credentials" in token[0].body
    assert all(r.headers["Authorization"] == "bearer test-access-token" for r in listings)
    assert CLIENT_SECRET not in caplog.text


def test_top_sends_the_time_filter_and_hot_its_own_path(praw_env):
    with RedditServer({"news": posts("news", 30)}) as server:
        praw_env(server)
        top = list(
            read_listings(config(server, subreddits=("news",), listing="top", time_filter="week"))
        )
        hot = list(read_listings(config(server, subreddits=("news",), listing="hot", limit=5)))
    # the last week holds posts 0..6; top sorts by score
    assert [s.id for s in top] == [f"news{i}" for i in range(6, -1, -1)]
    assert [s.id for s in hot] == [f"news{i}" for i in range(29, 24, -1)]
    top_req, hot_req = server.listing_requests()
    assert (top_req.path, top_req.query["t"]) == ("/r/news/top", "week")
    assert (hot_req.path, hot_req.query["limit"]) == ("/r/news/hot", "5")


def test_several_subreddits_and_unusable_entries(praw_env):
    data = {
        "a": posts("a", 2),
        "b": [*posts("b", 1), make_post("b_nourl", subreddit="b", url="", created_utc=NOW - 999)],
    }
    with RedditServer(data) as server:
        praw_env(server)
        out = list(read_listings(config(server, subreddits=("a", "b"))))
    assert [x.id for x in out if isinstance(x, Submission)] == ["a0", "a1", "b0"]
    (drop,) = [x for x in out if isinstance(x, Drop)]
    assert (drop.reason, drop.where) == ("source.missing_url", "r/b (new)#2")


def test_http_429_waits_for_retry_after_then_goes_on(praw_env):
    with RedditServer({"python": posts("python", 120)}, too_many_requests=1) as server:
        praw_env(server)
        start = time.monotonic()
        out = list(read_listings(config(server, subreddits=("python",), limit=120)))
    assert len(out) == 120
    first, retried, *_ = server.listing_requests()
    assert first.query == retried.query  # the same page asked again
    assert retried.at - first.at >= 0.95
    assert time.monotonic() - start < 10


def test_rate_limit_headers_make_praw_wait(praw_env):
    # Reddit says: 0 requests left in this window, which resets in 1 s.
    server = RedditServer({"python": posts("python", 150)}, ratelimit=(0, 100, 1))
    with server:
        praw_env(server)
        out = list(read_listings(config(server, subreddits=("python",), limit=150)))
    assert len(out) == 150
    first, second = server.listing_requests()
    assert second.at - first.at >= 0.95


def test_unknown_subreddit_names_it(praw_env):
    with RedditServer({"python": posts("python", 1)}) as server:
        praw_env(server)
        with pytest.raises(RedditApiError, match=r"r/nosuchsub \(top, day\).*NotFound"):
            list(
                read_listings(
                    config(server, subreddits=("nosuchsub",), listing="top", time_filter="day")
                )
            )


def test_missing_credentials_say_how_to_set_them(monkeypatch):
    for key in ("praw_client_id", "praw_client_secret", "praw_user_agent", "praw_site"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RedditApiError, match=r"praw_client_id.*praw_client_secret"):
        list(read_listings(SourceConfig(subreddits=("python",))))


def test_wrong_credentials_fail_clearly(monkeypatch):
    with RedditServer({"python": posts("python", 1)}) as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("praw_client_secret", "wrong")
        with pytest.raises(RedditApiError, match=r"r/python \(new\)"):
            list(read_listings(config(server, subreddits=("python",))))


def test_read_reddit_api_transform(praw_env):
    with RedditServer({"a": posts("a", 3), "b": posts("b", 2)}) as server:
        praw_env(server)
        cfg = config(server, subreddits=("a", "b"))
        with TestPipeline(runner="FnApiRunner") as p:
            ids = p | ReadRedditApi(cfg) | "Ids" >> beam.Map(lambda s: s.id)
            assert_that(ids, equal_to(["a0", "a1", "a2", "b0", "b1"]))


def test_read_reddit_api_needs_subreddits():
    with pytest.raises(ValueError, match="subreddits"):
        ReadRedditApi(SourceConfig())
