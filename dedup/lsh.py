"""Grouping one bucket of key entries in numpy: exact copies, LSH candidate pairs, distinct pairs.

A bucket (:mod:`dedup.buckets`) holds every entry whose key falls in its range, so equal keys
never straddle two buckets. These functions turn a bucket into what the in-memory transform's
GroupByKeys produced: groups of equal content hashes, and the candidate pairs of each
(band, band hash) bucket as :func:`dedup.transforms.bucket_pairs` forms them. Pairs are refs
``(lo, hi)`` with ``lo < hi``; a pair found in several bands is made distinct by the pair bucket
that owns it (``lo % buckets``), which is where it is verified.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np

from dedup.transforms import FULL_PAIRS_MAX

PAIR = np.dtype([("lo", "<i8"), ("hi", "<i8")])


def _runs(entries: np.ndarray, fields: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(starts, stops) of the runs of two or more entries with equal ``fields`` (sorted input)."""
    if not len(entries):
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    change = np.zeros(len(entries) - 1, dtype=bool)
    for f in fields:
        col = entries[f]
        change |= col[1:] != col[:-1]
    starts = np.flatnonzero(np.concatenate(([True], change)))
    stops = np.append(starts[1:], len(entries))
    keep = stops - starts >= 2
    return starts[keep], stops[keep]


def exact_groups(entries: np.ndarray) -> Iterator[np.ndarray]:
    """Entries that share a content hash (its 128-bit digest ``key``, ``key2``), group by group."""
    entries = np.sort(entries, order=("key", "key2", "ref"))
    for start, stop in zip(*_runs(entries, ("key", "key2")), strict=True):
        yield entries[start:stop]


def band_pairs(entries: np.ndarray, id_of: Callable[[int], str]) -> np.ndarray:
    """Distinct candidate pairs (PAIR) of the (band, band hash) buckets among ``entries``.

    Buckets up to FULL_PAIRS_MAX members give every pair; larger ones the star around the
    smallest (id, ref) plus the chain of the rest in that order, as ``bucket_pairs`` does, so
    only their members' ids are looked up (``id_of(ref)``).
    """
    entries = entries[np.lexsort((entries["ref"], entries["band"], entries["key"]))]
    starts, stops = _runs(entries, ("key", "band"))
    refs = entries["ref"]
    two = stops - starts == 2
    found = [np.stack((refs[starts[two]], refs[starts[two] + 1]), axis=1)]
    for start, stop in zip(starts[~two], stops[~two], strict=True):
        members = refs[start:stop].tolist()
        if len(members) <= FULL_PAIRS_MAX:
            pairs = itertools.combinations(members, 2)
        else:
            ordered = [ref for _, ref in sorted((id_of(r), r) for r in members)]
            pairs = itertools.chain(
                ((ordered[0], b) for b in ordered[1:]), itertools.pairwise(ordered[1:])
            )
        found.append(np.array(list(pairs), dtype=np.int64).reshape(-1, 2))
    both = np.concatenate(found)
    return distinct_pairs(both.min(axis=1), both.max(axis=1))


def distinct_pairs(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The distinct (lo, hi) pairs, sorted by lo then hi."""
    pairs = np.empty(len(lo), dtype=PAIR)
    pairs["lo"], pairs["hi"] = lo, hi
    return np.unique(pairs)


def pair_buckets(pairs: np.ndarray, buckets: int) -> Iterator[tuple[int, np.ndarray]]:
    """(pair bucket, its pairs) for each non-empty one: a pair belongs to ``lo % buckets``."""
    owner = pairs["lo"] % buckets
    for bucket in np.unique(owner).tolist():
        yield bucket, pairs[owner == bucket]
