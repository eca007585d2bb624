"""The one typed configuration of a webtext job.

Every stage has a frozen dataclass here, validated in ``__post_init__`` so that a bad value
fails before any work starts, with the field and the value in the message. A job config
(:class:`JobConfig`) nests them; it loads from TOML, takes CLI overrides (one flag per field,
``--section-field``) and is written as JSON into the run directory, so a run can always be
reproduced from what it wrote.

This module imports nothing heavy: every stage and the CLI read it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from foundation.allow_list import AllowEntry, parse_allow_list
from foundation.errors import WebtextError

log = logging.getLogger(__name__)


class ConfigError(WebtextError, ValueError):
    """A configuration value is invalid; the message names the field and the value."""

    exit_code = 2


@functools.cache
def _deprecated(message: str) -> None:
    """Warn once per process (configs are rebuilt by every override)."""
    log.warning(message)


def _check(cond: bool, section: str, name: str, value: Any, why: str) -> None:
    if not cond:
        raise ConfigError(f"{section}.{name}={value!r}: {why}")


@dataclass(frozen=True)
class SourceConfig:
    """Where submissions come from: Pushshift dump files and/or the live API through praw."""

    dumps: tuple[str, ...] = ()
    """Dump files, globs or directories (.zst, .xz, .bz2, .gz, plain NDJSON)."""
    subreddits: tuple[str, ...] = ()
    """Subreddits to list live through praw (credentials from env vars or praw.ini)."""
    listing: Literal["new", "top", "hot"] = "new"
    time_filter: Literal["all", "year", "month", "week", "day", "hour"] = "all"
    limit: int = 1000
    """Submissions per subreddit from the live API (praw pages through them)."""
    reddit_url: str | None = None
    """Override of praw's ``reddit_url`` (a local API server in tests, a proxy)."""
    oauth_url: str | None = None
    """Override of praw's ``oauth_url``."""
    max_bad_fraction: float = 0.01
    """The job fails when more than this share of dump lines is malformed."""
    chunk_mb: int = 8
    """A dump is decompressed in one place into files of whole lines of about this size,
    which the workers parse in parallel (one element per file, so Beam's per-element cost is
    paid once per chunk, not per line)."""
    readers: int = 1
    """Readers per dump file: each decompresses the whole file and writes and parses every
    ``readers``-th chunk. Runners that split work only where the pipeline starts (Dask) parse a
    dump in this many tasks: set it to the number of workers there. 1 suits the local runner,
    which spreads the chunks itself."""

    def __post_init__(self) -> None:
        _check(self.limit > 0, "source", "limit", self.limit, "must be positive")
        _check(self.chunk_mb > 0, "source", "chunk_mb", self.chunk_mb, "must be positive")
        _check(self.readers > 0, "source", "readers", self.readers, "must be positive")
        _check(
            0.0 <= self.max_bad_fraction <= 1.0,
            "source",
            "max_bad_fraction",
            self.max_bad_fraction,
            "must be within [0, 1]",
        )


@dataclass(frozen=True)
class FilterConfig:
    """Which submissions and URLs go on to be fetched."""

    min_karma: int = 3
    """GPT-2's WebText kept links with at least 3 karma."""
    karma_aggregate: Literal["max", "sum"] = "max"
    """How the karma of a URL posted several times is combined. ``max`` is the default: it is
    the paper's reading (a link *received* at least 3 karma in some post), and ``sum`` lets
    spam reposted many times at 1 karma each pass the threshold."""
    drop_nsfw: bool = True
    exclude_wikipedia: bool = True
    """GPT-2 removed all Wikipedia articles (common in test sets); this drops every language
    edition, the mobile hosts and the rest of the Wikimedia family."""
    blocklist: str | None = None
    """A file of domains to exclude, one per line; ``None`` uses the packaged default."""
    bucket_postings: int = 250_000
    """URL dedup spills postings to hash buckets on disk and folds a run of buckets at a time:
    the fold count is the number of kept postings / this (at most 4096), so it bounds a fold's
    memory (about 0.5 KB a posting) whatever the input's size."""

    def __post_init__(self) -> None:
        _check(self.min_karma >= 0, "filter", "min_karma", self.min_karma, "must be >= 0")
        _check(
            self.bucket_postings > 0,
            "filter",
            "bucket_postings",
            self.bucket_postings,
            "must be positive",
        )
        _check(
            self.karma_aggregate in ("max", "sum"),
            "filter",
            "karma_aggregate",
            self.karma_aggregate,
            "must be 'max' or 'sum'",
        )


BACKENDS = ("live", "warc", "archive", "live+archive", "warc+archive")


