"""A real HTTP server on 127.0.0.1 that serves files by Range, as Common Crawl's data server does.

Python's ``http.server`` ignores Range; this one answers ``Range: bytes=a-b`` with 206 and that
slice (cut at the end of the file), 416 for a range that starts past the end, 404 for unknown
paths. ``failures`` are statuses answered first, one a request, with ``Retry-After: 0`` (429,
503: what a throttling archive sends). ``ignore_range`` makes it answer 200 with the whole file
instead, as some servers do; it then counts in ``sent`` the bytes it managed to write, so a test
sees whether a client stopped reading.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler

from tests.page_server import LocalServer

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
CHUNK = 64 * 1024


class RangeServer:
    """Serves ``files`` ({path: bytes}); see the module docstring."""

    def __init__(
        self, files: dict[str, bytes], ignore_range: bool = False, failures: tuple[int, ...] = ()
    ):
        self.files, self.ignore_range = files, ignore_range
        self.failures = list(failures)
        self.requests: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.ranges: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                data = server.files.get(self.path)
                asked = self.headers.get("Range", "")
                with server._lock:
                    server.requests[self.path] += 1
                    server.ranges.append(asked)
                    failure = server.failures.pop(0) if server.failures else None
                if failure is not None:
                    self._send(failure, b"", {"Retry-After": "0"})
                    return
                if data is None:
                    self.send_error(404)
                    return
                match = _RANGE.match(asked)
                if server.ignore_range or not match:
                    self._send(200, data, {})
                    return
                start = int(match.group(1))
                end = min(int(match.group(2) or len(data) - 1), len(data) - 1)
                if start >= len(data) or end < start:
                    self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    return
                content_range = f"bytes {start}-{end}/{len(data)}"
                self._send(206, data[start : end + 1], {"Content-Range": content_range})

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    for i in range(0, len(body), CHUNK):
                        self.wfile.write(body[i : i + CHUNK])
                        with server._lock:
                            server.sent[self.path] += len(body[i : i + CHUNK])
                except OSError:  # the client hung up: what it did not read stays unsent
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = LocalServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def __enter__(self) -> RangeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
