"""Contamination filter speed: n-grams per second from raw text, ours vs rbloom vs a Python set.

Text: tinyshakespeare (../shared/corpus, when present) plus Zipf-distributed text generated from
its vocabulary, as documents of about 200 words in 8 files (the unit of parallel work). Build:
the whole path from files to a filter (read, normalise, n-grams, count, size, fill). Query:
from raw held-out text to hit flags. Peers do the same work with GPT-2 normalisation in Python,
8-gram strings, and either ``rbloom`` with a stable signed xxh3_128 hash or a ``set``.

    .venv/bin/python bench/contamination_speed.py [--words 3000000]

Last line: ``contamination_speed: build_ratio=... query_ratio=... build_per_s=... query_per_s=...
mem_ratio=...`` (ratios: ours on one core over the rbloom path; mem_ratio: our filter's bytes
over a standard Bloom filter's at the same false-positive rate).
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.context import print_context  # noqa: E402
from bench.zipf_text import base_words, zipf_words  # noqa: E402
from contamination.bloom import BloomFilter, standard_bits  # noqa: E402
from contamination.build import build_from_sources  # noqa: E402
from contamination.ngrams import NgramHasher  # noqa: E402
from contamination.sources import DocSource, ReadOptions, iter_docs, train_side  # noqa: E402

N = 8
FP = 1e-8
WORD = re.compile(r"[^\W_]+")


def make_docs(words: int, seed: int) -> list[str]:
    prefix = base_words() if seed == 0 else []
    tokens = prefix + zipf_words(max(0, words - len(prefix)), seed)
    return [" ".join(tokens[i : i + 200]) for i in range(0, len(tokens), 200)]


def write_files(docs: list[str], directory: Path, parts: int) -> list[str]:
    paths = []
    for i in range(parts):
        path = directory / f"part{i}.txt"
        path.write_text("\n".join(docs[i::parts]) + "\n")
        paths.append(str(path))
    return paths


def py_ngrams(text: str) -> list[str]:
    w = WORD.findall(text.lower())
    return [" ".join(w[i : i + N]) for i in range(len(w) - N + 1)]


def xxh3_signed(s: str) -> int:
    import xxhash

    v = xxhash.xxh3_128_intdigest(s.encode())
    return v - (1 << 128) if v >= 1 << 127 else v


def read_lines(paths: list[str]) -> list[str]:
    return [line for p in paths for line in Path(p).read_text().splitlines() if line]


def query_file(filter_path: str, path: str) -> tuple[int, int]:
    bloom = BloomFilter.load(filter_path)
    total = hits = 0
    hasher = NgramHasher(N)
    src = DocSource(path, "text", text_docs="line")
    for nh in hasher.iter_hashes(t for _, t in iter_docs(src)):
        total += len(nh.hashes)
        hits += int(bloom.contains(nh.hashes).sum())
    return total, hits


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--words", type=int, default=8_000_000, help="enough that pool start-up is amortised"
    )
    args = ap.parse_args()
    from rbloom import Bloom

    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        (tmpd / "train").mkdir()
        (tmpd / "query").mkdir()
        train_files = write_files(make_docs(args.words, 0), tmpd / "train", 8)
        # As much text as the training side, in 8 files: a query of a fraction of a second
        # would measure the pool's dispatch, not the scaling.
        query_files = write_files(make_docs(args.words, 1), tmpd / "query", 8)
        opts = ReadOptions(text_docs="line")
        side = train_side(train_files, opts)

        bloom, t_build1 = timed(lambda: build_from_sources(side, N, FP, workers=1))
        ngrams_train = bloom.meta["ngrams"]
        _, t_build2 = timed(lambda: build_from_sources(side, N, FP, workers=2))
        fpath = str(tmpd / "bloom.bin")
        bloom.save(fpath)
        ctx = multiprocessing.get_context("spawn")

        def pooled_query(workers: int):
            """Both figures from worker processes alike (the driver's own memory and page
            state made its in-process figure several times slower than a worker's)."""
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                list(pool.map(query_file, [fpath] * workers, query_files[:workers]))  # start-up
                return timed(lambda: list(pool.map(query_file, [fpath] * 8, query_files)))

        q1, t_query1 = pooled_query(1)
        ngrams_query = sum(t for t, _ in q1)
        _, t_query2 = pooled_query(2)

        def rb_build():
            b = Bloom(bloom.meta["items"], FP, xxh3_signed)
            for line in read_lines(train_files):
                b.update(py_ngrams(line))
            return b

        rb, t_rb_build = timed(rb_build)
        _, t_rb_query = timed(
            lambda: sum(g in rb for line in read_lines(query_files) for g in py_ngrams(line))
        )

        def set_build():
            s: set[str] = set()
            for line in read_lines(train_files):
                s.update(py_ngrams(line))
            return s

        st, t_set_build = timed(set_build)
        _, t_set_query = timed(
            lambda: sum(g in st for line in read_lines(query_files) for g in py_ngrams(line))
        )
        py_hits = sum(g in st for line in read_lines(query_files) for g in py_ngrams(line))

    ours_hits = sum(h for _, h in q1)
    std_bytes = standard_bits(bloom.meta["items"], FP) / 8
    rate = {
        "ours build 1 core": ngrams_train / t_build1,
        "ours build 2 workers": ngrams_train / t_build2,
        "ours query 1 core": ngrams_query / t_query1,
        "ours query 2 workers": ngrams_query / t_query2,
        "python+rbloom build": ngrams_train / t_rb_build,
        "python+rbloom query": ngrams_query / t_rb_query,
        "python set build": ngrams_train / t_set_build,
        "python set query": ngrams_query / t_set_query,
    }
    print(
        f"train: {ngrams_train} {N}-grams (~{bloom.meta['items']} distinct); query: {ngrams_query}"
    )
    for k, v in rate.items():
        print(f"  {k:22s} {v / 1e6:6.2f} M n-grams/s")
    print(f"  hits ours={ours_hits} exact(set)={py_hits}")
    print(
        f"  memory: ours {bloom.nbytes / 1e6:.2f} MB, standard Bloom {std_bytes / 1e6:.2f} MB, "
        f"rbloom {rb.size_in_bits / 8e6:.2f} MB, python set {sys.getsizeof(st) / 1e6:.0f}+ MB"
    )
    print(
        f"  scaling 2 workers: build {t_build1 / t_build2:.2f}x, query {t_query1 / t_query2:.2f}x; "
        f"estimated fp {bloom.estimated_fp_rate():.3g}"
    )
    print_context(words=args.words, n=N, fp_rate=FP)
    print(
        "contamination_speed: "
        f"build_ratio={rate['ours build 1 core'] / rate['python+rbloom build']:.2f} "
        f"query_ratio={rate['ours query 1 core'] / rate['python+rbloom query']:.2f} "
        f"build_per_s={rate['ours build 1 core']:.0f} "
        f"query_per_s={rate['ours query 1 core']:.0f} "
        f"mem_ratio={bloom.nbytes / std_bytes:.2f}"
    )


if __name__ == "__main__":
    main()
