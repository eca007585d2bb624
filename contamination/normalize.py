"""GPT-2's text normalisation for overlap checks, and a plain reference for n-grams.

GPT-2 (section 4, "Generalization vs Memorization") normalised text to "lower-cased
alphanumeric words separated by single spaces" before putting 8-grams in Bloom filters. A word
here is a maximal run of Unicode letters and digits (``str.isalnum``, which is what ``[^\\W_]``
matches) after ``str.lower()``; everything else separates words. N-grams are n consecutive words
of one document: they never cross a document boundary.

This module is the readable definition. :mod:`contamination.ngrams` computes the same n-grams
as 64-bit hashes with numpy, and the tests hold the two to each other.
"""

from __future__ import annotations

import re

NORMALISATION = "gpt2-lower-alnum"
NORMALISATION_VERSION = 1
"""Bumped whenever :func:`normalise` or the n-gram hash changes; saved filters record it."""

WORD_RE = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The lower-cased alphanumeric words of ``text``, in order."""
    return WORD_RE.findall(text.lower())


def normalise(text: str) -> str:
    """``text`` as lower-cased alphanumeric words separated by single spaces."""
    return " ".join(words(text))


def ngrams(text: str, n: int) -> list[str]:
    """Every n-gram of one document as a space-joined string (empty if under n words)."""
    w = words(text)
    return [" ".join(w[i : i + n]) for i in range(len(w) - n + 1)]
