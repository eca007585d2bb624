"""Signatures equal datasketch's, shingling of odd and non-Latin text, LSH banding, bucket pairs."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash, MinHashLSH

from dedup.minhash import (
    MAX_HASH,
    banding,
    jaccard,
    shingle_hash,
    shingle_hashes,
    shingle_texts,
    signatures,
    tokens,
)
from dedup.transforms import FULL_PAIRS_MAX, bucket_pairs
from foundation.config import ConfigError, DedupConfig
from tests.dedup_docs import edit, prose

TEXTS = [
    prose(1),
    "The the THE the the the, the! the the.",  # repeated shingles
    "Ünïcödé ﬁne “quoted” text — with ½ forms",  # NFKC and punctuation
    "我们今天去公园玩了很久，然后回家吃饭。",  # Chinese: character n-grams
    "日本語のテキストとEnglish words混在",  # kana, kanji and Latin mixed
    "สวัสดีครับ ยินดีต้อนรับ",  # Thai
    "Привет, как дела? Всё хорошо, спасибо.",  # Cyrillic: words
    "two words",  # fewer tokens than ngram
    "one",
]


@pytest.mark.parametrize("num_perm,seed,ngram", [(128, 1, 5), (64, 42, 3), (256, 7, 1)])
def test_signatures_equal_datasketch_lean_minhash(num_perm, seed, ngram):
    ours = signatures([shingle_hashes(t, ngram) for t in TEXTS], num_perm, seed)
    for row, text in zip(ours, TEXTS, strict=True):
        m = MinHash(num_perm=num_perm, seed=seed, hashfunc=shingle_hash)
        m.update_batch(shingle_texts(tokens(text), ngram))
        lean = LeanMinHash(m)
        assert lean.hashvalues.dtype == row.dtype
        np.testing.assert_array_equal(lean.hashvalues, row, err_msg=text)


def test_signatures_chunk_large_documents_like_small_ones():
    big = " ".join(prose(s, 3000) for s in range(4))  # > one chunk of shingle rows
    docs = [shingle_hashes(t, 5) for t in ("", big, prose(9), "x")]
    together = signatures(docs, 128, 1)
    for i, d in enumerate(docs):
        np.testing.assert_array_equal(together[i], signatures([d], 128, 1)[0])


def test_shingle_hashes_match_their_bytes_form():
    toks = tokens(prose(3, 50))
    expected = sorted({shingle_hash(s) for s in shingle_texts(toks, 5)})
    assert shingle_hashes(" ".join(toks), 5).tolist() == expected


def test_normalisation_ignores_case_punctuation_and_unicode_form():
    a = shingle_hashes("Hello, World! This is the ﬁrst test...", 3)
    b = shingle_hashes("hello world this   is the first TEST", 3)
    assert a.tolist() == b.tolist()


def test_text_without_spaces_is_shingled_by_character():
    assert tokens("我们今天去公园") == ["我", "们", "今", "天", "去", "公", "园"]
    assert tokens("GPT-2 模型很好") == ["gpt", "2", "模", "型", "很", "好"]
    assert tokens("スーパーで") == ["ス", "ー", "パ", "ー", "で"]
    # One changed character changes a few character 5-grams, not the whole "word".
    base = "我们今天去公园玩了很久然后回家吃饭晚上看了一部很有意思的电影大家都很开心"
    edited = base.replace("电影", "电视")
    assert 0.6 < jaccard(shingle_hashes(base, 5), shingle_hashes(edited, 5)) < 1.0


def test_empty_and_one_word_documents():
    assert len(shingle_hashes("", 5)) == 0
    assert len(shingle_hashes("  ,.;!  ", 5)) == 0
    assert len(shingle_hashes("hello", 5)) == 1
    sigs = signatures([shingle_hashes("", 5), shingle_hashes("hello", 5)], 16, 1)
    assert (sigs[0] == MAX_HASH).all()
    assert (sigs[1] < MAX_HASH).any()
    assert jaccard(shingle_hashes("", 5), shingle_hashes("", 5)) == 0.0


def test_minhash_estimates_true_jaccard():
    base = prose(5, 600)
    for frac in (0.02, 0.1, 0.3):
        a, b = shingle_hashes(base, 5), shingle_hashes(edit(base, frac, 1), 5)
        sa, sb = signatures([a, b], 256, 1)
        assert abs(float(np.mean(sa == sb)) - jaccard(a, b)) < 0.1


def test_banding_is_datasketchs_optimum():
    lsh = MinHashLSH(threshold=0.7, num_perm=128)
    plain = banding(0.7, 128, 0.5, None, None)
    assert (plain.bands, plain.rows) == (lsh.b, lsh.r) == (14, 9)
    weighted = MinHashLSH(threshold=0.7, num_perm=128, weights=(0.1, 0.9))
    band = banding(0.7, 128, 0.9, None, None)
    assert (band.bands, band.rows) == (weighted.b, weighted.r) == (20, 6)
    assert band.probability(0.75) > 0.97 and band.probability(0.3) < 0.02
    explicit = banding(0.7, 128, 0.9, 16, 8)
    assert (explicit.bands, explicit.rows) == (16, 8)


def test_bucket_pairs_small_bucket_gives_every_pair():
    members = [("c", False), ("a", False), ("b", False)]
    assert sorted(bucket_pairs(members)) == [("a", "b"), ("a", "c"), ("b", "c")]


def test_bucket_pairs_never_pairs_two_indexed_documents():
    members = [("a", True), ("b", True), ("c", False)]
    assert sorted(bucket_pairs(members)) == [("a", "c"), ("b", "c")]
    # The same id new and indexed counts as new (the pair with itself is never formed).
    assert sorted(bucket_pairs([("a", True), ("a", False), ("b", True)])) == [("a", "b")]


def test_bucket_pairs_large_bucket_is_linear_and_connected():
    n = FULL_PAIRS_MAX * 50
    ids = [f"{i:05d}" for i in range(n)]
    pairs = list(bucket_pairs([(i, False) for i in reversed(ids)]))
    assert len(pairs) < 2 * n
    parent = {i: i for i in ids}

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    assert len({find(i) for i in ids}) == 1


def test_dedup_config_validates_new_fields():
    with pytest.raises(ConfigError, match=r"dedup\.verify"):
        DedupConfig(verify="maybe")
    with pytest.raises(ConfigError, match=r"dedup\.fn_weight"):
        DedupConfig(fn_weight=1.0)
    with pytest.raises(ConfigError, match=r"dedup\.cc_rounds"):
        DedupConfig(cc_rounds=0)
