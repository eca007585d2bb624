"""Capacity planning: what a run of a given size needs in storage, shuffle, memory, time, tokens.

``plan(Target(links, docs, text_bytes))`` multiplies a target corpus (WebText: 45M links, 8M
documents, 40 GB of text) by per-item figures (:class:`Figures`, each naming where it was
measured) and by the job's own settings (MinHash ``num_perm`` and banding, Bloom ``fp_rate``),
and returns :class:`Line` rows that ``webtext plan`` prints for 1x and a larger scale. Time and
peak memory per stage come from rates measured at size on the reference machine
(:class:`StageRate`, docs/benchmarks.md "bench/scale.py").

Imports nothing heavy: the banding optimum comes from datasketch only when asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from foundation.config import ContaminationConfig, DedupConfig


@dataclass(frozen=True)
class StageRate:
    """How fast one stage ran at size on the reference machine (2 cores, 2 workers), and its
    peak memory (whole process tree) as ``fixed + per_item x items``: a stage whose memory is
    bounded by its settings has ``peak_bytes_per_item`` 0."""

    items_per_s: float
    peak_fixed_bytes: float
    peak_bytes_per_item: float = 0.0

    def seconds(self, items: float) -> float:
        return items / self.items_per_s

    def peak_bytes(self, items: float) -> float:
        return self.peak_fixed_bytes + self.peak_bytes_per_item * items


@dataclass(frozen=True)
class Figures:
    """Per-item constants of the plan. Update them from the benchmarks named on each."""

    dump_bytes_per_submission: float = 462.0
    """zstd bytes per submission line in a Pushshift dump (newer layout, 3.0 KB raw):
    bench/plan_figures.py recompresses the corpus' pushshift-importer sample at level 19 (31
    lines, so an upper bound; the 2005 layout gives 172 bytes from 1.7 KB)."""
    submissions_per_link: float = 4.0
    """Submissions read per link kept (karma, self posts, NSFW, media, Wikipedia, reposts).
    An assumption, not a measurement: pass ``submissions`` explicitly when known."""
    warc_bytes_per_page: float = 28_900.0
    """Gzipped WARC record per fetched page: bench/plan_figures.py, 28.4 KB mean gzip size of
    the 602 pages of ../shared/corpus/pages (144 KB raw HTML), plus ~0.5 KB of WARC and HTTP
    headers (estimated)."""
    parquet_text_ratio: float = 0.43
    """Parquet (zstd) bytes per byte of UTF-8 text: bench/plan_figures.py on trafilatura's text
    of the corpus pages (557 documents of 128+ words)."""
    shard_meta_bytes_per_doc: float = 200.0
    """Compressed non-text columns per document (id, urls, domain, submissions, title, times,
    hashes): estimated from the text-shard schema (foundation/write.py), not yet measured."""
    tokens_per_byte: float = 0.25
    """BPE tokens per UTF-8 byte: bench/plan_figures.py trains a byte-level BPE (up to 50,257
    ids) on half of the corpus pages' text and encodes the other half: 0.246. (OpenWebText's
    ~9B GPT-2 tokens from ~38 GB of English are 0.24.)"""
    token_bytes: int = 2
    """Bytes per token id in token shards: uint16 holds vocabularies up to 65,536."""
    bytes_per_word: float = 7.0
    """UTF-8 bytes per whitespace-separated word of extracted text: bench/plan_figures.py on
    the corpus pages (6.98; they are mostly German, English prose is nearer 6)."""
    distinct_ngrams_per_word: float = 0.97
    """Distinct word 8-grams per word of text (bench/plan_figures.py, corpus pages): nearly
    every position starts a new one; the Bloom filter holds the distinct ones."""
    url_bytes: float = 86.0
    """Mean URL length (bench/plan_figures.py): the real page URLs of the corpus' gold.json."""
    submission_ref_bytes: float = 40.0
    """Submission id, subreddit and score carried with each URL through URL dedup."""
    doc_id_bytes: int = 32
    """Document id: 128-bit blake2b of the canonical URL as hex (dedup/urls.py)."""
    record_overhead_bytes: float = 16.0
    """Per shuffled record: key/value framing and lengths in Beam's coders."""
    signature_value_bytes: int = 4
    """One MinHash value: uint32 (dedup/minhash.py)."""
    band_hash_bytes: int = 8
    """One LSH band key: 64-bit xxh3 of the band's values (dedup/minhash.py)."""
    shingle_hash_bytes: int = 4
    """One shingle hash kept for exact verification: uint32 (dedup/index.py)."""
    url_stage: StageRate = StageRate(9_500, 0.9e9)
    """The ingest URL stage per submission read: bench/scale_ingest.py, 1.6M in 169 s at
    881 MB, 1.07x the memory of 400k (docs/benchmarks.md)."""
    pages: StageRate = StageRate(118, 1.95e9, 57_000)
    """WARC replay, extraction, quality and in-pipeline dedup per page: bench/scale_pages.py,
    5k and 20k pages (2.23 and 3.08 GB; 20k in about 170 s). Live fetching is bound by the
    sites' speed and politeness, not by this figure."""
    dedup: StageRate = StageRate(2_330, 1.57e9, 2_160)
    """``webtext dedup`` per document: bench/scale_month.py, 1M documents in 429 s on a quiet
    machine; peak: bench/scale_dedup.py and scale_month.py at 80k, 320k and 1M documents
    (1.24, 2.26 and 3.73 GB, 2026-12-05), the line through the last two (the scan is flat,
    what follows grows with the duplicates removed; docs/benchmarks.md)."""
    contamination: StageRate = StageRate(18.9e6, 0.86e9)
    """``webtext contamination check`` per byte of training text: bench/scale_cont.py on a quiet
    machine, 400 MB at 18.9 MB/s (the filter is filled through memory-mapped block ranges,
    never held whole); peak: bench/scale_month.py, 175 MB and 5.06 GB of text (1M documents,
    a 3.96 GB filter) at 836 and 856 MB, so bounded by settings."""
    tokenize: StageRate = StageRate(3.58e6, 0.84e9)
    """``webtext tokenize`` per byte of text: bench/tokenize_speed.py (real text; the generated
    month is faster, its words are whole tokens); peak: bench/scale_month.py, 175 MB and
    5.06 GB of text (40k and 1M documents) with 2 workers at 729 and 842 MB; packing is bounded
    by ``shard_tokens``, encoding by one text shard per worker."""