@dataclass(frozen=True)
class FetchConfig:
    """How pages are fetched: live over HTTP, replayed from WARC files, or read from web
    archives (``archive``; ``live+archive`` falls back to them when a live fetch finds the page
    dead, ``warc+archive`` when the WARC has no page for it: not in it, or a 404, 410 or 5xx).
    The archives and how they are read are the ``[archive]`` section."""

    backend: Literal["live", "warc", "archive", "live+archive", "warc+archive"] = "live"
    warc_inputs: tuple[str, ...] = ()
    """WARC files, globs or directories to replay responses from (backend 'warc' or
    'warc+archive')."""
    replay_bucket_urls: int = 20_000
    """WARC replay joins the candidates with the WARCs' responses from key files on disk, one
    bucket of the canonical URLs at a time: the bucket count is (candidates + responses) / this
    (at most 4096), so it bounds a bucket task's memory (a few KB a URL) whatever the input's
    size. Each WARC's index is written in files of this many responses, for the same reason."""
    record_warc: bool = False
    """Live backend: keep the per-unit WARCs (``RUN/fetch/part-*.warc.gz``) after the run, so
    extraction can be rerun without refetching. They are always written, as the resume
    checkpoint; when False they are written faster with zstd (``part-*.warc.zst``) and removed
    once the shards manifest is committed."""
    concurrency: int = 32
    """Requests in flight per worker (fetching waits on the network, not the CPU)."""
    per_host_concurrency: int = 2
    per_host_delay_s: float = 1.0
    """Minimum delay between two requests to the same host from one worker."""
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 20.0
    total_timeout_s: float = 60.0
    max_bytes: int = 5 * 1024 * 1024
    """Body size cap, enforced while streaming (compressed bytes on the wire)."""
    max_decompressed_bytes: int = 20 * 1024 * 1024
    """Cap on the decoded body, against gzip/deflate/br bombs."""
    deadline_s: float | None = None
    """Overall limit per URL, across robots.txt, redirects, retries, their waits and the waits
    for a per-host slot (``fetch.deadline``, naming the stage it ended in). The other timeouts
    are per socket operation or per attempt. None: no overall limit. Since slot waits count, a
    unit with many URLs of one host needs more than their number x ``per_host_delay_s``."""
    max_redirects: int = 5
    retries: int = 3
    """Retries for 429/5xx and connection errors, with exponential backoff."""
    backoff_s: float = 1.0
    max_retry_after_s: float = 30.0
    """A 429 whose Retry-After asks for a longer wait is not retried (``fetch.http_429``)."""
    user_agent: str = "webtext/0.1 (+https://github.com/webtext/webtext)"
    respect_robots: bool = True
    allow_addresses: tuple[str, ...] = ()
    """Non-public addresses the fetcher may reach despite the SSRF guard: addresses, CIDR
    ranges, host names, each optionally ``:port`` (``127.0.0.1:8080``, ``10.0.0.0/8``,
    ``mirror.intranet:443``). Empty: every loopback, private, link-local, multicast and
    reserved address is refused. Link-local and cloud-metadata addresses (169.254.169.254) are
    opened only by an entry within their block, never by a wider one (foundation.allow_list)."""
    max_failure_fraction: float = 0.9
    """A job in which a larger share of its URLs fail to fetch (any ``fetch.*`` outcome: HTTP
    errors, timeouts, robots.txt...) ends with an error once its shards are written: a crawl
    that loses nearly everything is broken (network, proxy, addresses refused), not unlucky.
    1.0: never."""
    allow_private_addresses: bool = False
    """Deprecated (use ``allow_addresses``; removed in the next release): True allows every
    non-public address except link-local and cloud-metadata ones, as
    ``allow_addresses = ["0.0.0.0/0", "::/0"]`` does."""

    @property
    def replays(self) -> bool:
        """Whether pages are replayed from ``warc_inputs`` rather than fetched per unit."""
        return self.backend in ("warc", "warc+archive")

    @property
    def reads_archives(self) -> bool:
        """Whether the ``[archive]`` section is read (alone, or for dead links)."""
        return self.backend in ("archive", "live+archive", "warc+archive")

    def __post_init__(self) -> None:
        _check(
            self.backend in BACKENDS,
            "fetch",
            "backend",
            self.backend,
            f"must be one of {list(BACKENDS)}",
        )
        for name in (
            "concurrency",
            "per_host_concurrency",
            "max_bytes",
            "max_decompressed_bytes",
            "replay_bucket_urls",
        ):
            value = getattr(self, name)
            _check(value > 0, "fetch", name, value, "must be positive")
        for name in ("connect_timeout_s", "read_timeout_s", "total_timeout_s"):
            value = getattr(self, name)
            _check(value > 0, "fetch", name, value, "must be positive")
        _check(
            self.deadline_s is None or self.deadline_s > 0,
            "fetch",
            "deadline_s",
            self.deadline_s,
            "must be positive (or unset: no overall limit)",
        )
        for name in (
            "max_redirects",
            "retries",
            "per_host_delay_s",
            "backoff_s",
            "max_retry_after_s",
        ):
            value = getattr(self, name)
            _check(value >= 0, "fetch", name, value, "must be >= 0")
        _check(
            0 <= self.max_failure_fraction <= 1,
            "fetch",
            "max_failure_fraction",
            self.max_failure_fraction,
            "must be between 0 and 1",
        )
        try:
            parse_allow_list(self.allow_addresses)
        except ValueError as e:
            raise ConfigError(f"fetch.allow_addresses: {e}") from e
        if self.allow_private_addresses:
            _deprecated(
                "fetch.allow_private_addresses is deprecated and goes in the next release: "
                'use fetch.allow_addresses (e.g. ["127.0.0.1:8080"] or ["10.0.0.0/8"])'
            )

    @property
    def allow_list(self) -> tuple[AllowEntry, ...]:
        """``allow_addresses`` parsed, with what the deprecated boolean stands for."""
        legacy = ("0.0.0.0/0", "::/0") if self.allow_private_addresses else ()
        return parse_allow_list(self.allow_addresses + legacy)


