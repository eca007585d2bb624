"""Synthetic English-like text for the contamination benches: words drawn from tinyshakespeare's
vocabulary with its word frequencies, so n-grams are nearly all distinct as in web text.

Streaming and seeded: :func:`zipf_lines` yields batches of lines without ever holding the
whole text, built with numpy gathers (joining 70M Python strings would take longer than the
stage being measured).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

SHAKESPEARE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "corpus"
    / "lm"
    / "tinyshakespeare"
    / "input.txt"
)


def base_words() -> list[str]:
    """tinyshakespeare's words in order, or a stand-in when ../shared is absent."""
    if SHAKESPEARE.exists():
        return SHAKESPEARE.read_text().split()
    return ("the quick brown fox jumps over a lazy dog " * 1000).split()


def vocabulary() -> tuple[np.ndarray, np.ndarray]:
    """(words, probabilities) of tinyshakespeare's vocabulary."""
    vocab, counts = np.unique(np.array(base_words()), return_counts=True)
    return vocab, counts / counts.sum()


def zipf_words(count: int, seed: int) -> list[str]:
    """``count`` words drawn from the vocabulary at its frequencies."""
    vocab, p = vocabulary()
    rng = np.random.default_rng(seed)
    return vocab[rng.choice(len(vocab), size=count, p=p)].tolist()


def zipf_lines(
    total_bytes: int, seed: int, words_per_line: int = 200, batch_words: int = 1 << 20
) -> Iterator[bytes]:
    """Lines of ``words_per_line`` words ending in ``\\n``, about ``total_bytes`` in all, as
    batches of whole lines (bytes)."""
    vocab, p = vocabulary()
    encoded = [w.encode() + b" " for w in vocab.tolist()]
    lens = np.array([len(e) for e in encoded], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
    pool = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    cdf = np.cumsum(p)
    rng = np.random.default_rng(seed)
    batch_words -= batch_words % words_per_line
    written = 0
    while written < total_bytes:
        idx = np.minimum(np.searchsorted(cdf, rng.random(batch_words)), len(vocab) - 1)
        wl = lens[idx]
        ends = np.cumsum(wl)
        gather = np.repeat(starts[idx] - (ends - wl), wl) + np.arange(ends[-1])
        out = pool[gather]
        out[ends[words_per_line - 1 :: words_per_line] - 1] = ord("\n")
        data = out.tobytes()
        if written + len(data) >= total_bytes:
            cut = data.rfind(b"\n", 0, max(1, total_bytes - written)) + 1
            yield data[: cut or len(data)]
            return
        written += len(data)
        yield data