@dataclass(frozen=True)
class Target:
    """The size of a corpus to build."""

    links: float
    """Candidate links fetched (after karma, filters and URL dedup)."""
    docs: float
    """Documents kept after extraction, quality filters and dedup."""
    text_bytes: float
    """UTF-8 bytes of their text."""
    submissions: float | None = None
    """Submissions read from the dumps; ``None`` derives it from ``links``."""

    def __post_init__(self) -> None:
        for name in ("links", "docs", "text_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)!r}: must be positive")

    def scaled(self, factor: float) -> Target:
        subs = None if self.submissions is None else self.submissions * factor
        return Target(self.links * factor, self.docs * factor, self.text_bytes * factor, subs)


@dataclass(frozen=True)
class Line:
    """One figure of the plan: ``unit`` is ``bytes`` or ``count``; ``how`` gives the formula."""

    section: str
    name: str
    value: float
    unit: str
    how: str


@dataclass(frozen=True)
class Settings:
    """The job settings the plan depends on (the defaults of the job config)."""

    dedup: DedupConfig = field(default_factory=DedupConfig)
    contamination: ContaminationConfig = field(default_factory=ContaminationConfig)


def bloom_bits_per_item(fp_rate: float) -> float:
    """Bits per item of a standard Bloom filter with the optimal number of hashes:
    ``-ln(p) / ln(2)^2`` (38.3 at 1e-8)."""
    if not 0 < fp_rate < 1:
        raise ValueError(f"fp_rate={fp_rate!r}: must be in (0, 1)")
    return -math.log(fp_rate) / math.log(2) ** 2


def bloom_hashes(fp_rate: float) -> int:
    """The optimal number of hash functions, ``bits_per_item * ln 2`` rounded (27 at 1e-8)."""
    return max(1, round(bloom_bits_per_item(fp_rate) * math.log(2)))


