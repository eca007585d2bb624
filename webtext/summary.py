"""Plain-text tables that close a job: what went in, what each rule removed, what came out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from foundation.shards import Manifest
    from pipeline.ingest import IngestResult


def table(rows: Iterable[tuple[str, str]], title: str = "") -> str:
    rows = list(rows)
    width = max((len(k) for k, _ in rows), default=0)
    vwidth = max((len(v) for _, v in rows), default=0)
    lines = [title] if title else []
    lines += [f"  {k:<{width}}  {v:>{vwidth}}" for k, v in rows]
    return "\n".join(lines)


def _grouped(counts: Mapping[str, int], rules: tuple[str, ...]) -> list[tuple[str, str]]:
    """Every declared rule (zeros included, in their declared order), then the other counts."""
    from pipeline.rules import with_zeros

    return [(name, f"{n:,}") for name, n in with_zeros(counts, rules).items()]


def urls_summary(urls: Manifest, seconds: Mapping[str, float], directory: str) -> str:
    """The URL phase alone (``webtext ingest --urls-only``)."""
    from pipeline.rules import URL_PHASE

    rows = [("candidate URLs", f"{urls.rows:,}"), ("unit files", f"{len(urls.files):,}")]
    rows += [(f"{k} seconds", f"{v:.1f}") for k, v in seconds.items()]
    return "\n\n".join(
        [
            table(_grouped(urls.counts, URL_PHASE), "URL phase (submissions -> candidate URLs):"),
            table(rows, "Output:"),
            f"Candidate URLs: {directory}",
        ]
    )


def pages_by_source(counts: Mapping[str, int]) -> str:
    """``demo-archive 6, warc 312`` from a shards manifest's ``fetched.<source>`` counts; ""
    for a run made before they were counted."""
    prefix = "fetched."
    return ", ".join(
        f"{k[len(prefix) :]} {n:,}" for k, n in sorted(counts.items()) if k.startswith(prefix)
    )


def ingest_summary(result: IngestResult) -> str:
    from pipeline.rules import PAGES_PHASE, URL_PHASE

    urls, shards = result.urls, result.shards
    total_s = sum(result.seconds.values())
    docs = shards.rows
    text_bytes = sum(f.bytes for f in shards.files)
    parts = [
        table(_grouped(urls.counts, URL_PHASE), "URL phase (submissions -> candidate URLs):"),
        table([("candidate URLs", f"{urls.rows:,}")]),
        table(
            _grouped(shards.counts, PAGES_PHASE),
            "Pages phase (fetch -> extract -> filters -> dedup):",
        ),
        table(
            [
                ("documents written", f"{docs:,}"),
                *[("pages by source", p) for p in [pages_by_source(shards.counts)] if p],
                ("shard files", f"{len(shards.files):,}"),
                ("shard bytes", f"{text_bytes:,}"),
                *[(f"{k} seconds", f"{v:.1f}") for k, v in result.seconds.items()],
                (
                    "throughput",
                    f"{urls.rows / total_s:.1f} URLs/s" if total_s > 0 else "(resumed: no work)",
                ),
            ],
            "Output:",
        ),
        f"Shards: {result.shards_dir}",
    ]
    return "\n\n".join(parts)
