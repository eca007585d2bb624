"""Documents -> 64-bit hashes of their normalised n-grams, vectorised with numpy.

Input: a sequence of document strings. Output: :class:`NgramHashes`, one ``uint64`` per n-gram
occurrence and the index of the document it came from.

Hashing one n-gram string at a time in Python costs about a microsecond each (normalising,
joining, hashing); here the Python work is per document (one ``str.translate``-style pass in C)
and every per-byte, per-word and per-n-gram step is a numpy array operation:

1. Documents are joined with a NUL separator and mapped through a 256-entry byte table: ASCII
   letters and digits are lower-cased and kept, other ASCII bytes become separators. A document
   that is not pure ASCII is first normalised with :func:`contamination.normalize.normalise`
   (Unicode letters/digits), so its remaining bytes are all word bytes or spaces.
2. Word hash: ``fmix64(sum_j byte_j * P**j + len * L)`` over the word's UTF-8 bytes, mod 2**64.
   It is computed for all words at once from one prefix sum of ``byte_j * P**j`` and the inverse
   powers of the odd constant ``P`` (so a word's hash does not depend on where it sits).
3. N-gram hash: ``fmix64(sum_j word_hash[i+j] * Q**(n-1-j) + n)``: n shifted multiply-adds.
   N-grams whose first and last words lie in different documents are dropped.

Everything is fixed integer arithmetic mod 2**64 with the constants below, so the hashes are the
same on every machine, process and Python version (never the salted built-in ``hash()``);
:func:`word_hash_reference` and :func:`ngram_hash_reference` state the definition in plain
Python and the tests hold the vectorised code to them. We do not call xxhash per word: the call
and the ``bytes`` object per word cost more than this whole pipeline per n-gram.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from contamination.normalize import normalise

MASK64 = (1 << 64) - 1
P = 0x100000001B3  # FNV-64 prime: odd, so it has an inverse mod 2**64
P_INV = pow(P, -1, 1 << 64)
L = 0x9E3779B97F4A7C15  # length term of the word hash
Q = 0xC2B2AE3D27D4EB4F  # n-gram combination multiplier
FMIX_1 = 0xFF51AFD7ED558CCD
FMIX_2 = 0xC4CEB9FE1A85EC53
CHUNK_BYTES = 1 << 18
"""Documents are hashed in batches of about this many bytes (keeps temporaries in cache)."""

_U = np.uint64
# Byte class table: ASCII letters/digits lower-cased and kept, other ASCII -> 0 (separator),
# bytes >= 0x80 kept (they only occur in documents already normalised to words and spaces).
_TABLE = bytes(
    (c + 32 if 65 <= c <= 90 else c)
    if (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c >= 128)
    else 0
    for c in range(256)
)


def _fmix64_ref(x: int) -> int:
    x ^= x >> 33
    x = (x * FMIX_1) & MASK64
    x ^= x >> 33
    x = (x * FMIX_2) & MASK64
    return x ^ (x >> 33)


def word_hash_reference(word: str) -> int:
    """The hash of one normalised word, in plain Python (the definition; slow)."""
    data = word.encode("utf-8")
    acc = sum(b * pow(P, j, 1 << 64) for j, b in enumerate(data)) & MASK64
    return _fmix64_ref((acc + len(data) * L) & MASK64)


def ngram_hash_reference(ngram_words: Sequence[str]) -> int:
    """The hash of one n-gram given as its normalised words, in plain Python (the definition)."""
    n = len(ngram_words)
    acc = 0
    for w in ngram_words:
        acc = (acc * Q + word_hash_reference(w)) & MASK64
    return _fmix64_ref((acc + n) & MASK64)


def fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, in place on a uint64 array (and returned)."""
    x ^= x >> _U(33)
    x *= _U(FMIX_1)
    x ^= x >> _U(33)
    x *= _U(FMIX_2)
    x ^= x >> _U(33)
    return x


@dataclass(frozen=True)
class NgramHashes:
    """The n-gram occurrences of a batch of documents."""

    hashes: np.ndarray  # uint64, one per n-gram occurrence, in document order
    doc: np.ndarray  # int64, index of each n-gram's document (global over the whole call)


