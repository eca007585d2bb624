"""Local HTTP servers that misbehave on purpose, for the fetcher's tests (127.0.0.1, port 0).

    with HostileServer() as server:
        url = server.url("/slow")
        ...
        server.count("/slow"), server.max_concurrent

Every endless route is bounded (``LOOP_LIMIT_S`` and a stop flag set on exit), so a test that
fails never leaves a thread streaming forever. Routes:

    /page  /latin1  /cp1252  /noctype  /gzip-page  /private/page (robots.txt disallows)
    /slow (a byte every DRIP_S)  /endless (unbounded, no length)  /huge-length (claims 1 TB)
    /png  /octet  /gzip-bomb  /deflate-bomb  /br-bomb  /loop  /loop2  /to?u=LOCATION
    /429?k=KEY&n=N (N 429s then 200)  /500?k=KEY&n=N  /404  /sleep?s=SECONDS&k=KEY
    /robots.txt  /teapot (418)
"""

from __future__ import annotations

import functools
import gzip
import threading
import time
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.page_server import LocalServer

DRIP_S = 0.2
LOOP_LIMIT_S = 15.0
BOMB_BYTES = 8 * 1024 * 1024
ROBOTS = b"User-agent: *\nDisallow: /private/\n"


def html(title: str, body: str = "Some text.") -> str:
    head = f"<!DOCTYPE html><html><head><title>{title}</title></head>"
    return f"{head}<body><p>{body}</p></body></html>"


PAGE = html("Page", "A normal page with text: caf\u00e9.").encode("utf-8")
LATIN1 = (
    '<html><head><meta charset="iso-8859-1"><title>L</title></head>'
    "<body><p>Gar\u00e7on fran\u00e7ais</p></body></html>"
).encode("latin-1")
CP1252 = html("W", "Smart \u201cquotes\u201d").encode("cp1252")


def _bombs() -> dict[str, bytes]:
    zeros = b"\0" * BOMB_BYTES
    import brotli

    return {
        "gzip": gzip.compress(zeros, 9),
        "deflate": zlib.compress(zeros, 9),
        "br": brotli.compress(zeros, quality=5),
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def _send(
        self, status: int, body: bytes = b"", ctype: str = "text/html; charset=utf-8", **headers
    ) -> None:
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, ctype: str, chunk: bytes, pause: float) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Connection", "close")
        self.end_headers()
        end = time.monotonic() + LOOP_LIMIT_S
        try:
            while time.monotonic() < end and not self.server.stopping.is_set():
                self.wfile.write(chunk)
                self.wfile.flush()
                if pause:
                    time.sleep(pause)
        except OSError:
            pass  # the client hung up: the point of these routes

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path, q = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.server.record(path, self.headers)
        try:
            self._route(path, q)
        finally:
            self.server.done(path)

    def _route(self, path: str, q: dict[str, str]) -> None:
        s = self.server
        if path in ("/page", "/private/page"):
            self._send(200, PAGE)
        elif path == "/latin1":
            self._send(200, LATIN1, "text/html")
        elif path == "/cp1252":
            self._send(200, CP1252, "text/html")
        elif path == "/noctype":
            self._send(200, PAGE, "")
        elif path == "/gzip-page":
            self._send(200, gzip.compress(PAGE), Content_Encoding="gzip")
        elif path == "/slow":
            self._stream("text/html", b"x", DRIP_S)
        elif path == "/endless":
            self._stream("text/html", b"<p>" + b"y" * 65536, 0)
        elif path == "/huge-length":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            self.wfile.write(b"<html>")
            self.close_connection = True
        elif path == "/png":
            self._send(200, b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png")
        elif path == "/octet":
            self._send(200, b"\0\1\2" * 100, "application/octet-stream")
        elif path.endswith("-bomb"):
            kind = path[1:].removesuffix("-bomb")
            self._send(200, s.bombs[kind], "text/html", Content_Encoding=kind)
        elif path == "/loop":
            self._send(302, b"", Location="/loop2")
        elif path == "/loop2":
            self._send(302, b"", Location=s.url("/loop"))
        elif path == "/to":
            self._send(302, b"", Location=q["u"])
        elif path in ("/429", "/500"):
            status = int(path[1:])
            if s.count(f"{path}?{q['k']}", key=True) <= int(q.get("n", "2")):
                self._send(status, b"busy", Retry_After=q.get("after", "0"))
            else:
                self._send(200, PAGE)
        elif path == "/404":
            self._send(404, b"not here")
        elif path == "/teapot":
            self._send(418, b"")
        elif path == "/sleep":
            time.sleep(float(q.get("s", "0.3")))
            self._send(200, PAGE)
        elif path == "/robots.txt":
            self._send(200, ROBOTS, "text/plain")
        else:
            self._send(404, b"no such route")


class _Server(LocalServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.keys: Counter[str] = Counter()
        self.starts: list[tuple[str, float]] = []
        self.agents: list[str] = []
        self.hosts: list[str] = []
        self.active = 0
        self.max_concurrent = 0

    @functools.cached_property
    def bombs(self) -> dict[str, bytes]:
        return _bombs()

    def handle_error(self, request, client_address) -> None:
        pass  # clients hang up on the hostile routes by design

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def record(self, path: str, headers) -> None:
        with self.lock:
            self.counts[path] += 1
            self.starts.append((path, time.monotonic()))
            self.agents.append(headers.get("User-Agent", ""))
            self.hosts.append(headers.get("Host", ""))
            self.active += 1
            self.max_concurrent = max(self.max_concurrent, self.active)

    def done(self, path: str) -> None:
        with self.lock:
            self.active -= 1

    def count(self, name: str, key: bool = False) -> int:
        """Requests seen for a path; with ``key``, count this call (per-test retry counters)."""
        with self.lock:
            if key:
                self.keys[name] += 1
                return self.keys[name]
            return self.counts[name]


class HostileServer:
    """Context manager running :class:`_Server` on a background thread."""

    def __enter__(self) -> _Server:
        self.server = _Server()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self.server

    def __exit__(self, *exc: object) -> None:
        self.server.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def candidate(url: str):
    """A fetch candidate for ``url``, with the canonical form and document id ingest gives it."""
    from dedup.urls import canonicalize, doc_id
    from foundation.records import Candidate

    canonical = canonicalize(url)
    return Candidate(doc_id(canonical), canonical, url, "d", 3, 0, ())
