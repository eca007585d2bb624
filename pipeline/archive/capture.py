"""One archived capture of a URL: what a CDX server or Common Crawl's columnar index lists.

Both lookup routes (per-URL CDX queries and the columnar-index join) produce :class:`Capture`, and
the content step reads its bytes from either an ``id_`` replay or a WARC byte range, so the two
routes meet in one small record.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capture:
    """A capture as an archive's index lists it (CDX fields, as pywb and Common Crawl name them)."""

    source: str  # the archive's name in [archive].sources
    url: str  # the URL as captured
    timestamp: str  # 14 digits, UTC: YYYYMMDDhhmmss
    status: int  # HTTP status; 0 where the index lists none (revisit records)
    mime: str = ""
    digest: str = ""  # payload digest (sha1, base32) as the index lists it
    filename: str = ""  # WARC file holding the record (Common Crawl, pywb); "" for Wayback
    offset: int = 0  # the record's byte offset in ``filename``
    length: int = 0  # the record's length in bytes (one gzip member)