KNOWN_ARCHIVES = {
    "wayback": ("https://web.archive.org/cdx/search/cdx", "replay:https://web.archive.org/web"),
    "commoncrawl": (
        "https://index.commoncrawl.org/{crawl}-index",
        "warc:https://data.commoncrawl.org/",
    ),
}
"""The archives known by name: their CDX endpoint and content route."""


@dataclass(frozen=True)
class ArchiveSource:
    """One entry of ``archive.sources``, parsed: where to look a URL up and read its bytes.

    ``route`` is ``replay`` (``CONTENT/<timestamp>id_/<url>``, the original bytes, as pywb and
    the Wayback Machine serve them) or ``warc`` (the record by byte range at ``CONTENT +
    filename``, as Common Crawl serves it).
    """

    name: str
    cdx_url: str
    route: Literal["replay", "warc"]
    content: str


def parse_archive_source(entry: str) -> ArchiveSource:
    """``wayback``, ``commoncrawl:CC-MAIN-2017-51``, ``NAME=CDX_URL`` (replay next to the CDX
    endpoint, as pywb lays it out: ``.../coll/cdx`` replays at ``.../coll``) or
    ``NAME=CDX_URL CONTENT`` with CONTENT ``replay:URL`` or ``warc:URL``; ValueError if not."""
    name, eq, rest = entry.strip().partition("=")
    name = name.strip()
    if not eq:
        base, _, crawl = name.partition(":")
        if base not in KNOWN_ARCHIVES:
            raise ValueError(
                f"{entry!r}: not a known archive {sorted(KNOWN_ARCHIVES)} nor NAME=CDX_URL"
            )
        if (base == "commoncrawl") != bool(crawl):
            why = "name a crawl: commoncrawl:CC-MAIN-2017-51" if crawl == "" else "takes no ':'"
            raise ValueError(f"{entry!r}: {base} {why}")
        cdx, content = KNOWN_ARCHIVES[base]
        rest = f"{cdx.format(crawl=crawl)} {content}"
    if not name or not all(ch.isalnum() or ch in "-_.:" for ch in name):
        raise ValueError(f"{entry!r}: the name must be letters, digits, '-', '_', '.' or ':'")
    cdx_url, _, content = rest.strip().partition(" ")
    if not cdx_url.startswith(("http://", "https://")):
        raise ValueError(f"{entry!r}: the CDX endpoint must be an http(s) URL")
    content = content.strip()
    if not content:
        prefix = cdx_url.rstrip("/")
        for suffix in ("/cdx", "-cdx", "/cdx/search/cdx"):
            if prefix.endswith(suffix):
                content = "replay:" + prefix[: -len(suffix)]
                break
        else:
            raise ValueError(f"{entry!r}: say where captures are read: CDX_URL replay:URL|warc:URL")
    route, _, where = content.partition(":")
    if route not in ("replay", "warc") or not where.startswith(("http://", "https://")):
        raise ValueError(f"{entry!r}: content must be replay:URL or warc:URL, not {content!r}")
    return ArchiveSource(name, cdx_url, route, where.rstrip("/") if route == "replay" else where)


def parse_as_of(value: str) -> int | None:
    """``submission`` -> None (each URL's submission time); ``YYYY-MM-DD`` -> unix s (00:00 UTC)."""
    if value == "submission":
        return None
    import datetime as dt

    day = dt.datetime.strptime(value, "%Y-%m-%d")
    return int(day.replace(tzinfo=dt.UTC).timestamp())