def banding(dedup: DedupConfig) -> tuple[int, int]:
    """(bands, rows) of the LSH: the config's, or the optimum the dedup stage would pick."""
    if dedup.bands is not None and dedup.rows is not None:
        return dedup.bands, dedup.rows
    from dedup.minhash import banding as optimal

    b = optimal(dedup.threshold, dedup.num_perm, dedup.fn_weight, None, None)
    return b.bands, b.rows


def plan(target: Target, figures: Figures | None = None, settings: Settings | None = None):
    """Every figure of the plan for ``target``, as a list of :class:`Line`."""
    f = figures or Figures()
    s = settings or Settings()
    subs = target.submissions or target.links * f.submissions_per_link
    words = target.text_bytes / f.bytes_per_word
    words_per_doc = words / target.docs
    bands, rows = banding(s.dedup)
    num_perm = s.dedup.num_perm
    p = s.contamination.fp_rate
    n = s.contamination.n
    ngrams = words * f.distinct_ngrams_per_word
    tokens = target.text_bytes * f.tokens_per_byte
    rec = f.record_overhead_bytes

    lines = [
        Line("input", "submissions read", subs, "count", "given, or links x submissions_per_link"),
        Line("input", "links fetched", target.links, "count", "given"),
        Line("input", "documents kept", target.docs, "count", "given"),
        Line("input", "text", target.text_bytes, "bytes", "given"),
        Line("input", "words", words, "count", "text / bytes_per_word"),
    ]
    storage = [
        ("Pushshift dumps (zstd)", subs * f.dump_bytes_per_submission, "submissions x bytes"),
        ("fetched pages (WARC, gzip)", target.links * f.warc_bytes_per_page, "links x bytes/page"),
        ("URL table (Parquet)", target.links * (f.url_bytes + f.submission_ref_bytes), "links x"),
        (
            "text shards (Parquet zstd)",
            target.text_bytes * f.parquet_text_ratio + target.docs * f.shard_meta_bytes_per_doc,
            "text x ratio + docs x metadata",
        ),
        ("token shards", tokens * f.token_bytes, f"tokens x {f.token_bytes} B"),
    ]
    lines += [Line("storage", name, v, "bytes", how) for name, v, how in storage]
    lines.append(
        Line("storage", "total", sum(v for _, v, _ in storage), "bytes", "sum of the above")
    )
    shuffle = [
        (
            "URL dedup (by canonical URL)",
            target.links * (f.url_bytes + f.submission_ref_bytes + rec),
            "links x (url + submission + framing); each repost adds one record",
        ),
        (
            "exact dedup (by text hash)",
            target.docs * (16 + f.doc_id_bytes + rec),
            "docs x (hash + id + framing)",
        ),
        (
            f"MinHash band keys ({bands} bands x {rows} rows)",
            target.docs * bands * (f.band_hash_bytes + f.doc_id_bytes + rec),
            "docs x bands x (band key + id + framing)",
        ),
        (
            "MinHash verification (shingles)",
            target.docs * (words_per_doc * f.shingle_hash_bytes + f.doc_id_bytes + rec),
            "docs x (shingles x 4 B + id): exact Jaccard of candidate pairs",
        ),
    ]
    lines += [Line("shuffle", name, v, "bytes", how) for name, v, how in shuffle]
    lines.append(Line("shuffle", "total", sum(v for _, v, _ in shuffle), "bytes", "sum"))
    bpi = bloom_bits_per_item(p)
    lines += [
        Line("bloom", f"distinct {n}-grams", ngrams, "count", "words x distinct_ngrams_per_word"),
        Line("bloom", f"bits per item at {p:g}", bpi, "count", "-ln p / (ln 2)^2"),
        Line("bloom", "hash functions", bloom_hashes(p), "count", "bits per item x ln 2"),
        Line("bloom", "standard filter memory", ngrams * bpi / 8, "bytes", "n x bits / 8"),
        Line(
            "bloom",
            "webtext blocked filter memory",
            _blocked_bits(ngrams, p) / 8,
            "bytes",
            "contamination.bloom.blocks_for(n, p) x 1024 bits (cache-friendly, more bits)",
        ),
    ]
    per_doc = (
        f.doc_id_bytes
        + num_perm * f.signature_value_bytes
        + bands * f.band_hash_bytes
        + words_per_doc * f.shingle_hash_bytes
    )
    lines += [
        Line(
            "index",
            "signatures",
            target.docs * num_perm * f.signature_value_bytes,
            "bytes",
            f"docs x {num_perm} perm x {f.signature_value_bytes} B",
        ),
        Line(
            "index",
            "band hashes",
            target.docs * bands * f.band_hash_bytes,
            "bytes",
            f"docs x {bands} bands x {f.band_hash_bytes} B",
        ),
        Line("index", "total with ids and shingles", target.docs * per_doc, "bytes", "docs x"),
    ]
    lines += _time_and_memory(target, subs, f)
    lines += [
        Line("train", "training tokens", tokens, "count", "text x tokens_per_byte"),
        Line("train", "tokens per document", tokens / target.docs, "count", "tokens / docs"),
    ]
    return lines


