"""Live Reddit through praw -> PCollection[Submission | Drop].

Read-only listings: for every subreddit of ``source.subreddits``, ``source.listing`` (new, top
with ``source.time_filter``, or hot), up to ``source.limit`` submissions; praw pages through
them 100 at a time.

Credentials come from praw's own configuration, never from our config files or flags, and are
never logged:

- environment variables ``praw_client_id``, ``praw_client_secret`` and ``praw_user_agent``
  (a "script" or "web" app's id and secret give application-only, read-only access), or
- a ``praw.ini`` site (in the working directory or the user's config directory) holding
  ``client_id``, ``client_secret`` and ``user_agent``, picked with the ``praw_site``
  environment variable (``DEFAULT`` otherwise).

Rate limits: praw/prawcore read Reddit's ``x-ratelimit-*`` headers and sleep as needed; we do
not change that. prawcore raises on HTTP 429 instead of waiting, so a 429 is answered here by
sleeping its ``Retry-After`` (bounded) and asking for the same page again, a few times at most.
All subreddits are read in one element, through one praw client and one rate limiter: listing
in parallel from several workers would multiply the request rate Reddit allows one client.

Records praw returns go through the same parser as dump lines, so a listing entry without a
URL or score is a ``source.*`` Drop like a bad dump line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import apache_beam as beam

from foundation.config import SourceConfig
from foundation.errors import WebtextError
from foundation.records import Drop, Submission
from pipeline.sources import parse_submission

log = logging.getLogger(__name__)

MAX_429_RETRIES = 5
MAX_RETRY_AFTER_S = 120.0
"""The longest ``Retry-After`` honoured; a longer one fails the listing with a clear error."""


class RedditApiError(WebtextError, RuntimeError):
    """A listing failed; the message names the subreddit and the listing."""


def make_reddit(cfg: SourceConfig) -> Any:
    """A read-only praw client from praw's configuration (env vars or praw.ini)."""
    import praw
    from praw.exceptions import MissingRequiredAttributeException

    overrides: dict[str, Any] = {}
    if cfg.reddit_url:
        overrides["reddit_url"] = cfg.reddit_url
    if cfg.oauth_url:
        overrides["oauth_url"] = cfg.oauth_url
    try:
        reddit = praw.Reddit(check_for_updates=False, **overrides)
    except MissingRequiredAttributeException as e:
        first = str(e).splitlines()[0]
        raise RedditApiError(
            f"praw is not configured ({first}): set the environment variables "
            "praw_client_id, praw_client_secret and praw_user_agent, or a praw.ini site "
            "chosen with praw_site"
        ) from None
    reddit.read_only = True
    return reddit


def _listing(reddit: Any, name: str, cfg: SourceConfig) -> Iterator[Any]:
    subreddit = reddit.subreddit(name)
    if cfg.listing == "top":
        return subreddit.top(time_filter=cfg.time_filter, limit=cfg.limit)
    if cfg.listing == "hot":
        return subreddit.hot(limit=cfg.limit)
    return subreddit.new(limit=cfg.limit)


def _record(item: Any) -> dict:
    """praw's Submission as the raw record (praw replaces ``subreddit`` by an object)."""
    record = dict(vars(item))
    subreddit = record.get("subreddit")
    record["subreddit"] = getattr(subreddit, "display_name", subreddit)
    return record


def _next_with_429_wait(listing: Iterator[Any], where: str) -> Any:
    """``next(listing)``, sleeping out HTTP 429 answers (praw retries the same page)."""
    from prawcore.exceptions import TooManyRequests

    for attempt in range(MAX_429_RETRIES + 1):
        try:
            return next(listing)
        except TooManyRequests as e:
            wait = float(e.retry_after or 2**attempt)
            if attempt == MAX_429_RETRIES or wait > MAX_RETRY_AFTER_S:
                raise RedditApiError(f"{where}: rate limited by Reddit (HTTP 429): {e}") from e
            log.warning("%s: HTTP 429, waiting %.1f s as Reddit asks", where, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def list_subreddit(reddit: Any, name: str, cfg: SourceConfig) -> Iterator[Submission | Drop]:
    """One subreddit's listing as Submissions (or Drops for unusable entries)."""
    from prawcore.exceptions import PrawcoreException

    where = f"r/{name} ({cfg.listing}" + (f", {cfg.time_filter})" if cfg.listing == "top" else ")")
    listing = _listing(reddit, name, cfg)
    count = 0
    while True:
        try:
            item = _next_with_429_wait(listing, where)
        except StopIteration:
            break
        except PrawcoreException as e:
            raise RedditApiError(f"{where}: {type(e).__name__}: {e}") from e
        count += 1
        yield parse_submission(_record(item), f"{where}#{count}")
    log.info("%s: %d submissions", where, count)


def read_listings(cfg: SourceConfig) -> Iterator[Submission | Drop]:
    reddit = make_reddit(cfg)
    for name in cfg.subreddits:
        yield from list_subreddit(reddit, name, cfg)


class ReadRedditApi(beam.PTransform):
    """PBegin -> PCollection[Submission | Drop]: the configured live listings."""

    def __init__(self, cfg: SourceConfig) -> None:
        super().__init__()
        if not cfg.subreddits:
            raise ValueError("ReadRedditApi needs source.subreddits")
        self.cfg = cfg

    def expand(self, pbegin):
        return (
            pbegin | "Config" >> beam.Create([self.cfg]) | "Listings" >> beam.FlatMap(read_listings)
        )