class NgramHasher:
    """Hashes the n-grams of documents; holds the cached powers of ``P`` between batches."""

    def __init__(self, n: int) -> None:
        if n <= 0:
            raise ValueError(f"n={n}: must be positive")
        self.n = n
        self._pow = np.ones(1, dtype=_U)
        self._pow_inv = np.ones(1, dtype=_U)

    def _powers(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self._pow) < length:
            size = max(length, 2 * len(self._pow))
            pw = np.full(size, P, dtype=_U)
            pw[0] = 1
            pwi = np.full(size, P_INV, dtype=_U)
            pwi[0] = 1
            self._pow = np.cumprod(pw, dtype=_U)
            self._pow_inv = np.cumprod(pwi, dtype=_U)
        return self._pow[:length], self._pow_inv[:length]

    def word_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(word hashes, document index of each word) for one batch of documents."""
        encoded = [(t if t.isascii() else normalise(t)).encode("utf-8") for t in texts]
        buf = b"\0".join(encoded).translate(_TABLE)
        b = np.frombuffer(buf, dtype=np.uint8)
        if len(b) == 0:
            return np.empty(0, _U), np.empty(0, np.int64)
        is_word = (b != 0).view(np.int8)
        # Word starts and ends alternate among the places where is_word changes.
        edges = np.flatnonzero(np.diff(is_word, prepend=np.int8(0), append=np.int8(0)))
        starts, ends = edges[0::2], edges[1::2]
        pw, pwi = self._powers(len(b))
        prefix = np.zeros(len(b) + 1, dtype=_U)
        np.cumsum(np.multiply(b, pw, dtype=_U), out=prefix[1:])
        h = (prefix[ends] - prefix[starts]) * pwi[starts]
        h += (ends - starts).astype(_U) * _U(L)
        fmix64(h)
        doc_starts = np.cumsum([0] + [len(e) + 1 for e in encoded[:-1]])
        doc = np.searchsorted(doc_starts, starts, side="right") - 1
        return h, doc

    def hash_batch(self, texts: Sequence[str], doc_offset: int = 0) -> NgramHashes:
        """The n-gram hashes of one batch of documents (no batching of its own)."""
        n = self.n
        wh, wdoc = self.word_hashes(texts)
        g = self._combine(wh)
        count = len(g)
        if count == 0:
            return NgramHashes(g, np.empty(0, np.int64))
        valid = wdoc[:count] == wdoc[n - 1 : n - 1 + count]
        return NgramHashes(g[valid], wdoc[:count][valid] + doc_offset)

    def _combine(self, wh: np.ndarray) -> np.ndarray:
        """The hash of every run of n consecutive word hashes (documents not considered)."""
        n = self.n
        count = len(wh) - n + 1
        if count <= 0:
            return np.empty(0, _U)
        g = wh[:count].copy()
        q = _U(Q)
        for j in range(1, n):
            g *= q
            g += wh[j : j + count]
        g += _U(n)
        return fmix64(g)

    def hash_pieces(
        self, pieces: Iterable[str], carry: np.ndarray | None = None
    ) -> Iterator[np.ndarray]:
        """The n-gram hashes of ONE document given as consecutive pieces cut after ASCII
        whitespace (so no word spans two pieces), ``carry`` being the word hashes of the text
        before the first piece. Each piece is hashed after the last n-1 word hashes before it,
        so the result equals hashing the whole document at once, in bounded memory."""
        keep = self.n - 1
        tail = np.empty(0, _U) if carry is None else carry[len(carry) - keep :]
        for piece in pieces:
            words = np.concatenate((tail, self.word_hashes([piece])[0]))
            yield self._combine(words)
            tail = words[len(words) - keep :] if keep else words[:0]

    def iter_hashes(self, texts: Sequence[str] | Iterator[str]) -> Iterator[NgramHashes]:
        """Hash any number of documents in batches of about CHUNK_BYTES; doc indices are global."""
        batch: list[str] = []
        size = 0
        first = 0
        for text in texts:
            batch.append(text)
            size += len(text)
            if size >= CHUNK_BYTES:
                yield self.hash_batch(batch, first)
                first += len(batch)
                batch, size = [], 0
        if batch:
            yield self.hash_batch(batch, first)

    def hash_docs(self, texts: Sequence[str]) -> NgramHashes:
        """All n-gram hashes of ``texts`` at once."""
        parts = list(self.iter_hashes(texts))
        if not parts:
            return NgramHashes(np.empty(0, _U), np.empty(0, np.int64))
        return NgramHashes(
            np.concatenate([p.hashes for p in parts]), np.concatenate([p.doc for p in parts])
        )
