"""A small Reddit API on 127.0.0.1 for praw to talk to in tests (no network, no mocks).

It speaks what read-only listing needs:

- ``POST /api/v1/access_token`` (application-only OAuth; checks HTTP Basic credentials),
- ``GET /r/NAME/{new,top,hot}`` with ``limit`` (at most 100, as Reddit) and ``after`` paging,
  ``t`` for top's time filter; ``kind: Listing`` with ``kind: t3`` children,
- 404 for an unknown subreddit, optional 429s with ``Retry-After``, and ``x-ratelimit-*``
  headers when asked, to show praw's rate limiting is honoured.

Every request is recorded (method, path, query, headers, body) so tests can check paging and
credentials. Use it as a context manager::

    with RedditServer({"python": [make_post("a1", url=...)]}) as server:
        SourceConfig(subreddits=("python",), reddit_url=server.url, oauth_url=server.url)

and set ``praw_client_id``/``praw_client_secret``/``praw_user_agent`` in the environment
(``server.env()`` gives them).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.page_server import LocalServer

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret-do-not-log"
ACCESS_TOKEN = "test-access-token"
TIME_FILTER_S = {
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 31 * 86400,
    "year": 366 * 86400,
}


def make_post(
    sub_id: str,
    *,
    subreddit: str = "test",
    url: str | None = None,
    score: int = 10,
    created_utc: float | None = None,
    is_self: bool = False,
    over_18: bool = False,
    title: str = "a post",
    **extra: Any,
) -> dict[str, Any]:
    """The data of one ``t3`` listing child, in Reddit's shape."""
    permalink = f"/r/{subreddit}/comments/{sub_id}/post/"
    return {
        "id": sub_id,
        "name": f"t3_{sub_id}",
        "subreddit": subreddit,
        "url": url if url is not None else f"https://www.reddit.com{permalink}",
        "permalink": permalink,
        "score": score,
        "created_utc": time.time() if created_utc is None else created_utc,
        "is_self": is_self,
        "over_18": over_18,
        "title": title,
        "author": "someone",
        "domain": f"self.{subreddit}" if is_self else "example.com",
        "num_comments": 0,
        **extra,
    }


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str
    at: float  # time.monotonic() when it arrived


@dataclass
class RedditServer:
    """``posts``: subreddit name -> its posts' data (any order; each listing sorts them)."""

    posts: dict[str, list[dict[str, Any]]]
    too_many_requests: int = 0
    """Answer this many listing requests with 429 before serving."""
    retry_after: str = "1"
    ratelimit: tuple[float, int, int] | None = None
    """(remaining, used, reset seconds) sent as ``x-ratelimit-*`` on every listing."""
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def __enter__(self) -> RedditServer:
        self._lock = threading.Lock()
        self._httpd = LocalServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def env(self) -> dict[str, str]:
        """praw's environment variables for this server's credentials."""
        return {
            "praw_client_id": CLIENT_ID,
            "praw_client_secret": CLIENT_SECRET,
            "praw_user_agent": "webtext-tests/1.0",
        }

    def listing_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.startswith("/r/")]

    # --- request handling (called from the handler threads) ---------------------------------

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _take_429(self) -> bool:
        with self._lock:
            if self.too_many_requests > 0:
                self.too_many_requests -= 1
                return True
            return False

    def listing(self, name: str, kind: str, query: dict[str, str]) -> dict[str, Any] | None:
        posts = self.posts.get(name)
        if posts is None:
            return None
        if kind == "new":
            ordered = sorted(posts, key=lambda p: (-p["created_utc"], p["id"]))
        else:
            ordered = sorted(posts, key=lambda p: (-p["score"], p["id"]))
        if kind == "top" and query.get("t", "day") in TIME_FILTER_S:
            since = time.time() - TIME_FILTER_S[query.get("t", "day")]
            ordered = [p for p in ordered if p["created_utc"] >= since]
        start = 0
        if "after" in query:
            names = [p["name"] for p in ordered]
            start = names.index(query["after"]) + 1 if query["after"] in names else len(names)
        limit = max(1, min(int(query.get("limit", "25")), 100))
        page = ordered[start : start + limit]
        more = start + limit < len(ordered)
        return {
            "kind": "Listing",
            "data": {
                "after": page[-1]["name"] if page and more else None,
                "before": None,
                "dist": len(page),
                "children": [{"kind": "t3", "data": p} for p in page],
            },
        }


def _handler(server: RedditServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            return

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _request(self) -> tuple[str, dict[str, str]]:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            server._record(
                Request(
                    self.command,
                    parts.path,
                    query,
                    dict(self.headers.items()),
                    body,
                    time.monotonic(),
                )
            )
            return parts.path, query

        def do_POST(self) -> None:
            path, _ = self._request()
            if path != "/api/v1/access_token":
                self._send(404, {"message": "Not Found", "error": 404})
                return
            expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                self._send(401, {"message": "Unauthorized", "error": 401})
                return
            self._send(
                200,
                {
                    "access_token": ACCESS_TOKEN,
                    "token_type": "bearer",
                    "expires_in": 86400,
                    "scope": "*",
                },
            )

        def do_GET(self) -> None:
            path, query = self._request()
            if self.headers.get("Authorization") != f"bearer {ACCESS_TOKEN}":
                self._send(401, {"message": "Unauthorized", "error": 401})
                return
            parts = path.strip("/").split("/")
            if len(parts) != 3 or parts[0] != "r" or parts[2] not in ("new", "top", "hot"):
                self._send(404, {"message": "Not Found", "error": 404})
                return
            if server._take_429():
                self._send(
                    429,
                    {"message": "Too Many Requests", "error": 429},
                    {"Retry-After": server.retry_after},
                )
                return
            listing = server.listing(parts[1], parts[2], query)
            if listing is None:
                self._send(404, {"message": "Not Found", "error": 404})
                return
            headers = {}
            if server.ratelimit is not None:
                remaining, used, reset = server.ratelimit
                headers = {
                    "x-ratelimit-remaining": str(remaining),
                    "x-ratelimit-used": str(used),
                    "x-ratelimit-reset": str(reset),
                }
            self._send(200, listing, headers)

    return Handler
