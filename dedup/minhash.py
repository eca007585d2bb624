"""MinHash signatures of documents, computed vectorised and equal to datasketch's.

A document becomes a set of shingles: its text is normalised (Unicode NFKC, case folded,
punctuation dropped), split into tokens and every run of ``ngram`` consecutive tokens is one
shingle. Tokens are words, except in scripts written without spaces (Chinese, Japanese kana,
Thai, Lao, Myanmar), where each character is a token, so the same ``ngram`` gives character
n-grams there: a Chinese sentence would otherwise be one "word" and a single edit would change
every shingle. A document shorter than ``ngram`` tokens is one shingle of all its tokens; a
document without tokens has no shingles and no signature (it never counts as a near duplicate).

A shingle's 32-bit hash is a function of its tokens' 64-bit xxh3 hashes (a polynomial over them,
then the MurmurHash3 64-bit finaliser, top 32 bits), so each token is hashed once and shingles
are combined with numpy. :func:`shingle_hash` computes the same value from a shingle's bytes
(tokens joined by one space): passed to ``datasketch.MinHash(hashfunc=shingle_hash)``, datasketch
produces exactly the signatures :func:`signatures` computes (its default ``affine32`` scheme:
``fmix32(h) * a + b mod 2**32`` with datasketch's seeded ``a``, ``b``), which a test checks.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import xxhash

# Scripts without spaces between words: one token per character.
_NO_SPACE = (
    "\u0e00-\u0eff\u1000-\u109f"  # Thai, Lao, Myanmar
    "\u3040-\u30ff\u3100-\u312f"  # kana, bopomofo
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK ideographs
)
_TOKEN = re.compile(rf"[{_NO_SPACE}]|[^\W{_NO_SPACE}]+")

_M64 = (1 << 64) - 1
_POLY = 0x9E3779B97F4A7C15  # odd multiplier combining token hashes in order
_FMIX64 = (33, 0xFF51AFD7ED558CCD, 33, 0xC4CEB9FE1A85EC53, 33)
_FMIX32 = (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16)
MAX_HASH = np.uint32(0xFFFFFFFF)

# Rows of the (shingles x num_perm) matrix computed at once: bounds memory for any document.
_CHUNK_ROWS = 8192


def tokens(text: str) -> list[str]:
    """Normalised tokens: words, or single characters in scripts written without spaces."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


def shingle_texts(toks: Sequence[str], ngram: int) -> list[bytes]:
    """The shingles as bytes (tokens joined by a space): the input of :func:`shingle_hash`."""
    if not toks:
        return []
    n = min(ngram, len(toks))
    return [" ".join(toks[i : i + n]).encode() for i in range(len(toks) - n + 1)]


def shingle_hash(shingle: bytes) -> int:
    """The 32-bit hash of one shingle from its bytes; equal to what :func:`shingle_hashes` gives."""
    h = 0
    for word in shingle.split(b" "):
        h = (h * _POLY + xxhash.xxh3_64_intdigest(word)) & _M64
    s1, m1, s2, m2, s3 = _FMIX64
    h ^= h >> s1
    h = (h * m1) & _M64
    h ^= h >> s2
    h = (h * m2) & _M64
    h ^= h >> s3
    return h >> 32