@dataclass(frozen=True)
class ArchiveConfig:
    """Web archives to read pages from (``fetch.backend`` ``archive``, ``live+archive`` or
    ``warc+archive``).

    Each URL is looked up in ``sources`` in order (one CDX query per source, cached); the first
    source with a usable capture (HTTP 200, or a revisit of one, or a redirect leading to one)
    within ``max_skew_days`` of the target time gives the page. Requests go through the live
    fetcher's guard and caps; these settings throttle them per archive host, since public
    archives refuse clients that ask too fast.
    """

    sources: tuple[str, ...] = ("wayback",)
    """In order: ``wayback``, ``commoncrawl:CC-MAIN-YYYY-WW`` (one crawl's index), or any CDX
    server as ``NAME=CDX_URL`` (a pywb collection: ``local=http://host:8080/coll/cdx``), with an
    optional content route after a space: ``replay:URL`` (``URL/<ts>id_/<url>``) or ``warc:URL``
    (WARC records by byte range at ``URL<filename>``)."""
    as_of: str = "submission"
    """Target time of a capture: ``submission`` (the URL's first submission) or ``YYYY-MM-DD``
    (``2017-12-31``: the web as WebText saw it)."""
    max_skew_days: float = 365.0
    """A capture further than this from the target time is not used (``archive.too_far``)."""
    max_captures: int = 25
    """Captures asked per CDX query (the nearest to the target time first)."""
    requests_per_s: float = 1.0
    """Request starts per second to one archive host, from one worker."""
    concurrency: int = 2
    """Requests in flight to one archive host, from one worker."""
    retries: int = 4
    """Retries of a request that got 429, 5xx or a connection error."""
    backoff_s: float = 2.0
    """First retry wait, doubled each retry; a 429's or 503's Retry-After replaces it."""
    max_retry_after_s: float = 120.0
    """A longer Retry-After ends the retries (``archive.rate_limited``)."""
    cache_dir: str = ""
    """Where CDX answers are kept, so a rerun does not ask again; empty: ``RUN/fetch/lookups``."""
    columnar_index: str = ""
    """Common Crawl's columnar URL index (Parquet files, a directory or a glob, local or
    ``s3://commoncrawl/cc-index/table/cc-main/warc/crawl=CC-MAIN-YYYY-WW/``) to join all
    candidates against once, instead of a CDX query per URL to the first source read by byte
    range; empty: CDX queries."""

    def __post_init__(self) -> None:
        _check(bool(self.sources), "archive", "sources", self.sources, "name at least one archive")
        names = []
        for entry in self.sources:
            try:
                names.append(parse_archive_source(entry).name)
            except ValueError as e:
                raise ConfigError(f"archive.sources: {e}") from e
        _check(
            len(set(names)) == len(names), "archive", "sources", self.sources, "names must differ"
        )
        try:
            parse_as_of(self.as_of)
        except ValueError:
            _check(False, "archive", "as_of", self.as_of, "must be 'submission' or YYYY-MM-DD")
        for name in ("max_skew_days", "requests_per_s"):
            value = getattr(self, name)
            _check(value > 0, "archive", name, value, "must be positive")
        for name in ("max_captures", "concurrency"):
            value = getattr(self, name)
            _check(value > 0, "archive", name, value, "must be positive")
        for name in ("retries", "backoff_s", "max_retry_after_s"):
            value = getattr(self, name)
            _check(value >= 0, "archive", name, value, "must be >= 0")
        _check(
            not self.columnar_index or any(s.route == "warc" for s in self.archives),
            "archive",
            "columnar_index",
            self.columnar_index,
            "its captures are read by byte range: archive.sources must name a crawl read so "
            "(commoncrawl:CC-MAIN-YYYY-WW, or NAME=CDX_URL warc:DATA_URL)",
        )

    @property
    def archives(self) -> tuple[ArchiveSource, ...]:
        return tuple(parse_archive_source(e) for e in self.sources)

    @property
    def target_time(self) -> int | None:
        """The fixed target time (unix s), or None: each URL's submission time."""
        return parse_as_of(self.as_of)


@dataclass(frozen=True)
class ExtractConfig:
    """Main-text extraction with trafilatura.

    The defaults (balanced mode, tables in, comments out; fast first, the fallback extractors
    for short results) score a higher F1 than trafilatura's own defaults on the corpus's gold
    pages, at less CPU per page (``bench/extraction_quality.py``; figures in
    docs/benchmarks.md).
    """

    timeout_s: float = 10.0
    """A page whose extraction takes longer is dropped (``extract.timeout``) and its child
    process replaced. What counts is the child's own CPU time on the page (wall-clock time where
    it cannot be read; pipeline.sandbox), not the fetcher's or the machine's load; a result that
    is complete is always kept."""
    processes: int = 2
    """Extraction child processes per DoFn instance (per worker on the default runner), each
    working on its own page. Two keep a worker's cores busy while it fetches and writes, and let
    the worker whose share of the input runs longest use the cores the others have left
    (docs/benchmarks.md). The same on every runner: a list of pages is extracted within one
    call, so nothing is left to emit when a bundle ends."""
    favor_precision: bool = False
    favor_recall: bool = False
    include_tables: bool = True
    include_comments: bool = False
    fast: bool = True
    """trafilatura's ``fast`` mode first: no fallback extractors (readability, jusText)."""
    fallback_below_words: int = 128
    """In fast mode, a page whose text has fewer words is extracted again with the fallback
    extractors. Short results are where they help, and what the quality filter would drop;
    longer pages keep fast mode's result, which costs less CPU. 0: never fall back."""
    find_date: bool = True
    """Look for a publication date with htmldate's quick search (page header, JSON-LD, URL)."""

    def __post_init__(self) -> None:
        _check(self.timeout_s > 0, "extract", "timeout_s", self.timeout_s, "must be positive")
        _check(self.processes >= 1, "extract", "processes", self.processes, "must be >= 1")
        _check(
            self.fallback_below_words >= 0,
            "extract",
            "fallback_below_words",
            self.fallback_below_words,
            "must be >= 0",
        )
        _check(
            not (self.favor_precision and self.favor_recall),
            "extract",
            "favor_precision",
            self.favor_precision,
            "favor_precision and favor_recall exclude each other",
        )


