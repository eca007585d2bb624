"""Build the training side's Bloom filter in parallel, in bounded memory, in place in its file.

Input: :class:`contamination.sources.TrainSide`. Output: the filter file (and its
:class:`BloomFilter`).

1. Hash (one task per :class:`contamination.parts.Part`, ~``chunk_bytes`` of text, so one big
   file feeds every worker): every n-gram's hash, sorted and deduplicated into a scratch
   ``.npy`` file, plus HyperLogLog registers (datasketch's HyperLogLog++ layout, filled with
   numpy) and counts.
2. Count (only for files cut into several parts; one task per range of hash values): each
   file's exact distinct n-grams, merging its parts' sorted hashes range by range.
3. Size: the merged registers estimate the distinct n-grams; with the per-file counts this
   gives the filter's size for the target false-positive rate, exactly as when every file was
   hashed whole. The filter file is written with its header and all bits clear.
4. Fill (one task per range of blocks): each task ORs the hashes of its blocks, read from every
   part's sorted file, into its own blocks of the memory-mapped file. No two tasks share a
   block, no task holds more than its range, and no full-size copy of the filter exists.

Scratch files live beside the filter (``.NAME.work/``) with a plan of the inputs; a part's
stats file is written last, as its completion mark, and a filled range leaves a mark too. A
killed build rerun with the same inputs reuses finished parts and ranges: ORing a range again
sets the same bits, so nothing is counted twice. The file is renamed into place when full.
"""

from __future__ import annotations

import importlib
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from contamination.bloom import (
    STATS_BLOCKS,
    BloomFilter,
    FillStats,
    add_sorted,
    blocks_for,
    create_file,
    file_prefix,
    first_hash,
    header_for,
    open_blocks,
)
from contamination.ngrams import NgramHasher, fmix64
from contamination.parts import Part, part_texts, pieces, plan_parts, text_before
from contamination.sources import ContaminationInputError, TrainSide
from foundation import storage

log = logging.getLogger(__name__)

HLL_P = 14
_HLL_SEED = 0x2545F4914F6CDD1D
_U = np.uint64
PLAN_VERSION = 1
HLL_SLICE = 1 << 20


@dataclass(frozen=True)
class PartStats:
    """What the hash step learned about one part; its sorted hashes are in ``hash_file``."""

    index: int
    file: int
    docs: int
    ngrams: int
    distinct: int
    hash_file: str


def hll_registers(hashes: np.ndarray, p: int = HLL_P) -> np.ndarray:
    """HyperLogLog++ registers (datasketch's layout: index = low p bits, rank of the rest)."""
    m = 1 << p
    present = np.zeros((m, 64), dtype=bool)
    flat = present.reshape(-1)
    for i in range(0, len(hashes), HLL_SLICE):
        hv = fmix64(np.asarray(hashes[i : i + HLL_SLICE], dtype=_U) ^ _U(_HLL_SEED))
        idx = (hv & _U(m - 1)).astype(np.intp)
        hv >>= _U(p)
        # rank = (64 - p) - bit_length(rest) + 1; rest < 2**53, so its float64 exponent is
        # its exact bit length (0 for 0).
        _, bit_length = np.frexp(hv.astype(np.float64))
        flat[idx * 64 + ((64 - p + 1) - bit_length)] = True  # idempotent: no ufunc.at needed
    top = 63 - np.argmax(present[:, ::-1], axis=1)
    return np.where(present.any(axis=1), top, 0).astype(np.int8)


def estimate_distinct(registers: np.ndarray) -> float:
    from datasketch import HyperLogLogPlusPlus

    return float(HyperLogLogPlusPlus(reg=registers.astype(np.int8)).count())


def _part_hashes(part: Part, hasher: NgramHasher) -> tuple[list[np.ndarray], int]:
    """Every n-gram hash of a part, and its documents (a whole-file document: 1 if the part
    holds any text; the file's count is capped at 1 later)."""
    texts = part_texts(part)
    if part.whole_doc:
        (text,) = texts
        carry = None
        if part.start > 0:
            carry = hasher.word_hashes([text_before(part, hasher.n - 1)])[0]
        return list(hasher.hash_pieces(pieces(text), carry)), int(bool(text.strip()))
    docs = [0]

    def counted() -> Iterator[str]:
        for t in texts:
            docs[0] += 1
            yield t

    return [nh.hashes for nh in hasher.iter_hashes(counted())], docs[0]