def _fmix64(h: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = (np.uint64(c) for c in _FMIX64)
    h = h ^ (h >> s1)
    h = h * m1
    h = h ^ (h >> s2)
    h = h * m2
    return h ^ (h >> s3)


def _fmix32(h: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = (np.uint32(c) for c in _FMIX32)
    h = h ^ (h >> s1)
    h = h * m1
    h = h ^ (h >> s2)
    h = h * m2
    return h ^ (h >> s3)


def shingle_hashes(text: str, ngram: int) -> np.ndarray:
    """Sorted distinct 32-bit shingle hashes of a document (uint32; empty without tokens)."""
    toks = tokens(text)
    if not toks:
        return np.empty(0, dtype=np.uint32)
    hashed = {t: xxhash.xxh3_64_intdigest(t.encode()) for t in dict.fromkeys(toks)}
    words = np.fromiter((hashed[t] for t in toks), dtype=np.uint64, count=len(toks))
    n = min(ngram, len(toks))
    m = len(toks) - n + 1
    poly = np.uint64(_POLY)
    h = words[:m].copy()
    with np.errstate(over="ignore"):
        for i in range(1, n):
            h = h * poly + words[i : i + m]
        h = _fmix64(h)
    return np.unique((h >> np.uint64(32)).astype(np.uint32))


@lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's ``affine32`` permutation parameters (a odd, b) for ``num_perm`` and ``seed``."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    a.setflags(write=False)
    b.setflags(write=False)
    return a, b


def signatures(shingles: Sequence[np.ndarray], num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures (docs x num_perm, uint32) of shingle-hash arrays, one row per document.

    Documents are stacked so numpy runs over thousands of shingles per call; a row for a
    document without shingles is all ``MAX_HASH`` (datasketch's empty MinHash).
    """
    a, b = permutations(num_perm, seed)
    out = np.full((len(shingles), num_perm), MAX_HASH, dtype=np.uint32)
    lengths = np.fromiter((len(s) for s in shingles), dtype=np.int64, count=len(shingles))
    if not lengths.sum():
        return out
    flat = _fmix32(np.concatenate(shingles).astype(np.uint32, copy=False))
    ends = np.cumsum(lengths)
    starts = ends - lengths
    row = 0
    with np.errstate(over="ignore"):
        while row < len(flat):
            stop = min(row + _CHUNK_ROWS, len(flat))
            phv = flat[row:stop, None] * a + b  # (rows, num_perm), wraps mod 2**32
            # Documents overlapping [row, stop): reduce each one's slice of the chunk.
            first = int(np.searchsorted(ends, row, side="right"))
            last = int(np.searchsorted(starts, stop, side="left"))
            for d in range(first, last):
                lo, hi = max(starts[d], row) - row, min(ends[d], stop) - row
                if hi > lo:
                    np.minimum(out[d], phv[lo:hi].min(axis=0), out=out[d])
            row = stop
    return out


def signatures_of_texts(texts: Sequence[str], num_perm: int, seed: int, ngram: int) -> np.ndarray:
    return signatures([shingle_hashes(t, ngram) for t in texts], num_perm, seed)


# --- LSH banding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Banding:
    """LSH bands x rows over a signature; two documents are candidates when one band agrees."""

    bands: int
    rows: int

    def probability(self, jaccard: float) -> float:
        """Chance that documents of this Jaccard similarity share at least one band."""
        return 1.0 - (1.0 - jaccard**self.rows) ** self.bands


def banding(
    threshold: float, num_perm: int, fn_weight: float, bands: int | None, rows: int | None
) -> Banding:
    """Explicit (bands, rows), or datasketch's optimum for the threshold and error weights."""
    if bands is not None and rows is not None:
        return Banding(bands, rows)
    from datasketch.lsh import _optimal_param

    b, r = _optimal_param(threshold, num_perm, 1.0 - fn_weight, fn_weight)
    return Banding(b, r)


def band_hashes(signature: np.ndarray, band: Banding) -> list[int]:
    """One stable 64-bit hash per band (xxh3 of the band's uint32 values and its index)."""
    sig = np.ascontiguousarray(signature, dtype=np.uint32)
    r = band.rows
    return [
        xxhash.xxh3_64_intdigest(sig[i * r : (i + 1) * r].tobytes(), seed=i)
        for i in range(band.bands)
    ]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted distinct hash arrays (0 when both are empty)."""
    if not len(a) and not len(b):
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """The MinHash estimate: the share of equal signature values."""
    return float(np.count_nonzero(sig_a == sig_b)) / len(sig_a)
