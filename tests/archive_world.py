"""A small archived web for the archive tests: WARC files served by a real pywb on 127.0.0.1,
a live page server some of whose links are dead, and a scriptable fake CDX server.

The captures (collection ``arch``), all of ``http://news.example`` unless said otherwise:

    /story              200 in 2015-03, 2017-06 and 2019-09 (three different articles)
    /moved              301 in 2017-06 -> /landing?a=1&b=2 (relative Location), 200 in 2017-06
    /flaky              404 in 2017-05 (nearest), 200 in 2016-09
    /gone               404 only
    /rev                200 in 2014-01, a revisit of it in 2017-06
    /damaged            200, its payload changed after indexing (:func:`damage`)
    /pdf                200 application/pdf
    LIVE/gone-live      200 in 2017 (the live server answers 404)
    LIVE/alive          200 in 2017 (the live server answers 200 with another article)
    LIVE/private/page   200 in 2017 (the live server's robots.txt disallows /private)
    http://127.0.0.1:DEAD/refused   200 in 2017 (nothing listens on DEAD)

Candidates were submitted on :data:`SUBMITTED` (2017-05-15).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from io import BytesIO
from pathlib import Path

from tests.page_server import LocalServer, PageServer, article_html

SUBMITTED = int(datetime(2017, 5, 15, tzinfo=UTC).timestamp())
NEWS = "http://news.example"
ARTICLES = {  # seed of each capture's article, by (path, year)
    ("/story", 2015): 1,
    ("/story", 2017): 2,
    ("/story", 2019): 3,
    ("/landing", 2017): 4,
    ("/flaky", 2016): 5,
    ("/rev", 2014): 6,
    ("/gone-live", 2017): 7,
    ("/alive", 2017): 9,
    ("/private/page", 2017): 10,
    ("/refused", 2017): 11,
}
LIVE_ALIVE = 8  # the article the live server has at /alive


def _digest(body: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(body).digest()).decode()


class _Warc:
    def __init__(self, f, gzip: bool = True):
        from warcio.warcwriter import WARCWriter

        self.writer = WARCWriter(f, gzip=gzip)

    def response(self, url, date, status, body=b"", ctype="text/html", extra=()):
        from warcio.statusandheaders import StatusAndHeaders

        headers = [("Content-Type", ctype), ("Content-Length", str(len(body))), *extra]
        http = StatusAndHeaders(f"{status} X", headers, protocol="HTTP/1.1")
        record = self.writer.create_warc_record(
            url, "response", payload=BytesIO(body), http_headers=http,
            warc_headers_dict={"WARC-Date": date},
        )  # fmt: skip
        self.writer.write_record(record)

    def revisit(self, url, date, of_date, body):
        from warcio.statusandheaders import StatusAndHeaders

        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        record = self.writer.create_revisit_record(
            url, _digest(body), url, of_date, http_headers=http,
            warc_headers_dict={"WARC-Date": date},
        )  # fmt: skip
        self.writer.write_record(record)


def write_warcs(folder: Path, live: str, dead: str) -> list[Path]:
    """The WARC files of the module docstring's captures (several files, as an archive has)."""
    folder.mkdir(parents=True, exist_ok=True)
    a, b = folder / "news.warc.gz", folder / "live.warc.gz"
    y = {2014: "2014-01-01", 2015: "2015-03-01", 2016: "2016-09-01", 2017: "2017-06-01"}
    y[2019] = "2019-09-01"
    with open(a, "wb") as f:
        w = _Warc(f)
        for year in (2015, 2017, 2019):
            w.response(
                f"{NEWS}/story", f"{y[year]}T00:00:00Z", 200, article_html(ARTICLES["/story", year])
            )
        w.response(
            f"{NEWS}/moved", "2017-06-01T00:00:00Z", 301, extra=[("Location", "/landing?a=1&b=2")]
        )
        w.response(f"{NEWS}/landing?a=1&b=2", "2017-06-01T00:00:05Z", 200, article_html(4))
        w.response(f"{NEWS}/flaky", "2017-05-01T00:00:00Z", 404, b"<html>not here</html>")
        w.response(f"{NEWS}/flaky", f"{y[2016]}T00:00:00Z", 200, article_html(5))
        w.response(f"{NEWS}/gone", "2017-05-01T00:00:00Z", 404, b"<html>not here</html>")
        rev = article_html(6)
        w.response(f"{NEWS}/rev", "2014-01-01T00:00:00Z", 200, rev)
        w.revisit(f"{NEWS}/rev", "2017-06-01T00:00:00Z", "2014-01-01T00:00:00Z", rev)
        w.response(
            f"{NEWS}/pdf", "2017-06-01T00:00:00Z", 200, b"%PDF-1.4 ...", ctype="application/pdf"
        )
    with open(b, "wb") as f:
        w = _Warc(f)
        for path in ("/gone-live", "/alive", "/private/page"):
            w.response(
                f"{live}{path}", "2017-06-01T00:00:00Z", 200, article_html(ARTICLES[path, 2017])
            )
        w.response(f"{dead}/refused", "2017-06-01T00:00:00Z", 200, article_html(11))
    damaged = folder / "damaged.warc"  # uncompressed, so that damage() can change bytes in place
    with open(damaged, "wb") as f:
        _Warc(f, gzip=False).response(
            f"{NEWS}/damaged", "2017-06-01T00:00:00Z", 200, article_html(12)
        )
    return [a, b, damaged]


