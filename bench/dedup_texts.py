"""Texts for the dedup benchmarks: the shared corpus pages' extracted text, or generated text.

Extraction with trafilatura takes a while, so the texts are cached as JSON in the temp
directory, keyed by the pages' names and sizes; generated text (seeded) stands in when the
corpus is absent.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import tempfile
from pathlib import Path

import xxhash

PAGES = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "pages"
MIN_CHARS = 500


def _cache_path(files: list[Path]) -> Path:
    key = xxhash.xxh64("|".join(f"{f.name}:{f.stat().st_size}" for f in files).encode())
    return Path(tempfile.gettempdir()) / f"webtext-dedup-texts-{key.hexdigest()}.json"


def corpus_texts() -> list[str] | None:
    """Extracted texts of the corpus pages (at least MIN_CHARS each), or None without corpus."""
    files = sorted(PAGES.glob("**/*.html.gz")) if PAGES.is_dir() else []
    if not files:
        return None
    cache = _cache_path(files)
    if cache.exists():
        return json.loads(cache.read_text())
    import trafilatura

    texts = []
    for f in files:
        html = gzip.decompress(f.read_bytes()).decode("utf-8", errors="replace")
        text = trafilatura.extract(html, fast=True)
        if text and len(text) >= MIN_CHARS:
            texts.append(text)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(texts))
    tmp.replace(cache)
    return texts


def generated_texts(n: int, seed: int = 0) -> list[str]:
    """Seeded pseudo-prose: Zipf-like words in sentences and paragraphs."""
    rng = random.Random(seed)
    vocab = [
        "".join(rng.choice("etaoinshrdlucmfwypvbgk") for _ in range(rng.randint(2, 9)))
        for _ in range(20000)
    ]
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    texts = []
    for _ in range(n):
        paras = []
        for _ in range(rng.randint(3, 12)):
            words = rng.choices(vocab, weights, k=rng.randint(40, 160))
            paras.append(" ".join(words).capitalize() + ".")
        texts.append("\n\n".join(paras))
    return texts


def load_texts(n_generated: int = 600) -> tuple[list[str], str]:
    """(texts, source name): the corpus when present, else generated text."""
    texts = corpus_texts()
    if texts:
        return texts, "corpus-pages"
    return generated_texts(n_generated), "generated"