@dataclass(frozen=True)
class QualityConfig:
    """Document-level quality filters, each counted by rule."""

    min_words: int = 128
    """OpenWebText dropped documents under 128 tokens; words are counted here (cheaper than
    BPE and close to it for English prose)."""
    max_chars: int = 1_000_000
    languages: tuple[str, ...] = ()
    """Keep only these languages (ISO 639-1, as trafilatura reports them); empty keeps all."""

    def __post_init__(self) -> None:
        _check(self.min_words >= 0, "quality", "min_words", self.min_words, "must be >= 0")
        _check(self.max_chars > 0, "quality", "max_chars", self.max_chars, "must be positive")


@dataclass(frozen=True)
class DedupConfig:
    """Exact and MinHash-LSH near-duplicate removal."""

    exact: bool = True
    near: bool = True
    num_perm: int = 128
    threshold: float = 0.7
    """Jaccard similarity of word 5-gram sets at which two documents are duplicates: between
    text-dedup's 0.7 and datatrove's ~0.72; precision and recall in docs/benchmarks.md."""
    ngram: int = 5
    seed: int = 1
    bands: int | None = None
    """LSH bands; ``None`` picks datasketch's optimal (bands, rows) for the threshold."""
    rows: int | None = None
    fn_weight: float = 0.9
    """datasketch's false-negative weight when choosing (bands, rows) (false positives get
    1 - it). Verification removes false positives, so missed pairs are the costly error:
    0.9 gives 20x6 at 0.7, 98% candidate recall at Jaccard 0.75 (0.5 gives 14x9, 67%)."""
    verify: Literal["exact", "estimate", "none"] = "exact"
    """Check each LSH candidate pair: ``exact`` Jaccard of the shingle sets, the MinHash
    ``estimate``, or ``none`` (every candidate pair is a duplicate)."""
    cc_rounds: int = 12
    """Rounds (large-star + small-star) of the distributed connected components; the stage
    fails, naming this setting, if clusters have not converged after them."""
    bucket_docs: int = 50_000
    """``webtext dedup`` groups content hashes and LSH band keys from key files on disk, one
    bucket of the key space at a time: the bucket count is the number of documents / this, so
    it bounds a bucket task's memory (about 0.6 KB a document) whatever the input's size."""
    index: str | None = None
    """A persisted signature/band index of an existing corpus to deduplicate against."""
    write_index: str | None = None
    """Add this run's surviving documents to the index here (created if absent; the same path
    as ``index`` extends it in place, so next month's run deduplicates against this one)."""

    def __post_init__(self) -> None:
        _check(self.num_perm > 0, "dedup", "num_perm", self.num_perm, "must be positive")
        _check(0 < self.threshold < 1, "dedup", "threshold", self.threshold, "must be in (0, 1)")
        _check(self.ngram > 0, "dedup", "ngram", self.ngram, "must be positive")
        _check(0 < self.fn_weight < 1, "dedup", "fn_weight", self.fn_weight, "must be in (0, 1)")
        _check(
            self.verify in ("exact", "estimate", "none"),
            "dedup",
            "verify",
            self.verify,
            "must be 'exact', 'estimate' or 'none'",
        )
        _check(self.cc_rounds > 0, "dedup", "cc_rounds", self.cc_rounds, "must be positive")
        _check(self.bucket_docs > 0, "dedup", "bucket_docs", self.bucket_docs, "must be positive")
        _check(
            (self.bands is None) == (self.rows is None),
            "dedup",
            "bands",
            self.bands,
            "set bands and rows together, or neither",
        )
        if self.bands is not None and self.rows is not None:
            _check(
                self.bands * self.rows <= self.num_perm,
                "dedup",
                "bands",
                self.bands,
                f"bands*rows={self.bands * self.rows} exceeds num_perm={self.num_perm}",
            )


