"""Key files: a shard's grouping keys on disk, sorted, so one hash bucket is one ranged read.

    WORK/00003.bands          band entries (key = band hash, ref, band), sorted by key
    WORK/00003.bands.idx.npy  SLICES + 1 entry offsets: where each slice of the key space starts
    WORK/00003.exact          exact entries (key, key2 = the content hash's 128-bit digest, ...)

Beam's local runner keeps a GroupByKey's values in the driver, so grouping 20 band keys per
document there grows with the input. Instead the scan writes each shard's keys here, and a
bucket task reads, from every shard, the entries whose key falls in its bucket's range of the
key space, and groups them in numpy. Only (bucket, shard numbers) cross a shuffle. The bucket
count is chosen after the scan from the document count (:func:`n_buckets`), so a bucket holds
about ``dedup.bucket_docs`` documents' keys whatever the input's size; the key space is cut
into SLICES fixed slices at write time, and a bucket is a run of whole slices.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable

import numpy as np

from foundation import storage

SLICES = 4096  # fixed slices of the 64-bit key space (its top 12 bits)
_SHIFT = np.uint64(64 - 12)

BAND = np.dtype([("key", "<u8"), ("ref", "<i8"), ("band", "<u4")])
EXACT = np.dtype(
    [
        ("key", "<u8"),
        ("key2", "<u8"),
        ("ref", "<i8"),
        ("karma", "<i8"),
        ("created", "<i8"),
        ("sketched", "u1"),
    ]
)


def n_buckets(docs: int, bucket_docs: int) -> int:
    return min(SLICES, max(1, math.ceil(docs / bucket_docs)))


def group_starts(groups: np.ndarray, n: int) -> np.ndarray:
    """Where each of ``n`` groups starts in sorted group numbers, then their length (n + 1
    offsets): a run of groups is then one slice."""
    return np.searchsorted(groups, np.arange(n + 1, dtype=groups.dtype)).astype(np.int64)


def bucket_slices(bucket: int, buckets: int) -> tuple[int, int]:
    """The first slice of ``bucket`` of ``buckets`` and the end of its run of slices."""
    return bucket * SLICES // buckets, (bucket + 1) * SLICES // buckets


def _paths(work: str, shard: int, kind: str) -> tuple[str, str]:
    base = storage.join(work, f"{shard:05d}.{kind}")
    return base, base + ".idx.npy"


def write_keys(work: str, shard: int, kind: str, entries: np.ndarray) -> None:
    """Sort one shard's entries by key and write them with their slice offsets."""
    entries = np.sort(entries, order="key", kind="stable")
    offsets = group_starts(entries["key"] >> _SHIFT, SLICES)
    data, index = _paths(work, shard, kind)
    storage.write_bytes(data, entries.tobytes())
    buf = io.BytesIO()
    np.save(buf, offsets)
    storage.write_bytes(index, buf.getvalue())


def read_bucket(
    work: str, shards: Iterable[int], kind: str, dtype: np.dtype, bucket: int, buckets: int
) -> np.ndarray:
    """Every shard's entries in ``bucket`` of ``buckets``: one ranged read per shard."""
    first, last = bucket_slices(bucket, buckets)
    parts = []
    for shard in shards:
        data, index = _paths(work, shard, kind)
        offsets = np.load(io.BytesIO(storage.read_bytes(index)))
        start, stop = int(offsets[first]), int(offsets[last])
        if stop > start:
            fs, p = storage.resolve(data)
            with fs.open_input_file(p) as f:
                raw = f.read_at((stop - start) * dtype.itemsize, start * dtype.itemsize)
            parts.append(np.frombuffer(raw, dtype=dtype))
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)