def _time_and_memory(target: Target, subs: float, f: Figures) -> list[Line]:
    """Time and peak memory of each stage on the reference machine, from :class:`StageRate`."""
    stages = [
        ("ingest URL stage", f.url_stage, subs, "submissions"),
        ("ingest pages (WARC replay)", f.pages, target.links, "links"),
        ("dedup", f.dedup, target.docs, "docs"),
        ("contamination check", f.contamination, target.text_bytes, "text bytes"),
        ("tokenize", f.tokenize, target.text_bytes, "text bytes"),
    ]
    time = [
        Line("time", name, rate.seconds(n), "seconds", f"{unit} / {rate.items_per_s:,.0f} per s")
        for name, rate, n, unit in stages
    ]
    time.append(Line("time", "total", sum(t.value for t in time), "seconds", "sum, one machine"))
    memory = [
        Line("memory", f"{name} peak", rate.peak_bytes(n), "bytes", _memory_how(rate, unit))
        for name, rate, n, unit in stages
    ]
    return time + memory


def _memory_how(rate: StageRate, unit: str) -> str:
    fixed = f"{rate.peak_fixed_bytes / 1e9:.1f} GB"
    if not rate.peak_bytes_per_item:
        return f"{fixed}, bounded by settings"
    return f"{fixed} + {unit} x {rate.peak_bytes_per_item:g} B"


def _blocked_bits(items: float, fp_rate: float) -> float:
    """Bits of the contamination stage's blocked Bloom filter, or NaN past its 2^32 blocks."""
    from contamination.bloom import BLOCK_BITS, blocks_for

    try:
        return float(blocks_for(math.ceil(items), fp_rate) * BLOCK_BITS)
    except ValueError:
        return math.nan


def human(value: float, unit: str) -> str:
    """``1.23 GB``, ``45.0 M``: decimal units, as disks and corpora are quoted."""
    if math.isnan(value):
        return "n/a"
    prefixes = ("", "k", "M", "G", "T", "P", "E")
    i = 0
    v = float(value)
    while abs(v) >= 1000 and i < len(prefixes) - 1:
        v /= 1000
        i += 1
    if unit == "seconds":
        return _duration(value)
    suffix = {"bytes": "B", "count": ""}[unit]
    if unit == "count" and i == 0:
        return f"{v:,.1f}" if v != int(v) else f"{int(v):,}"
    return f"{v:.3g} {prefixes[i]}{suffix}".rstrip()


def _duration(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``, ``4.2 d``: the largest unit that keeps the number >= 1."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.2g} {unit}"
    return f"{seconds:.2g} s"


def table(target: Target, scales: tuple[float, ...], figures: Figures | None = None) -> str:
    """The plan at each scale, one row per figure, as aligned plain text."""
    plans = [plan(target.scaled(k), figures) for k in scales]
    header = ["section", "figure", *[f"{k:g}x" for k in scales], "how"]
    rows = [header]
    for i, line in enumerate(plans[0]):
        rows.append(
            [
                line.section,
                line.name,
                *[human(p[i].value, p[i].unit) for p in plans],
                line.how,
            ]
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(header) - 1)]
    out = []
    for r in rows:
        cells = [
            r[c].ljust(widths[c]) if c < 2 else r[c].rjust(widths[c]) for c in range(len(widths))
        ]
        out.append("  ".join([*cells, r[-1]]).rstrip())
    return "\n".join(out)