@dataclass(frozen=True)
class ContaminationConfig:
    """The GPT-2 Bloom-filter n-gram overlap check, and the gate the trainer respects."""

    test_sets: tuple[str, ...] = ()
    """``NAME=PATH`` pairs (text, JSONL, Parquet or folders of them)."""
    n: int = 8
    fp_rate: float = 1e-8
    max_overlap_pct: float = 100.0
    """The trainer refuses shards whose worst test-set overlap is above this."""
    decontaminate_n: int = 13
    """Decontamination drops training documents sharing any n-gram of this length."""
    text_docs: Literal["file", "line", "paragraph"] = "file"
    """Plain-text inputs: the whole file is one document, or each line, or each paragraph."""
    field: str = "text"
    """The JSONL field / Parquet column holding a test set's text."""
    workers: int = 0
    """Processes building the filter; 0 uses every core."""
    chunk_mb: float = 16.0
    """Text per unit of work when building the filter: big files are cut into parts of about
    this size on document boundaries, so every worker shares them; a worker holds about 6x
    this in memory (text, n-gram hashes, sorting)."""

    def __post_init__(self) -> None:
        _check(self.n > 0, "contamination", "n", self.n, "must be positive")
        _check(
            self.decontaminate_n > 0,
            "contamination",
            "decontaminate_n",
            self.decontaminate_n,
            "must be positive",
        )
        _check(
            self.text_docs in ("file", "line", "paragraph"),
            "contamination",
            "text_docs",
            self.text_docs,
            "must be 'file', 'line' or 'paragraph'",
        )
        _check(bool(self.field), "contamination", "field", self.field, "must not be empty")
        _check(self.workers >= 0, "contamination", "workers", self.workers, "must be >= 0")
        _check(self.chunk_mb > 0, "contamination", "chunk_mb", self.chunk_mb, "must be positive")
        _check(0 < self.fp_rate < 1, "contamination", "fp_rate", self.fp_rate, "must be in (0, 1)")
        _check(
            0 <= self.max_overlap_pct <= 100,
            "contamination",
            "max_overlap_pct",
            self.max_overlap_pct,
            "must be a percentage",
        )


@dataclass(frozen=True)
class OutputConfig:
    """Where and how shards are written, and how Beam runs."""

    run_dir: str = "runs/default"
    format: Literal["parquet", "arrow"] = "parquet"
    shard_docs: int = 10_000
    """Documents per text shard."""
    unit_urls: int = 500
    """URLs per fetch work unit: a killed job refetches at most the units in flight."""
    workers: int = 0
    """DirectRunner worker processes; 0 uses every core."""
    beam_args: tuple[str, ...] = ()
    """Beam pipeline options passed through as they are (``--runner=...`` and the rest)."""
    max_drops_per_rule: int | None = None
    """Rows the drop log (``RUN/drops/``) keeps per rule and stage; None keeps every one (the
    manifest's counts stay exact either way)."""

    def __post_init__(self) -> None:
        _check(
            self.format in ("parquet", "arrow"),
            "output",
            "format",
            self.format,
            "must be 'parquet' or 'arrow'",
        )
        _check(self.shard_docs > 0, "output", "shard_docs", self.shard_docs, "must be positive")
        _check(self.unit_urls > 0, "output", "unit_urls", self.unit_urls, "must be positive")
        _check(self.workers >= 0, "output", "workers", self.workers, "must be >= 0")
        _check(
            self.max_drops_per_rule is None or self.max_drops_per_rule > 0,
            "output",
            "max_drops_per_rule",
            self.max_drops_per_rule,
            "must be positive (or unset: keep every row)",
        )


@dataclass(frozen=True)
class TokenizeConfig:
    """Byte-level BPE and text shards -> token shards (``webtext tokenize``)."""

    vocab_size: int = 50257
    """Ids including ``<|endoftext|>``: GPT-2's 256 bytes + 50,000 merges + 1."""
    tokenizer: str | None = None
    """A ``tokenizer.json`` to use as it is; with neither this nor vocab/merges, one is trained
    on the shards' training split."""
    vocab: str | None = None
    """GPT-2 layout ``vocab.json`` (with ``merges``): load GPT-2's own BPE files."""
    merges: str | None = None
    train_sample_bytes: int = 200_000_000
    """UTF-8 bytes of training-split text the BPE is trained on (documents in shard order)."""
    min_frequency: int = 2
    """A pair must occur this often in the sample to become a merge."""
    val_fraction: float = 0.005
    """Share of documents held out for validation, chosen by a stable hash of the document id."""
    split_seed: int = 0
    """Salt of that hash: another seed gives another (equally stable) split."""
    workers: int = 0
    """Worker processes encoding text shards in parallel; 0 uses every core."""
    shard_tokens: int = 100_000_000
    """Tokens per token shard (the last one of each split holds the rest)."""

    def __post_init__(self) -> None:
        _check(self.vocab_size > 257, "tokenize", "vocab_size", self.vocab_size, "must be > 257")
        _check(
            self.vocab_size <= 1 << 32,
            "tokenize",
            "vocab_size",
            self.vocab_size,
            "must fit in uint32",
        )
        _check(
            (self.vocab is None) == (self.merges is None),
            "tokenize",
            "vocab",
            self.vocab,
            "give vocab and merges together, or neither",
        )
        _check(
            self.tokenizer is None or self.vocab is None,
            "tokenize",
            "tokenizer",
            self.tokenizer,
            "give a tokenizer.json or vocab+merges, not both",
        )
        for name in ("train_sample_bytes", "shard_tokens"):
            value = getattr(self, name)
            _check(value > 0, "tokenize", name, value, "must be positive")
        _check(
            self.min_frequency >= 0,
            "tokenize",
            "min_frequency",
            self.min_frequency,
            "must be >= 0",
        )
        _check(
            0.0 <= self.val_fraction < 1.0,
            "tokenize",
            "val_fraction",
            self.val_fraction,
            "must be within [0, 1)",
        )
        _check(self.workers >= 0, "tokenize", "workers", self.workers, "must be >= 0")


