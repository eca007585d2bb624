"""The rules a fetched response must pass, shared by live fetching and WARC replay.

* Content type: HTML only (``text/html``, ``application/xhtml+xml``), since extraction needs
  markup; a response without a Content-Type is accepted when its first bytes look like HTML.
  ``text/plain`` is refused: trafilatura extracts nothing useful from it and most such URLs
  are raw files (logs, code, data). Anything else is ``fetch.content_type``.
* Size: ``max_bytes`` on the body as stored or sent, ``max_decompressed_bytes`` on the decoded
  body; :class:`BodyDecoder` decodes gzip/deflate/br incrementally and stops at the cap, so a
  bomb costs at most the cap in memory (``fetch.decompression_bomb``).
* Charset: a byte-order mark, then the HTTP header's ``charset``, then ``<meta charset>`` or
  ``<meta http-equiv=Content-Type>`` in the first 4 KiB, then UTF-8 if the body decodes as
  such, else windows-1252 (what browsers assume for unlabelled Western pages).
* Status: the outcome of a final non-2xx response is ``fetch.http_<code>`` (``fetch.http_404``):
  exact codes, since the fetch log and the manifest counts are where people look for why.
"""

from __future__ import annotations

import codecs
import re
import zlib

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
SNIFF_BYTES = 1024
META_BYTES = 4096

_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class FetchFailure(Exception):
    """An expected per-URL failure; ``reason`` is the outcome without its ``fetch.`` prefix."""

    def __init__(
        self, reason: str, message: str, status: int = 0, url: str = "", retry: bool = False
    ):
        super().__init__(message)
        self.reason, self.status, self.url = reason, status, url
        self.retry = retry  # worth another attempt (connection errors, socket timeouts)


def media_type(content_type: str) -> str:
    """``text/html; charset=utf-8`` -> ``text/html``."""
    return content_type.split(";", 1)[0].strip().lower()


def header_charset(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


def check_content_type(content_type: str) -> None:
    """Refuse non-HTML types before the body is read; an absent type is sniffed later."""
    kind = media_type(content_type)
    if kind and kind not in HTML_TYPES:
        raise FetchFailure("content_type", f"content type {kind!r} is not HTML")


def check_sniffed(content_type: str, body: bytes) -> str:
    """The media type to record: the header's, or ``text/html`` for an unlabelled HTML body."""
    kind = media_type(content_type)
    if kind:
        return kind
    if _HTML_START.match(body[:SNIFF_BYTES]):
        return "text/html"
    raise FetchFailure("content_type", "no Content-Type and the body does not look like HTML")


def _codec_name(label: str | None) -> str | None:
    if not label:
        return None
    try:
        return codecs.lookup(label.decode("ascii") if isinstance(label, bytes) else label).name
    except (LookupError, UnicodeDecodeError):
        return None


def detect_charset(content_type: str, body: bytes) -> str:
    """The body's text encoding, as a Python codec name (see the module docstring)."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    if name := _codec_name(header_charset(content_type)):
        return name
    match = _META_CHARSET.search(body[:META_BYTES])
    if match and (name := _codec_name(match.group(1))):
        return name
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def status_outcome(status: int) -> str:
    return "fetched" if 200 <= status < 300 else f"fetch.http_{status}"


class _Zlib:
    def __init__(self, wbits: int):
        self.wbits = wbits
        self.obj = zlib.decompressobj(wbits)
        self.started = False

    def feed(self, data: bytes, limit: int) -> bytes:
        if not self.started and data and self.wbits == zlib.MAX_WBITS and data[0] & 0x0F != 8:
            # "deflate" is meant to be zlib-wrapped, but many servers send raw deflate.
            self.obj = zlib.decompressobj(-zlib.MAX_WBITS)
        self.started = self.started or bool(data)
        # At most limit + 1 bytes come out; input that would give more stays in the tail.
        return self.obj.decompress(data, limit + 1)

    def over(self) -> bool:
        return bool(self.obj.unconsumed_tail)


class _Brotli:
    def __init__(self):
        import brotli

        self.obj = brotli.Decompressor()
        self.pending = False

    def feed(self, data: bytes, limit: int) -> bytes:
        out = self.obj.process(data, output_buffer_limit=limit + 1)
        self.pending = not self.obj.can_accept_more_data()
        return out

    def over(self) -> bool:
        return self.pending


def _stage(encoding: str):
    if encoding in ("gzip", "x-gzip"):
        return _Zlib(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return _Zlib(zlib.MAX_WBITS)
    if encoding == "br":
        return _Brotli()
    raise FetchFailure("content_encoding", f"unsupported Content-Encoding {encoding!r}")


class BodyDecoder:
    """Incremental Content-Encoding decoder with a cap on the decoded size.

    ``feed`` raises ``FetchFailure("decompression_bomb")`` as soon as the decoded body would
    pass ``limit``; each codec is asked for at most ``limit + 1`` bytes per call, so a bomb
    never expands in memory past the cap.
    """

    ACCEPT = "gzip, deflate, br"

    def __init__(self, content_encoding: str, limit: int):
        names = [e.strip().lower() for e in content_encoding.split(",") if e.strip()]
        # Encodings are listed in the order applied, so they are undone in reverse.
        self.stages = [_stage(e) for e in reversed(names) if e != "identity"]
        self.limit = limit
        self.size = 0

    def feed(self, data: bytes) -> bytes:
        try:
            for stage in self.stages:
                data = stage.feed(data, self.limit - self.size)
                if stage.over():
                    self._bomb()
        except FetchFailure:
            raise
        except Exception as e:  # zlib.error, brotli.error: a corrupt or truncated stream
            raise FetchFailure("decode_error", f"cannot decode body ({e})") from e
        self.size += len(data)
        if self.size > self.limit:
            self._bomb()
        return data

    def _bomb(self) -> None:
        raise FetchFailure("decompression_bomb", f"decoded body exceeds {self.limit} bytes")


def decode_body(content_encoding: str, chunks, max_bytes: int, max_decoded: int) -> bytes:
    """Decode an iterable of raw body chunks under both caps (used by WARC replay)."""
    decoder = BodyDecoder(content_encoding, max_decoded)
    raw, out = 0, []
    for chunk in chunks:
        raw += len(chunk)
        if raw > max_bytes:
            raise FetchFailure("too_large", f"body exceeds {max_bytes} bytes")
        out.append(decoder.feed(chunk))
    return b"".join(out)
