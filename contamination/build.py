"""Build the training side's Bloom filter in parallel: count, size, fill, OR-merge.

Input: :class:`contamination.sources.TrainSide`. Output: :class:`BloomFilter`.

Pass 1 (one task per shard or file): hash every n-gram, sort and deduplicate the hashes, save
them to a scratch ``.npy`` file, and fold them into HyperLogLog registers (datasketch's
HyperLogLog++ layout, filled with numpy). Pass 2: the merged registers estimate the distinct
n-grams, which sizes the filter for the target false-positive rate; each worker inserts its
share of the sorted hash files into a filter of that size, and the per-worker filters are
merged by bitwise OR. Re-reading the sorted hashes is much cheaper than re-normalising the text,
and sorted hashes fill the filter block by block.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from contamination.bloom import BloomFilter, blocks_for
from contamination.ngrams import NgramHasher, fmix64
from contamination.sources import DocSource, TrainSide, iter_docs

log = logging.getLogger(__name__)

HLL_P = 14
_HLL_SEED = 0x2545F4914F6CDD1D
_U = np.uint64


@dataclass(frozen=True)
class UnitStats:
    """What pass 1 learned about one file: counts, its sorted hashes, HLL registers."""

    path: str
    docs: int
    ngrams: int
    distinct: int
    hash_file: str
    registers: np.ndarray


def hll_registers(hashes: np.ndarray, p: int = HLL_P) -> np.ndarray:
    """HyperLogLog++ registers (datasketch's layout: index = low p bits, rank of the rest)."""
    m = 1 << p
    hv = fmix64(np.asarray(hashes, dtype=_U) ^ _U(_HLL_SEED))
    idx = (hv & _U(m - 1)).astype(np.intp)
    rest = hv >> _U(p)
    smear = rest.copy()
    for shift in (1, 2, 4, 8, 16, 32):
        smear |= smear >> _U(shift)
    rank = (64 - p) - np.bitwise_count(smear).astype(np.intp) + 1
    present = np.zeros((m, 64), dtype=bool)
    present[idx, rank] = True  # idempotent: duplicates need no ufunc.at
    top = 63 - np.argmax(present[:, ::-1], axis=1)
    return np.where(present.any(axis=1), top, 0).astype(np.int8)


def estimate_distinct(registers: np.ndarray) -> float:
    from datasketch import HyperLogLogPlusPlus

    return float(HyperLogLogPlusPlus(reg=registers.astype(np.int8)).count())


def _counted(docs: Iterator[tuple[str, str]], counter: list[int]) -> Iterator[str]:
    for _, text in docs:
        counter[0] += 1
        yield text


def hash_unit(src: DocSource, n: int, scratch: str, index: int) -> UnitStats:
    """Pass 1 for one file: sorted distinct n-gram hashes to ``scratch``, plus counts."""
    hasher = NgramHasher(n)
    counter = [0]
    parts = [nh.hashes for nh in hasher.iter_hashes(_counted(iter_docs(src), counter))]
    h = np.sort(np.concatenate(parts)) if parts else np.empty(0, _U)
    uniq = h[np.concatenate(([True], h[1:] != h[:-1]))] if len(h) else h
    path = os.path.join(scratch, f"unit-{index:06d}.npy")
    np.save(path, uniq)
    log.debug("%s: %d docs, %d n-grams, %d distinct", src.path, counter[0], len(h), len(uniq))
    return UnitStats(src.path, counter[0], len(h), len(uniq), path, hll_registers(uniq))


def fill_filter(hash_files: Sequence[str], blocks: int, n: int, out: str) -> str:
    """Pass 2 for one worker: insert sorted hash files into a fresh filter, save its words."""
    bloom = BloomFilter(np.zeros((blocks, 16), dtype=_U), n)
    for path in hash_files:
        bloom.add(np.load(path, mmap_mode="r"), is_sorted=True)
    np.save(out, bloom.words)
    return out


class _InProcess(Executor):
    """An Executor that runs each call at once (workers=1: no process start-up)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        from concurrent.futures import Future

        fut: Future[Any] = Future()
        fut.set_result(fn(*args, **kwargs))
        return fut


def resolve_workers(workers: int) -> int:
    return workers if workers > 0 else (os.cpu_count() or 1)


def build_from_sources(
    train: TrainSide, n: int, fp_rate: float, workers: int = 0, scratch: str | None = None
) -> BloomFilter:
    """Count, size and fill the filter for ``train`` with ``workers`` processes (0: all)."""
    workers = min(resolve_workers(workers), max(1, len(train.sources)))
    with tempfile.TemporaryDirectory(prefix="wt-bloom-", dir=scratch) as tmp:
        if workers == 1:
            pool: Executor = _InProcess()
        else:
            ctx = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        with pool:
            futures = [pool.submit(hash_unit, s, n, tmp, i) for i, s in enumerate(train.sources)]
            stats = [f.result() for f in futures]
            registers = np.maximum.reduce([s.registers for s in stats])
            upper = sum(s.distinct for s in stats)
            lower = max((s.distinct for s in stats), default=0)
            # HLL's standard error at p=14 is 0.8%; size for 3 sigma above the estimate.
            estimate = estimate_distinct(registers) if stats else 0.0
            items = int(min(upper, max(lower, estimate * (1 + 3 * 1.04 / 2 ** (HLL_P / 2)))))
            blocks = blocks_for(items, fp_rate)
            shares: list[list[str]] = [[] for _ in range(workers)]
            loads = [0] * workers
            for s in sorted(stats, key=lambda s: -s.distinct):
                i = loads.index(min(loads))
                shares[i].append(s.hash_file)
                loads[i] += s.distinct
            parts = [
                pool.submit(fill_filter, share, blocks, n, os.path.join(tmp, f"filter-{i}.npy"))
                for i, share in enumerate(shares)
                if share
            ]
            part_files = [f.result() for f in parts]
        bloom = BloomFilter.create(
            items,
            fp_rate,
            n,
            distinct_estimate=round(estimate),
            ngrams=sum(s.ngrams for s in stats),
            docs=sum(s.docs for s in stats),
            train_kind=train.kind,
            manifest_checksum=train.checksum,
            sources=len(train.sources),
        )
        for path in part_files:
            bloom.merge(BloomFilter(np.load(path, mmap_mode="r"), n))
    log.info(
        "filter: %d docs, %d n-grams, ~%d distinct, %d blocks (%.1f MB)",
        bloom.meta["docs"],
        bloom.meta["ngrams"],
        items,
        blocks,
        bloom.nbytes / 1e6,
    )
    return bloom