def damage(collection: Path) -> None:
    """Change the payload of /damaged in the collection's copy of its WARC after indexing, as a
    disk error would: the same length, other bytes."""
    path = collection / "archive" / "damaged.warc"
    data = path.read_bytes()
    path.write_bytes(data.replace(b"Article 12", b"Articlf 12"))


def data_files(collection: Path) -> dict[str, bytes]:
    """The collection's WARC files by the path a Range server serves them at: the ``filename``
    its CDX index lists, as Common Crawl's index names files on its data server."""
    return {f"/{p.name}": p.read_bytes() for p in sorted((collection / "archive").iterdir())}


@dataclass
class ArchiveWorld:
    """What the session fixture started: pywb over the captures, a Range server over the same
    WARC files, and the live server."""

    pywb: object  # webtext.archive_server.PywbServer
    live: PageServer
    dead: str  # http://127.0.0.1:PORT with nothing listening
    data: object = None  # tests.range_server.RangeServer

    @property
    def source(self) -> str:
        """The ``archive.sources`` entry of the pywb collection (replay route)."""
        return f"local={self.pywb.cdx_url('arch')}"

    @property
    def cc_source(self) -> str:
        """The same index as Common Crawl is read: CDX from pywb (the software CC's index server
        runs), records by byte range from the data server."""
        return f"cc={self.pywb.cdx_url('arch')} warc:{self.data.base_url}/"


def live_pages() -> dict[str, bytes]:
    return {
        "/alive": article_html(LIVE_ALIVE),
        "/private/page": article_html(13),
        "/robots.txt": b"User-agent: *\nDisallow: /private\n",
    }


class FakeArchive:
    """A CDX server and replay on 127.0.0.1 answering from a script, counting requests.

    ``cdx`` is a list of (status, headers, body) answers to successive CDX queries (the last one
    repeats); replays at ``/<ts>id_/<url>`` get ``page``.
    """

    def __init__(self, cdx: list[tuple[int, dict, bytes]], page: bytes = b""):
        self.cdx, self.page = cdx, page
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                kind = "cdx" if self.path.startswith("/cdx") else "replay"
                with server._lock:
                    n = server.requests[kind]
                    server.requests[kind] += 1
                if kind == "cdx":
                    status, headers, body = server.cdx[min(n, len(server.cdx) - 1)]
                else:
                    status, headers, body = 200, {"Content-Type": "text/html"}, server.page
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = LocalServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def source(self) -> str:
        port = self.httpd.server_address[1]
        return f"fake=http://127.0.0.1:{port}/cdx"

    def __enter__(self) -> FakeArchive:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def cdx_line(url: str, timestamp: str, status: int = 200, digest: str = "") -> bytes:
    return (
        json.dumps(
            {
                "url": url,
                "timestamp": timestamp,
                "status": str(status),
                "mime": "text/html",
                "digest": digest,
            }
        ).encode()
        + b"\n"
    )
