"""Text normalisation, hashing and counting shared by the extraction and dedup stages.

What counts as "the same text" for exact deduplication: the same sequence of words, where a
word is a run of letters and digits (``\\w`` without ``_``) compared after Unicode NFKC
normalisation and case folding. Whitespace, line breaks, punctuation and symbols do not count,
so two copies of an article that differ only in layout, capitalisation, typographic quotes or
full-width characters hash alike, while any changed, added or removed word makes them differ.
Near duplicates are the MinHash stage's job.
"""

from __future__ import annotations

import re
import unicodedata

import xxhash

_NON_WORD = re.compile(r"[\W_]+")


def normalize_for_hash(text: str) -> str:
    """The canonical form of ``text`` that :func:`content_hash` hashes: words joined by a space."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _NON_WORD.sub(" ", folded).strip()


def content_hash(text: str) -> str:
    """Stable 128-bit hex digest (xxh3) of the normalised text; identical on every machine."""
    return xxhash.xxh3_128_hexdigest(normalize_for_hash(text).encode("utf-8"))


def count_words(text: str) -> int:
    """Whitespace-separated tokens: the unit of the quality filters' length rules."""
    return len(text.split())