def _save_npy(path: str, array: np.ndarray) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def _write_json(path: str, data: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def hash_part(part: Part, index: int, n: int, work: str) -> PartStats:
    """Step 1 for one part: its sorted distinct hashes and registers to ``work``, its counts
    to ``part-N.json`` (written last: the part is done)."""
    arrays, docs = _part_hashes(part, NgramHasher(n))
    h = np.concatenate(arrays) if arrays else np.empty(0, _U)
    del arrays
    ngrams = len(h)
    h.sort()
    if ngrams:
        h = h[np.concatenate(([True], h[1:] != h[:-1]))]
    base = os.path.join(work, f"part-{index:06d}")
    _save_npy(base + ".npy", h)
    _save_npy(base + ".hll.npy", hll_registers(h))
    stats = PartStats(index, part.file, docs, ngrams, len(h), base + ".npy")
    _write_json(base + ".json", asdict(stats))
    return stats


Segment = tuple[str, int, int]
"""Hashes of one part's sorted file that fall in one range: (path, byte offset, count)."""


def segments(paths: list[str], edges: list[int]) -> list[list[Segment]]:
    """Per range ``[edges[i], edges[i + 1])`` (the last edge may be 2**64), each part's
    segment of hashes in it: every file is mapped once and searched for all edges at once,
    so the cost is one map per part, not one per part and range (which grows as the square
    of the input: 4x the text is 4x the parts times 4x the ranges)."""
    ranges: list[list[Segment]] = [[] for _ in edges[:-1]]
    top = min(edges[-1], 2**64 - 1)
    keys = np.array([min(e, top) for e in edges], dtype=_U)
    for path in paths:
        mm = np.load(path, mmap_mode="r")
        idx = np.searchsorted(mm, keys)
        if edges[-1] >= 2**64:
            idx[-1] = len(mm)
        offset = mm.offset
        del mm
        for i, (a, b) in enumerate(zip(idx[:-1].tolist(), idx[1:].tolist(), strict=True)):
            if b > a:
                ranges[i].append((path, offset + a * 8, b - a))
    return ranges


def _read(segments: list[Segment]) -> np.ndarray:
    """The segments' hashes in order (read, not mapped: no file page stays in this process)."""
    arrays = [
        np.fromfile(path, dtype="<u8", count=count, offset=at) for path, at, count in segments
    ]
    return np.concatenate(arrays).view(_U) if arrays else np.empty(0, _U)


MERGE_RUNS = 64
"""Up to this many sorted runs, timsort's merge (O(n log runs)) beats a full sort; beyond,
numpy's introsort is faster and does not grow with the number of runs (parts)."""


def merge_runs(h: np.ndarray, runs: int) -> None:
    """Sort ``h``, the concatenation of ``runs`` sorted runs, in place."""
    h.sort(kind="stable" if runs <= MERGE_RUNS else "quicksort")


def count_range(files: Mapping[int, list[Segment]], work: str, index: int) -> dict:
    """Step 2 for one range of hash values: the distinct hashes in it of each file cut into
    several parts (the file's parts' segments merged)."""
    counts = {}
    for file, segs in files.items():
        h = _read(segs)
        merge_runs(h, len(segs))
        counts[str(file)] = int(len(h) and 1 + np.count_nonzero(h[1:] != h[:-1]))
    _write_json(os.path.join(work, f"count-{index:06d}.json"), counts)
    return counts


def fill_range(
    segs: list[Segment], path: str, offset: int, blocks: int, first: int, last: int, mark: str
) -> FillStats:
    """Step 4 for blocks ``[first, last)``: OR in every part's hashes that fall there (its
    ``segs``); its fill statistics (while its pages are at hand) go to ``mark``, written
    last."""
    h = _read(segs)
    merge_runs(h, len(segs))
    words = open_blocks(path, offset, first, last)
    add_sorted(words, h, blocks, first)
    stats = FillStats.of(words)
    words.flush()
    del words
    _write_json(mark, asdict(stats))
    return stats


class _InProcess(Executor):
    """An Executor that runs each call at once (workers=1: no process start-up)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        fut.set_result(fn(*args, **kwargs))
        return fut


def resolve_workers(workers: int) -> int:
    return workers if workers > 0 else (os.cpu_count() or 1)


def _plan(train: TrainSide, parts: list[Part], n: int, chunk_bytes: int) -> dict[str, Any]:
    """What the scratch files depend on: a rerun reuses them only if this is unchanged."""
    files = []
    for s in train.sources:
        fs, p = storage.resolve(s.path)
        info = fs.get_file_info(p)
        files.append([s.path, s.kind, s.field, s.text_docs, info.size, info.mtime_ns])
    return {
        "version": PLAN_VERSION,
        "n": n,
        "chunk_bytes": chunk_bytes,
        "files": files,
        "parts": [[p.file, p.start, p.end] for p in parts],
    }


def _prepare_work(work: str, plan: dict[str, Any]) -> None:
    """Keep ``work`` if it was made for this plan (a killed build), else start it empty."""
    plan_path = os.path.join(work, "plan.json")
    if os.path.exists(plan_path):
        with open(plan_path) as f:
            if json.load(f) == json.loads(json.dumps(plan)):
                return
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    _write_json(plan_path, plan)


def _load_done(work: str, index: int) -> PartStats | None:
    path = os.path.join(work, f"part-{index:06d}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return PartStats(**json.load(f))


def _ranges(blocks: int, count: int) -> list[tuple[int, int]]:
    """About ``count`` ranges of blocks, each a whole number of STATS_BLOCKS runs."""
    runs = -(-blocks // STATS_BLOCKS)
    step = -(-runs // max(1, count)) * STATS_BLOCKS
    return [(a, min(a + step, blocks)) for a in range(0, blocks, step)]


@dataclass(frozen=True)
class Sized:
    """Step 3's result: the filter's metadata (its header, with the size)."""

    meta: dict[str, Any]
    blocks: int


def _size(
    train: TrainSide,
    stats: list[PartStats],
    file_distinct: dict[int, int],
    fp_rate: float,
    meta: Mapping[str, Any],
) -> Sized:
    registers = np.zeros(1 << HLL_P, dtype=np.int8)
    for s in stats:
        np.maximum(registers, np.load(s.hash_file.replace(".npy", ".hll.npy")), out=registers)
    upper = sum(file_distinct.values())
    lower = max(file_distinct.values(), default=0)
    # HLL's standard error at p=14 is 0.8%; size for 3 sigma above the estimate.
    estimate = estimate_distinct(registers) if stats else 0.0
    items = int(min(upper, max(lower, estimate * (1 + 3 * 1.04 / 2 ** (HLL_P / 2)))))
    docs = 0
    for i, src in enumerate(train.sources):
        file_docs = sum(s.docs for s in stats if s.file == i)
        if file_docs == 0:
            raise ContaminationInputError(f"{src.path}: empty file, no documents")
        whole = src.kind == "text" and src.text_docs == "file"
        docs += min(1, file_docs) if whole else file_docs
    full = {
        "items": items,
        "target_fp_rate": fp_rate,
        "distinct_estimate": round(estimate),
        "ngrams": sum(s.ngrams for s in stats),
        "docs": docs,
        "train_kind": train.kind,
        "manifest_checksum": train.checksum,
        "sources": len(train.sources),
        **meta,
    }
    return Sized(full, blocks_for(items, fp_rate))


def _build_local(
    train: TrainSide,
    n: int,
    fp_rate: float,
    path: str,
    workers: int,
    chunk_bytes: int,
    meta: Mapping[str, Any],
) -> FillStats:
    parts = plan_parts(train.sources, chunk_bytes)
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    work = os.path.join(folder, f".{name}.work")
    _prepare_work(work, _plan(train, parts, n, chunk_bytes))
    # datasketch takes ~2 s to import: let the idle driver do it while the workers hash.
    warm = threading.Thread(target=importlib.import_module, args=("datasketch",), daemon=True)
    warm.start()
    workers = min(resolve_workers(workers), len(parts))
    if workers == 1:
        pool: Executor = _InProcess()
    else:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    with pool:
        done = {i: _load_done(work, i) for i in range(len(parts))}
        futures = {
            i: pool.submit(hash_part, part, i, n, work)
            for i, part in enumerate(parts)
            if done[i] is None
        }
        stats = [done[i] or futures[i].result() for i in range(len(parts))]
        by_file: dict[int, list[PartStats]] = {}
        for s in stats:
            by_file.setdefault(s.file, []).append(s)
        file_distinct = {f: ss[0].distinct for f, ss in by_file.items() if len(ss) == 1}
        cut = {f: [s.hash_file for s in ss] for f, ss in by_file.items() if len(ss) > 1}
        if cut:
            total = sum(s.distinct for ss in by_file.values() if len(ss) > 1 for s in ss)
            count = max(workers, -(-total * 8 // chunk_bytes))
            edges = [i * 2**64 // count for i in range(count + 1)]
            per_file = {f: segments(hash_files, edges) for f, hash_files in cut.items()}
            jobs = []
            for i in range(count):
                mark = os.path.join(work, f"count-{i:06d}.json")
                if os.path.exists(mark):
                    with open(mark) as f:
                        jobs.append(_done_future(json.load(f)))
                else:
                    mine = {f: segs[i] for f, segs in per_file.items()}
                    jobs.append(pool.submit(count_range, mine, work, i))
            for job in jobs:
                for f, c in job.result().items():
                    file_distinct[int(f)] = file_distinct.get(int(f), 0) + c
        warm.join()
        sized = _size(train, stats, file_distinct, fp_rate, meta)
        header = header_for(sized.meta, sized.blocks, n)
        partial = os.path.join(folder, f".{name}.partial")
        offset = _open_partial(partial, header, work)
        paths = [s.hash_file for s in stats if s.distinct]
        total = sum(s.distinct for s in stats)
        ranges = _ranges(sized.blocks, max(workers, -(-total * 8 // chunk_bytes)))
        edges = [first_hash(first, sized.blocks) for first, _ in ranges]
        edges.append(first_hash(sized.blocks, sized.blocks))  # 2**64
        segs = segments(paths, edges)
        fills = []
        for i, (first, last) in enumerate(ranges):
            mark = os.path.join(work, f"fill-{i:06d}.json")
            if os.path.exists(mark):
                with open(mark) as f:
                    fills.append(_done_future(FillStats(**json.load(f))))
            else:
                fills.append(pool.submit(
                    fill_range, segs[i], partial, offset, sized.blocks, first, last, mark
                ))  # fmt: skip
        fill = FillStats.join([job.result() for job in fills])
    os.replace(partial, path)
    shutil.rmtree(work, ignore_errors=True)
    log.info(
        "filter: %d docs, %d n-grams, ~%d distinct, %d blocks (%.1f MB)",
        sized.meta["docs"],
        sized.meta["ngrams"],
        sized.meta["items"],
        sized.blocks,
        sized.blocks * 128 / 1e6,
    )
    return fill


def _done_future(value: Any) -> Future[Any]:
    fut: Future[Any] = Future()
    fut.set_result(value)
    return fut


def _open_partial(partial: str, header: dict[str, Any], work: str) -> int:
    """The filter file being filled: a killed build's if it has this header (its filled
    ranges are marked), else a new one with every bit clear (and no marks)."""
    prefix = file_prefix(header)
    size = len(prefix) + int(header["blocks"]) * 128
    if os.path.exists(partial) and os.path.getsize(partial) == size:
        with open(partial, "rb") as f:
            if f.read(len(prefix)) == prefix:
                return len(prefix)
    for mark in os.listdir(work):
        if mark.startswith("fill-"):  # marks of another file's ranges
            os.remove(os.path.join(work, mark))
    return create_file(partial, header)


def build_filter_file(
    train: TrainSide,
    n: int,
    fp_rate: float,
    path: str,
    workers: int = 0,
    chunk_bytes: int = 16 << 20,
    meta: Mapping[str, Any] | None = None,
) -> FillStats:
    """Build the filter of ``train`` into the file ``path`` (local, or a URI: built in a
    local temporary folder, then uploaded); ``meta`` joins its header. Returns its fill
    statistics (for :meth:`BloomFilter.known_fill`)."""
    if "://" not in path or path.startswith("file://"):
        local = storage.resolve(path)[1]
        return _build_local(train, n, fp_rate, local, workers, chunk_bytes, meta or {})
    with tempfile.TemporaryDirectory(prefix="wt-bloom-") as tmp:
        local = os.path.join(tmp, "bloom.bin")
        fill = _build_local(train, n, fp_rate, local, workers, chunk_bytes, meta or {})
        with open(local, "rb") as src, storage.atomic_output(path) as out:
            shutil.copyfileobj(src, out, 1 << 20)
    return fill


def build_from_sources(
    train: TrainSide,
    n: int,
    fp_rate: float,
    workers: int = 0,
    scratch: str | None = None,
    chunk_bytes: int = 16 << 20,
) -> BloomFilter:
    """The filter of ``train`` in memory (built in a temporary file under ``scratch``)."""
    with tempfile.TemporaryDirectory(prefix="wt-bloom-", dir=scratch) as tmp:
        path = os.path.join(tmp, "bloom.bin")
        fill = build_filter_file(train, n, fp_rate, path, workers, chunk_bytes)
        bloom = BloomFilter.load(path, mmap=False)
    bloom.known_fill(fill)
    return bloom
