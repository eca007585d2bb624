"""Every rule an ingest job counts, by phase, declared in one place.

The summary lists each of these with its count, zeros included, so that "no page timed out"
reads as a 0 on the ``extract.timeout`` line rather than as a missing line (which may as well
mean the rule never ran). Counts with names outside these lists (``fetch.http_404``: one per
HTTP status seen) are listed after them. A test reads the sources and fails when a stage
produces a fixed rule name that is not declared here.
"""

from __future__ import annotations

from collections.abc import Mapping

from dedup.exact import EXACT
from dedup.transforms import NEAR, NEAR_EXISTING
from pipeline import extraction, quality
from pipeline.archive.fetcher import FAILURE_ORDER
from pipeline.fetch import DAMAGED

SOURCE_RULES = (
    "source.bad_json",
    "source.bad_type",
    "source.line_too_long",
    "source.missing_created_utc",
    "source.missing_id",
    "source.missing_score",
    "source.missing_url",
    "source.not_object",
    "source.truncated",
)
SUBMISSION_RULES = (
    "submission.self",
    "submission.nsfw",
    "submission.repeated",
    "submission.low_karma",
)
URL_RULES = (
    "url.malformed",
    "url.not_http",
    "url.wikipedia",
    "url.blocklist",
    "url.media_extension",
    "url.duplicate",
)
URL_PHASE = (*SOURCE_RULES, *SUBMISSION_RULES, *URL_RULES)
"""Submissions -> candidate URLs (the URL manifest's counts)."""

FETCH_RULES = (
    "fetch.bad_url",
    "fetch.blocked_address",
    "fetch.dns",
    "fetch.connection",
    "fetch.timeout",
    "fetch.tls",
    "fetch.too_many_redirects",
    "fetch.robots",
    "fetch.content_type",
    "fetch.content_encoding",
    "fetch.decode_error",
    "fetch.decompression_bomb",
    "fetch.too_large",
    "fetch.deadline",
    "fetch.error",
    "fetch.not_in_warc",
    "fetch.no_range",  # a WARC byte range answered without its range (Common Crawl's route)
    DAMAGED,
)
"""Every way a fetch fails but an HTTP status: ``fetch.http_<status>`` is one per status."""
ARCHIVE_RULES = tuple(f"archive.{reason}" for reason in FAILURE_ORDER)
"""Every way an archive lookup or read fails (the archive backends, issue 18)."""
EXTRACT_RULES = (
    extraction.EMPTY,
    extraction.BINARY,
    extraction.NOT_HTML,
    extraction.ERROR,
    extraction.TIMEOUT,
    extraction.CRASH,
)
QUALITY_RULES = (quality.TOO_SHORT, quality.TOO_LONG, quality.LANGUAGE)
DEDUP_RULES = (EXACT, NEAR, NEAR_EXISTING)
PAGES_PHASE = (*FETCH_RULES, *ARCHIVE_RULES, *EXTRACT_RULES, *QUALITY_RULES, *DEDUP_RULES)
"""Candidate URLs -> documents (the shards manifest's counts)."""

URLS_FETCHED = "fetch.urls"
"""The pages phase's input: one per candidate URL, whatever its outcome."""
TOTALS = ("source.submissions", URLS_FETCHED, "shards.documents")
"""Counts of what went in or came out, not of what a rule removed."""


def with_zeros(counts: Mapping[str, int], rules: tuple[str, ...]) -> dict[str, int]:
    """``counts`` with every declared rule present (0 when it removed nothing): the declared
    rules in their order, then the other counts by name."""
    out = {rule: counts.get(rule, 0) for rule in rules}
    out.update(sorted((k, v) for k, v in counts.items() if k not in out))
    return out


def fetch_failures(counts: Mapping[str, int]) -> int:
    """URLs whose fetch failed, whatever the reason (an HTTP error status, robots.txt, no archived
    capture, ...)."""
    failed = ("fetch.", "archive.")
    return sum(n for name, n in counts.items() if name.startswith(failed) and name not in TOTALS)


def largest(counts: Mapping[str, int], prefix: str = "", n: int = 3) -> str:
    """The ``n`` rules (named ``prefix``...) that removed the most, as "rule count, ..."."""
    rules = [(k, v) for k, v in counts.items() if k.startswith(prefix) and k not in TOTALS and v]
    top = sorted(rules, key=lambda r: (-r[1], r[0]))[:n]
    return ", ".join(f"{k} {v:,}" for k, v in top) or "no rule removed anything"