@dataclass(frozen=True)
class ModelConfig:
    """The GPT-2 to train: a named size, with any dimension overridden."""

    name: Literal["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "small", "tiny"] = "gpt2"
    """The paper's 124M/355M/774M/1.5B (``gpt2``...``gpt2-xl``), or ``small``/``tiny`` for CPU."""
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    block_size: int | None = None
    """Context length; ``None`` keeps the named size's (1024 for the paper's)."""
    vocab_size: int | None = None
    """``None``: the token shards' vocabulary rounded up to a multiple of 64 (faster matmuls;
    the extra ids are never targets)."""
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
            value = getattr(self, name)
            _check(value is None or value > 0, "model", name, value, "must be positive")
        _check(0.0 <= self.dropout < 1.0, "model", "dropout", self.dropout, "must be in [0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    """The training loop (``webtext train``): optimiser, schedule, batches, evaluation."""

    batch_size: int = 8
    """Sequences per micro-batch on each process."""
    batch_tokens: int = 0
    """Target tokens per optimiser step over all processes, reached by gradient accumulation;
    must be a multiple of batch_size * block_size * processes. 0: one micro-batch per process."""
    lr: float = 6e-4
    min_lr: float = 6e-5
    warmup_steps: int = 100
    """Linear warmup from 0 to ``lr``, then cosine decay to ``min_lr`` at ``max_steps``."""
    max_steps: int = 2000
    weight_decay: float = 0.1
    """AdamW decay, on matrices only (not biases or LayerNorm gains)."""
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    """Clip the global gradient norm to this; 0 disables clipping."""
    eval_interval: int = 100
    """Evaluate on the validation split every this many steps (and at the end)."""
    eval_steps: int = 20
    """Micro-batches per process in one evaluation."""
    checkpoint_interval: int = 500
    """Write a checkpoint every this many steps (and at the end, and on SIGTERM)."""
    log_interval: int = 10
    """Read the losses from the device every this many steps: the one wait on the GPU (and the
    NaN check, and under torchrun the SIGTERM agreement) happens there, not every step."""
    compile: bool = False
    """``torch.compile`` the model (a cold compile costs seconds to minutes)."""
    device: str = "auto"
    """``auto`` (cuda when available, else cpu), ``cpu``, ``cuda``, ``cuda:1``..."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Autocast dtype; ``auto`` is bfloat16 on CUDA and float32 on CPU."""
    seed: int = 1337
    allow_contaminated: bool = False
    """Train even when the contamination report is missing, stale or over the threshold."""
    max_overlap_pct: float | None = None
    """Gate threshold; ``None`` uses ``contamination.max_overlap_pct``."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_steps", "eval_interval", "eval_steps"):
            value = getattr(self, name)
            _check(value > 0, "train", name, value, "must be positive")
        for name in ("checkpoint_interval", "log_interval"):
            value = getattr(self, name)
            _check(value > 0, "train", name, value, "must be positive")
        for name in ("batch_tokens", "warmup_steps", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            _check(value >= 0, "train", name, value, "must be >= 0")
        _check(self.lr > 0, "train", "lr", self.lr, "must be positive")
        _check(0 <= self.min_lr <= self.lr, "train", "min_lr", self.min_lr, "must be in [0, lr]")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            _check(0 <= value < 1, "train", name, value, "must be in [0, 1)")
        _check(
            self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
            "train",
            "device",
            self.device,
            "must be auto, cpu, cuda[:N] or mps",
        )
        _check(
            self.max_overlap_pct is None or 0 <= self.max_overlap_pct <= 100,
            "train",
            "max_overlap_pct",
            self.max_overlap_pct,
            "must be a percentage",
        )


@dataclass(frozen=True)
class EvalConfig:
    """Zero-shot evaluation (``webtext eval``): how test texts are scored and flagged."""

    stride: int = 0
    """Targets a sliding window advances by; each token then has at least block_size - stride
    tokens of context. Smaller is better-informed, slower and lower in perplexity: the figure
    depends on it. 0: half the model's block_size."""
    batch_size: int = 8
    """Windows or examples per forward pass."""
    n: int = 8
    """An example is dirty when any normalised n-gram of it is in the training filter."""
    detokenize: Literal["none", "wikitext", "ptb"] = "none"
    """Undo a tokenised release's spacing conventions before the byte-level BPE sees it."""
    lm_unit: Literal["paragraph", "line", "file"] = "paragraph"
    """Plain-text LM files are scored as one stream; this is the example unit for flags."""
    placeholder: str = "XXXXX"
    """The blank in cloze questions."""
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """``auto``: bfloat16 autocast on CUDA, float32 on CPU."""

    def __post_init__(self) -> None:
        _check(self.stride >= 0, "eval", "stride", self.stride, "must be >= 0")
        _check(self.n > 0, "eval", "n", self.n, "must be positive")
        _check(self.batch_size > 0, "eval", "batch_size", self.batch_size, "must be positive")
        for name, allowed in (
            ("detokenize", ("none", "wikitext", "ptb")),
            ("lm_unit", ("paragraph", "line", "file")),
            ("dtype", ("auto", "float32", "bfloat16")),
        ):
            value = getattr(self, name)
            _check(value in allowed, "eval", name, value, f"must be one of {list(allowed)}")
        _check(bool(self.placeholder), "eval", "placeholder", self.placeholder, "must not be empty")
        _check(
            self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
            "eval",
            "device",
            self.device,
            "must be auto, cpu, cuda[:N] or mps",
        )


@dataclass(frozen=True)
class JobConfig:
    """A whole webtext job: every stage's settings in one place."""

    name: str = "default"
    source: SourceConfig = field(default_factory=SourceConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    contamination: ContaminationConfig = field(default_factory=ContaminationConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobConfig:
        return from_dict(cls, data)

    @classmethod
    def from_toml(cls, path: str | Path) -> JobConfig:
        """Load a job file: TOML, or the JSON a run records in ``RUN/config/`` (by suffix)."""
        try:
            with open(path, "rb") as f:
                data = json.load(f) if str(path).endswith(".json") else tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from e
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid JSON: {e}") from e
        except OSError as e:
            raise ConfigError(f"{path}: cannot read the config ({e.strerror})") from e
        return from_dict(cls, data, where=str(path))


# --- generic dataclass <-> dict/flags plumbing -------------------------------------------------


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Convert a TOML/JSON/CLI value to the field's declared type, or raise ConfigError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}={value!r}: must be one of {list(args)}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}={value!r}: expected a list")
        return tuple(_coerce(args[0], v, where) for v in value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return from_dict(tp, value, where=where)
    if tp is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}={value!r}: expected true or false")
    if tp in (int, float, str):
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{where}={value!r}: expected an integer")
        if isinstance(value, bool) and tp is not str:
            raise ConfigError(f"{where}={value!r}: expected a {tp.__name__}")
        try:
            return tp(value)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}={value!r}: expected a {tp.__name__}") from e
    return value


def from_dict(cls: type, data: Mapping[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a nested mapping; unknown keys are errors, not ignored."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        label = f"{where}.{name}" if where else name
        kwargs[name] = _coerce(hints[name], value, label)
    return cls(**kwargs)


@functools.cache
def flag_fields(cls: type = JobConfig) -> tuple[tuple[str, str, Any], ...]:
    """Every leaf field as (flag, dotted path, type): ``fetch-max-bytes``, ``fetch.max_bytes``.

    Cached: the CLI asks once per config section when it builds its parser, and resolving the
    type hints each time made every ``webtext`` call (and CLI test) about a second slower.
    """
    out = []
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            for flag, path, sub in flag_fields(tp):
                out.append((f"{f.name}-{flag}", f"{f.name}.{path}", sub))
        else:
            out.append((f.name.replace("_", "-"), f.name, tp))
    return tuple(out)


def with_overrides(cfg: Any, overrides: Mapping[str, Any]) -> Any:
    """Return ``cfg`` with dotted-path overrides applied (values are coerced and validated)."""
    nested: dict[str, Any] = {}
    for path, value in overrides.items():
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            nested[head] = value
    hints = typing.get_type_hints(type(cfg))
    changes = {}
    for name, value in nested.items():
        if name not in hints:
            raise ConfigError(f"unknown setting {name!r}")
        if dataclasses.is_dataclass(hints[name]) and isinstance(value, dict):
            changes[name] = with_overrides(getattr(cfg, name), value)
        else:
            changes[name] = _coerce(hints[name], value, name)
    return dataclasses.replace(cfg, **changes)
