"""robots.txt: fetched once per origin per fetcher, through the same guarded client as pages.

What a robots.txt response means follows RFC 9309: 2xx is parsed; 4xx (none there) allows
everything; 5xx means "assume complete disallow". When the robots.txt request itself fails
(blocked address, timeout, refused connection) that failure becomes the outcome of every page
of the origin, since the pages would fail the same way; it is cached, so a dead host costs one
attempt per fetcher, not one per URL. Matching is the standard library's
``urllib.robotparser`` (first matching rule wins; RFC 9309's longest match is not applied).
"""

from __future__ import annotations

import threading
import urllib.robotparser
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline.fetch_rules import FetchFailure

MAX_ROBOTS_BYTES = 512 * 1024  # RFC 9309 asks crawlers to parse at least 500 KiB


@dataclass(frozen=True)
class RobotsRules:
    """The decision for one origin: a parsed file, allow all, disallow all, or a failure."""

    parser: urllib.robotparser.RobotFileParser | None = None
    allow_all: bool = False
    failure: FetchFailure | None = None

    def check(self, url: str, user_agent: str) -> None:
        """Raise FetchFailure if ``url`` may not be fetched."""
        if self.failure is not None:
            raise FetchFailure(self.failure.reason, f"robots.txt: {self.failure}")
        if self.allow_all:
            return
        if self.parser is None:
            raise FetchFailure("robots", "robots.txt unavailable (5xx): complete disallow")
        if not self.parser.can_fetch(user_agent, url):
            raise FetchFailure("robots", "disallowed by robots.txt")


def rules_from_response(status: int, body: bytes) -> RobotsRules:
    if 200 <= status < 300:
        parser = urllib.robotparser.RobotFileParser()
        text = body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
        parser.parse(text.splitlines())
        return RobotsRules(parser=parser)
    if 400 <= status < 500:
        return RobotsRules(allow_all=True)
    return RobotsRules()


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}"


class RobotsCache:
    """Per-origin robots rules; ``fetch(robots_url) -> (status, body)`` is the guarded client.

    One lock per origin, so concurrent requests to a new host wait for a single robots.txt
    fetch instead of each making one.
    """

    def __init__(self, fetch: Callable[[str], tuple[int, bytes]], user_agent: str):
        self.fetch, self.user_agent = fetch, user_agent
        self._rules: dict[str, RobotsRules] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def rules(self, url: str) -> RobotsRules:
        key = origin(url)
        with self._guard:
            if key in self._rules:
                return self._rules[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:
                if key in self._rules:
                    return self._rules[key]
            try:
                rules = rules_from_response(*self.fetch(f"{key}/robots.txt"))
            except FetchFailure as e:
                if e.reason == "deadline":  # one URL's own limit says nothing of the origin
                    raise
                rules = RobotsRules(failure=e)
            with self._guard:
                self._rules[key] = rules
        return rules

    def check(self, url: str) -> None:
        self.rules(url).check(url, self.user_agent)
