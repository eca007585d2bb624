"""A real HTTP server on 127.0.0.1 serving fixed pages, counting requests: for ingest tests."""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalServer(ThreadingHTTPServer):
    """The base of every test server here: a thread per connection, and a real listen backlog.

    socketserver's default backlog is 5: a fetcher opening dozens of connections at once
    overflows it, and each dropped SYN stalls its connection for the kernel's 1 s retransmission
    timeout. Real web servers listen with backlogs in the hundreds.
    """

    request_queue_size = 128
    daemon_threads = True


class PageServer:
    """Serves ``pages`` ({path: html bytes}); 404 elsewhere (robots.txt included: all allowed).

    Every answer waits ``delay_s``; a path in ``delays`` ({path: seconds}) waits that long
    instead (a host that is slow on one page)."""

    def __init__(
        self, pages: dict[str, bytes], delay_s: float = 0.0, delays: dict[str, float] | None = None
    ):
        self.pages, self.delay_s, self.delays = pages, delay_s, delays or {}
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers: one connection, many pages

            def do_GET(self) -> None:
                with server._lock:
                    server.requests[self.path] += 1
                body = server.pages.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                delay = server.delays.get(self.path, server.delay_s)
                if delay:
                    time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = LocalServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> PageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


WORDS = tuple(
    " ".join(
        [
            "river stone market winter lantern harbor orchard signal meadow",
            "copper violin garden engine thunder pepper castle candle forest",
            "mirror silver planet ribbon saddle tunnel anchor basket blossom",
            "canyon desert falcon glacier hammer island jungle kettle ladder",
            "magnet needle oyster pillow quartz rocket summit timber umbrella",
            "valley wagon yarn zephyr",
        ]
    ).split()
)


def article_html(seed: int, n_words: int = 220) -> bytes:
    """A page with boilerplate around an article of seeded random words (distinct per seed)."""
    import random

    rng = random.Random(seed)
    paragraphs = []
    for _ in range(4):
        words = [rng.choice(WORDS) for _ in range(n_words // 4)]
        paragraphs.append("<p>" + " ".join(words).capitalize() + ".</p>")
    return (
        f"<html><head><title>Article {seed}</title></head><body>"
        f"<nav><a href='/'>Home</a> <a href='/about'>About</a></nav>"
        f"<article><h1>Article {seed}</h1>{''.join(paragraphs)}</article>"
        f"<footer>Copyright example</footer></body></html>"
    ).encode()


def write_dump(path, submissions: list[dict]) -> None:
    """A Pushshift-style NDJSON dump, zstd-compressed as the real ones are."""
    import json

    import zstandard

    data = "".join(json.dumps(s) + "\n" for s in submissions).encode()
    with open(path, "wb") as f:
        f.write(zstandard.ZstdCompressor().compress(data))


def submission(i: int, url: str, score: int = 10, **extra) -> dict:
    return {
        "id": f"s{i}",
        "subreddit": "test",
        "url": url,
        "score": score,
        "created_utc": 1_600_000_000 + i,
        "is_self": False,
        "over_18": False,
        "title": f"post {i}",
        **extra,
    }


def append_line(value: object, path: str) -> None:
    """Append ``value`` as a JSON line: a sink for tests on runners that keep no outputs (Dask),
    defined in an importable module so that remote workers can unpickle it."""
    import json

    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(value) + "\n")
