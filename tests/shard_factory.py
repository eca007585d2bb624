"""Small text-shard directories for tests: real rows of TEXT_SCHEMA with minimal fields filled.

``make_text_shards(dir, texts)`` writes ``part-00000.parquet``... and a ``kind="text"`` manifest
as the ingest job would; ``shakespeare_docs`` and ``page_texts`` give real text from the shared
corpus (callers take the ``corpus`` fixture, which skips when it is absent).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from foundation.shards import Manifest, shard_name, table_from_rows, write_table


def text_row(text: str, index: int, **fields: Any) -> dict[str, Any]:
    """One TEXT_SCHEMA row for ``text``; ``fields`` override any column (``id``, ``url``...)."""
    url = fields.pop("url", f"https://example.org/doc/{index}")
    row = {
        "id": hashlib.blake2b(url.encode(), digest_size=16).hexdigest(),
        "url": url,
        "canonical_url": url,
        "domain": "example.org",
        "submissions": [
            {"id": f"t3_{index}", "subreddit": "test", "score": 3, "created_utc": 1_500_000_000}
        ],
        "karma": 3,
        "created_utc": 1_500_000_000,
        "title": None,
        "date": None,
        "text": text,
        "language": None,
        "n_chars": len(text),
        "n_words": len(text.split()),
        "content_hash": hashlib.sha256(text.encode()).hexdigest(),
        "fetch_time": 1_500_000_100,
        "http_status": 200,
        "source": "live",
        "record": "",
    }
    row.update(fields)
    return row


def make_text_shards(
    directory: str | Path, texts: Sequence[str], shard_docs: int = 100, fmt: str = "parquet"
) -> Manifest:
    """Write ``texts`` as text shards of ``shard_docs`` documents plus their manifest."""
    directory = str(directory)
    rows = [text_row(t, i) for i, t in enumerate(texts)]
    files = []
    for n, start in enumerate(range(0, len(rows), shard_docs)):
        table = table_from_rows(rows[start : start + shard_docs])
        files.append(write_table(table, f"{directory}/{shard_name(n, fmt)}", fmt))
    manifest = Manifest(kind="text", format=fmt, files=files, counts={"docs": len(rows)})
    manifest.save(directory)
    return manifest


def shakespeare_docs(corpus: Path, n_docs: int | None = None, lines_per_doc: int = 40) -> list[str]:
    """tinyshakespeare cut into documents of ``lines_per_doc`` lines."""
    lines = (corpus / "lm" / "tinyshakespeare" / "input.txt").read_text().splitlines(keepends=True)
    docs = ["".join(lines[i : i + lines_per_doc]) for i in range(0, len(lines), lines_per_doc)]
    return docs[:n_docs] if n_docs is not None else docs


def page_texts(corpus: Path, limit: int = 40, min_chars: int = 200) -> list[str]:
    """Main text of the first ``limit`` usable multilingual pages (trafilatura, fast mode)."""
    import trafilatura

    out = []
    for path in sorted((corpus / "pages" / "html").glob("*.html.gz")):
        html = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        text = trafilatura.extract(html, fast=True)
        if text and len(text) >= min_chars:
            out.append(text)
            if len(out) == limit:
                break
    return out
