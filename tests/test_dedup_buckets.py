"""Key files read a bucket at a time give the groups and candidate pairs of one all-at-once pass."""

from __future__ import annotations

import random

import numpy as np

from dedup.buckets import BAND, EXACT, n_buckets, read_bucket, write_keys
from dedup.lsh import band_pairs, exact_groups, pair_buckets
from dedup.transforms import FULL_PAIRS_MAX, bucket_pairs


def _entries(shard: int, rng: random.Random) -> np.ndarray:
    """Band entries of 40 documents x 4 bands drawn from few hashes, so buckets form; hash 7 of
    band 0 is shared by every document of every shard (a bucket past FULL_PAIRS_MAX)."""
    rows = []
    for row in range(40):
        ref = shard << 32 | row
        rows.append((7, ref, 0))
        rows.extend((rng.choice([1, 2, 3, 2**63 + 5, 2**64 - 3]), ref, b) for b in (1, 2, 3))
    return np.array(rows, dtype=BAND)


def _id(ref: int) -> str:
    return f"{(ref * 2654435761) % 1000:03d}-{ref}"  # ids in another order than refs


def test_buckets_partition_the_keys_and_give_the_pairs_of_one_pass(tmp_path):
    rng = random.Random(3)
    shards = {s: _entries(s, rng) for s in range(3)}
    for s, entries in shards.items():
        write_keys(str(tmp_path), s, "bands", entries)
    everything = np.concatenate(list(shards.values()))

    # All bands at once, as the in-memory transform groups them.
    groups: dict[tuple[int, int], list] = {}
    for key, ref, band in everything.tolist():
        groups.setdefault((band, key), []).append(((_id(ref), ref), False))
    assert max(len(m) for m in groups.values()) > FULL_PAIRS_MAX
    expected = {
        tuple(sorted((a[1], b[1]))) for members in groups.values() for a, b in bucket_pairs(members)
    }

    for buckets in (1, 3, 7):
        parts = [
            read_bucket(str(tmp_path), shards, "bands", BAND, b, buckets) for b in range(buckets)
        ]
        # Every entry is in exactly one bucket; a (band, hash) group never straddles two.
        assert sorted(np.concatenate(parts).tolist()) == sorted(everything.tolist())
        assert len({k for p in parts for k in set(p["key"].tolist())}) == len(
            set(everything["key"].tolist())
        )
        found = [band_pairs(p, _id) for p in parts]
        # A pair found in several bands is kept once, by the pair bucket that owns it.
        owned: dict[int, list] = {}
        for pairs in found:
            for owner, part in pair_buckets(pairs, buckets):
                assert (part["lo"] % buckets == owner).all()
                owned.setdefault(owner, []).extend(part.tolist())
        distinct = [p for part in owned.values() for p in set(part)]
        assert len(distinct) == len(set(distinct))
        assert set(distinct) == expected


def test_exact_groups_are_the_equal_digests():
    rows = [(1, 2, 10, 3, 0, 1), (1, 3, 11, 3, 0, 1), (1, 2, 12, 5, 0, 0), (9, 9, 13, 3, 0, 1)]
    entries = np.array(rows, dtype=EXACT)
    (group,) = list(exact_groups(entries))
    assert group["ref"].tolist() == [10, 12]


def test_bucket_count_follows_the_document_count():
    assert [n_buckets(d, 50_000) for d in (0, 1, 50_000, 50_001, 1_000_000)] == [1, 1, 1, 2, 20]
