"""Extraction of one fetched page: main text, title, date and language (no Beam here).

:func:`extract_document` is the pure unit of work of the extraction stage
(:mod:`pipeline.extract`), which runs it in a sandbox child process; this module imports
nothing from Beam, so that child starts (and restarts after a killed page) in a second less.

Metadata is read cheaply on purpose: trafilatura's full ``with_metadata`` pass (authors,
categories, licence, htmldate's extensive search) costs about as much again as the text
extraction itself, and we keep only the title (meta tags, then the page's headings, as
trafilatura does) and a date from htmldate's quick search. The language is identified from
the extracted text with py3langid, trafilatura's own language classifier.
"""

from __future__ import annotations

import codecs
import dataclasses
import re
from typing import Any

from foundation.config import ExtractConfig
from foundation.records import Drop, FetchResult
from pipeline.text import content_hash, count_words

EMPTY = "extract.empty"
BINARY = "extract.binary"
NOT_HTML = "extract.not_html"
ERROR = "extract.error"
TIMEOUT = "extract.timeout"
CRASH = "extract.crash"

LANGUAGE_SAMPLE_CHARS = 1000
"""py3langid reads this much of the text: it gives the full text's answer on nearly every corpus
page at a fraction of the cost (docs/benchmarks.md, extraction quality)."""
_BINARY_PROBE_CHARS = 4096
_BINARY_MAX_SHARE = 0.05
"""Decoded text with more control/replacement characters than this is not a web page."""
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0e-\x1f\ufffd]")


def decode_body(body: bytes, declared: str | None) -> str:
    """Bytes to text: the fetcher's encoding, else UTF-8, else charset detection, else lossy."""
    for encoding in (declared, "utf-8"):
        if not encoding:
            continue
        try:
            codecs.lookup(encoding)
            return body.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(body[:65536]).best()
    if best is not None:
        try:
            return body.decode(best.encoding)
        except (LookupError, UnicodeDecodeError):
            pass
    return body.decode("utf-8", errors="replace")


def looks_binary(text: str) -> bool:
    """Control characters (other than whitespace) or U+FFFD in quantity: not text at all."""
    probe = text[:_BINARY_PROBE_CHARS]
    if not probe:
        return False
    return len(_NOT_TEXT.findall(probe)) / len(probe) > _BINARY_MAX_SHARE


def _title(tree: Any) -> str | None:
    from trafilatura.metadata import examine_meta, extract_title

    return examine_meta(tree).title or extract_title(tree) or None


def _language(text: str) -> str | None:
    import py3langid

    sample = text[:LANGUAGE_SAMPLE_CHARS]
    if not any(ch.isalpha() for ch in sample):
        return None
    language, _ = py3langid.classify(sample)
    return str(language)


def _row(result: FetchResult, text: str, title: str | None, date: str | None) -> dict:
    c = result.candidate
    return {
        "id": c.doc_id,
        "url": c.url,
        "canonical_url": c.canonical_url,
        "domain": c.domain,
        "submissions": [
            {"id": s.id, "subreddit": s.subreddit, "score": s.score, "created_utc": s.created_utc}
            for s in c.submissions
        ],
        "karma": c.karma,
        "created_utc": c.created_utc,
        "title": title,
        "date": date,
        "text": text,
        "language": _language(text),
        "n_chars": len(text),
        "n_words": count_words(text),
        "content_hash": content_hash(text),
        "fetch_time": result.fetch_time,
        "http_status": result.status,
        "source": result.source,
        "record": result.record,
    }


def _main_text(tree: Any, url: str, cfg: ExtractConfig, fast: bool) -> str:
    """trafilatura's main text of ``tree``; it works on a copy, so ``tree`` stays whole for a
    second pass and for the metadata."""
    import trafilatura

    document = trafilatura.bare_extraction(
        tree,
        url=url,
        fast=fast,
        favor_precision=cfg.favor_precision,
        favor_recall=cfg.favor_recall,
        include_comments=cfg.include_comments,
        include_tables=cfg.include_tables,
        deduplicate=False,  # trafilatura's cache is per process and order-dependent
        with_metadata=False,
    )
    return (document.text or "").strip() if document is not None else ""


def _extract(result: FetchResult, cfg: ExtractConfig) -> dict | Drop:
    from trafilatura.utils import load_html

    url = result.final_url or result.candidate.url
    if not result.body.strip():
        return Drop(EMPTY, where=url, detail="empty body")
    html = decode_body(result.body, result.encoding)
    if looks_binary(html):
        return Drop(BINARY, where=url)
    tree = load_html(html)
    if tree is None:
        return Drop(NOT_HTML, where=url)
    text = _main_text(tree, url, cfg, fast=cfg.fast)
    if cfg.fast and count_words(text) < cfg.fallback_below_words:
        text = _main_text(tree, url, cfg, fast=False) or text
    if not text:
        return Drop(EMPTY, where=url, detail="no main text")
    date = None
    if cfg.find_date:
        from htmldate import find_date

        date = find_date(tree, extensive_search=False, url=url)
    return _row(result, text, _title(tree), date)


def extract_document(result: FetchResult, cfg: ExtractConfig) -> dict | Drop:
    """One fetched page to a TEXT_SCHEMA row, or the Drop that says why not.

    Pure and exception-free: a failed fetch passes on its own outcome, an exception inside
    the extractors becomes ``extract.error`` with the exception's type as detail.
    """
    if not result.ok:
        failed = Drop(result.outcome, where=result.candidate.url, detail=result.error)
        return identified(failed, result)
    try:
        out = _extract(result, cfg)
    except Exception as e:  # one bad page must not fail the stage
        out = Drop(ERROR, where=result.final_url or result.candidate.url, detail=type(e).__name__)
    return identified(out, result) if isinstance(out, Drop) else out


def identified(drop: Drop, result: FetchResult) -> Drop:
    """The drop with the page's document id and URL as posted, for the drop log."""
    return dataclasses.replace(drop, id=result.candidate.doc_id, url=result.candidate.url)


_WARM_UP_PAGE = (
    b"<html lang='en'><head><title>Warm-up page</title>"
    b"<meta property='article:published_time' content='2019-02-14'></head><body><article>"
    + b"<p>This paragraph only loads the extractors and the language model once.</p>" * 8
    + b"</article></body></html>"
)


def warm_up() -> None:
    """Import the extractors and load py3langid's model before the first timed page."""
    from foundation.records import Candidate

    page = FetchResult(
        candidate=Candidate("0", "http://warm.up/", "http://warm.up/", "warm.up", 0, 0, ()),
        outcome="fetched",
        status=200,
        body=_WARM_UP_PAGE,
        encoding="utf-8",
    )
    extract_document(page, ExtractConfig())
