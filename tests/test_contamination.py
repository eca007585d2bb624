"""The filter's parts: normalisation, n-gram hashing, sizing, false positives, merge, files."""

from __future__ import annotations

import numpy as np
import pytest

from contamination.bloom import (
    BloomError,
    BloomFilter,
    blocked_fp_rate,
    blocks_for,
    standard_bits,
)
from contamination.ngrams import NgramHasher, ngram_hash_reference, word_hash_reference
from contamination.normalize import ngrams, normalise


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", "hello world"),
        ("It's  a\ttest.\n", "it s a test"),
        ("snake_case and kebab-case", "snake case and kebab case"),
        ("GPT-2 (2019) had 1.5B params", "gpt 2 2019 had 1 5b params"),
        ("Café ÉTÉ — Straße", "café été straße"),
        ("“Quoted” ‘words’…", "quoted words"),
        ("", ""),
        ("!!! ---", ""),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


def test_ngrams_reference() -> None:
    assert ngrams("A b, C d!", 3) == ["a b c", "b c d"]
    assert ngrams("a b", 3) == []


def test_hash_is_stable_across_versions() -> None:
    # Golden values: a change here silently invalidates every saved filter.
    assert word_hash_reference("hello") == 0xE455D037E8AB1EFA
    assert ngram_hash_reference(["the", "quick", "brown"]) == 0x2BBB04DC2AF2C754


DOCS = [
    "Hello, World! It's a test of the hasher.",
    "Ünïcode — CAFÉ straße 42 x and ‘quotes’",
    "",
    "a b",
    "one two three four five",
    "MiXeD ascii\x00with NUL and_underscore",
]


@pytest.mark.parametrize("n", [1, 3, 8])
def test_vectorised_hashes_equal_reference(n: int) -> None:
    got = NgramHasher(n).hash_docs(DOCS)
    want, want_doc = [], []
    for i, doc in enumerate(DOCS):
        w = normalise(doc).split()
        for j in range(len(w) - n + 1):
            want.append(ngram_hash_reference(w[j : j + n]))
            want_doc.append(i)
    assert got.hashes.tolist() == want
    assert got.doc.tolist() == want_doc


def test_ngrams_never_cross_documents() -> None:
    h = NgramHasher(3)
    assert len(h.hash_docs(["a b c", "d e f"]).hashes) == 2
    assert len(h.hash_docs(["a b", "c d"]).hashes) == 0
    assert len(h.hash_docs(["a b c d"]).hashes) == 2


def test_hash_does_not_depend_on_batching() -> None:
    docs = [f"doc {i} " + "some words here " * (i % 7) for i in range(300)]
    h = NgramHasher(2)
    whole = h.hash_batch(docs)
    parts = [h.hash_batch(docs[i : i + 17], i) for i in range(0, len(docs), 17)]
    assert np.array_equal(whole.hashes, np.concatenate([p.hashes for p in parts]))
    assert np.array_equal(whole.doc, np.concatenate([p.doc for p in parts]))


@pytest.mark.parametrize("fp", [1e-2, 1e-3, 1e-6, 1e-8])
def test_sizing_meets_rate_within_memory_bound(fp: float) -> None:
    items = 1_000_000
    blocks = blocks_for(items, fp)
    assert blocked_fp_rate(items, blocks) <= fp
    assert blocked_fp_rate(items, blocks - 1) > fp  # the fewest blocks that do
    assert blocks * 1024 <= 1.5 * standard_bits(items, fp)


def test_sizing_at_gpt2_rate_is_about_38_bits_standard() -> None:
    assert standard_bits(1, 1e-8) == pytest.approx(38.34, abs=0.01)


def _random_docs(rng: np.random.Generator, count: int, words: int = 8) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789"))
    chars = rng.choice(letters, size=(count * words, 6))
    tokens = ["".join(r) for r in chars]
    return [" ".join(tokens[i * words : (i + 1) * words]) for i in range(count)]


def test_no_false_negatives_and_measured_fp_near_target() -> None:
    rng = np.random.default_rng(7)
    train = _random_docs(rng, 20_000)
    other = _random_docs(rng, 200_000)
    hasher = NgramHasher(8)
    members = hasher.hash_docs(train).hashes
    bloom = BloomFilter.create(len(members), 1e-3, 8)
    bloom.add(members)
    assert bloom.contains(members).all()
    measured = bloom.contains(hasher.hash_docs(other).hashes).mean()
    assert 0.5e-3 < measured < 2e-3
    assert bloom.estimated_fp_rate() == pytest.approx(1e-3, rel=0.25)


def test_or_merge_equals_building_at_once() -> None:
    rng = np.random.default_rng(1)
    h = rng.integers(0, 2**64, size=50_000, dtype=np.uint64)
    whole = BloomFilter.create(len(h), 1e-4, 8)
    whole.add(h)
    left, right = whole.empty_like(), whole.empty_like()
    left.add(h[:20_000])
    right.add(h[20_000:])
    left.merge(right)
    assert np.array_equal(left.words, whole.words)
    with pytest.raises(BloomError, match="same size"):
        left.merge(BloomFilter.create(10, 1e-4, 8))


def test_save_load_round_trip_is_memory_mapped(tmp_path) -> None:
    rng = np.random.default_rng(2)
    h = rng.integers(0, 2**64, size=10_000, dtype=np.uint64)
    bloom = BloomFilter.create(len(h), 1e-6, 13, manifest_checksum="abc", ngrams=10_000)
    bloom.add(h)
    path = str(tmp_path / "bloom.bin")
    bloom.save(path)
    back = BloomFilter.load(path)
    assert isinstance(back.words, np.memmap)
    assert np.array_equal(back.words, bloom.words)
    assert back.n == 13
    assert back.meta["manifest_checksum"] == "abc"
    assert back.meta["items"] == 10_000
    assert back.header()["hashes"] == 16
    assert back.contains(h).all()
    q = rng.integers(0, 2**64, size=10_000, dtype=np.uint64)
    assert np.array_equal(back.contains(q), bloom.contains(q))


def test_load_rejects_bad_files(tmp_path) -> None:
    bloom = BloomFilter.create(100, 1e-3, 8)
    good = tmp_path / "b.bin"
    bloom.save(str(good))
    trunc = tmp_path / "t.bin"
    trunc.write_bytes(good.read_bytes()[:-8])
    with pytest.raises(BloomError, match="truncated"):
        BloomFilter.load(str(trunc))
    junk = tmp_path / "j.bin"
    junk.write_bytes(b"not a filter at all")
    with pytest.raises(BloomError, match="magic"):
        BloomFilter.load(str(junk))
