"""``webtext dedup`` at size against datasketch's one-process MinHashLSH, peak memory and speed.

    PYTHONPATH=$PWD .venv/bin/python bench/scale_dedup.py [--n 80000] [--growth] [--no-baseline]

Generates ``n`` documents (~4.5 KB of Zipf-like prose each; 70% originals, 20% near copies of
an earlier original with 1-4% of their words replaced, 10% exact copies) as text shards of
5,000 documents, written streaming and seeded. Runs ``webtext dedup`` through the CLI (2
worker processes) under :func:`bench.process_tree.run_measured`, then the baseline in its own
measured process: exact dedup by content hash, then datasketch ``MinHash`` of the same word
5-gram shingles (same num_perm and seed; datasketch's default SHA-1 shingle hash, its fastest
from Python) queried and inserted into a ``MinHashLSH`` with the same threshold and weights
(same 20 x 6 bands), removing a document when LSH returns any candidate. The baseline does not
verify candidates; ``datasketch_unverified`` counts its removals whose candidates all have a
true Jaccard below the threshold. ``--growth`` also runs ``webtext dedup`` (not the baseline)
on 4n documents and prints ``mem_growth``, ``time_growth`` (wall) and ``cpu_growth``.
``driver_peak_mb`` and ``worker_peak_mb`` are the highest RSS of the driver and of any one
Beam worker (``driver_growth``, ``worker_growth`` at 4n).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from collections.abc import Iterator
from functools import lru_cache
from itertools import accumulate
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.context import print_context  # noqa: E402
from bench.process_tree import run_measured  # noqa: E402

SHARD_DOCS = 5_000
WORDS_PER_DOC = 750  # ~4.5 KB
VOCAB = 20_000


@lru_cache(maxsize=1)
def _vocab() -> tuple[list[str], list[float]]:
    rng = random.Random(0)
    words = [
        "".join(rng.choice("etaoinshrdlucmfwypvbgk") for _ in range(rng.randint(2, 9)))
        for _ in range(VOCAB)
    ]
    return words, list(accumulate(1.0 / (i + 1) for i in range(VOCAB)))


def original(i: int) -> str:
    """The seeded text of original ``i``: paragraphs of Zipf-distributed words."""
    words, cum = _vocab()
    rng = random.Random(i)
    toks = rng.choices(words, cum_weights=cum, k=WORDS_PER_DOC)
    return "\n\n".join(" ".join(toks[j : j + 80]) + "." for j in range(0, len(toks), 80))


def text_of(k: int) -> str:
    """Document ``k``: an original, a near copy or an exact copy of an earlier original."""
    from tests.dedup_docs import edit

    rng = random.Random(10**9 + k)
    kind = rng.random()
    if k < 10 or kind < 0.7:
        return original(k)
    base = original(rng.randrange(k // 2))
    if kind < 0.9:
        return edit(base, rng.choice((0.01, 0.02, 0.03, 0.04)), k)
    return base


def write_corpus(n: int, directory: Path) -> None:
    """Text shards of ``n`` documents and their manifest, one shard in memory at a time."""
    from foundation.shards import Manifest, shard_name, table_from_rows, write_table
    from pipeline.text import content_hash
    from tests.shard_factory import text_row

    files = []
    for s, start in enumerate(range(0, n, SHARD_DOCS)):
        rows = []
        for k in range(start, min(n, start + SHARD_DOCS)):
            text = text_of(k)
            rows.append(text_row(text, k, content_hash=content_hash(text)))
        files.append(
            write_table(table_from_rows(rows), str(directory / shard_name(s, "parquet")), "parquet")
        )
    Manifest(kind="text", format="parquet", files=files, counts={"docs": n}).save(str(directory))


# --- the baseline: datasketch, one process -------------------------------------------------


def _docs(directory: Path) -> Iterator[tuple[int, dict]]:
    from foundation.shards import iter_batches

    k = 0
    for batch in iter_batches(str(directory), ["id", "text", "content_hash"]):
        for row in batch.to_pylist():
            yield k, row
            k += 1


def baseline(directory: Path, pairs_path: Path) -> None:
    """Exact dedup, then greedy MinHashLSH query-then-insert; prints the removed count."""
    from datasketch import MinHash, MinHashLSH

    from dedup.minhash import shingle_texts, tokens
    from foundation.config import DedupConfig

    cfg = DedupConfig()
    lsh = MinHashLSH(
        threshold=cfg.threshold, num_perm=cfg.num_perm, weights=(1 - cfg.fn_weight, cfg.fn_weight)
    )
    seen: set[str] = set()
    removed, pairs = 0, []
    for k, row in _docs(directory):
        if row["content_hash"] in seen:
            removed += 1
            continue
        seen.add(row["content_hash"])
        shingles = shingle_texts(tokens(row["text"] or ""), cfg.ngram)
        if not shingles:
            continue
        m = MinHash(num_perm=cfg.num_perm, seed=cfg.seed)
        m.update_batch(shingles)
        found = lsh.query(m)
        if found:
            removed += 1
            pairs.append((k, [int(f) for f in found]))
        else:
            lsh.insert(str(k), m)
    pairs_path.write_text(json.dumps(pairs))
    print(f"datasketch_removed={removed}")


def unverified(pairs_path: Path) -> int:
    """Baseline removals whose every LSH candidate is below the threshold in true Jaccard."""
    from dedup.minhash import jaccard, shingle_hashes
    from foundation.config import DedupConfig

    cfg = DedupConfig()
    count = 0
    for k, found in json.loads(pairs_path.read_text()):
        mine = shingle_hashes(text_of(k), cfg.ngram)
        if all(jaccard(mine, shingle_hashes(text_of(f), cfg.ngram)) < cfg.threshold for f in found):
            count += 1
    return count


# --- measure ----------------------------------------------------------------------------------


def _field(output: str, name: str) -> int:
    for line in output.splitlines():
        if line.startswith(f"{name}="):
            return int(line.split("=", 1)[1])
    raise SystemExit(f"no {name} in:\n{output[-2000:]}")


def process_kind(p, root) -> str:
    """The driver (the CLI process), a Beam SDK worker, or other."""
    if p.pid == root.pid:
        return "driver"
    return "worker" if "sdk_worker_main" in " ".join(p.cmdline()) else "other"


def _child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(n: int, work: Path, with_baseline: bool = True) -> dict[str, float]:
    work.mkdir(parents=True, exist_ok=True)
    shards = work / f"in-{n}"
    if not (shards / "_manifest.json").exists():
        start = time.perf_counter()
        write_corpus(n, shards)
        print(f"generated {n} documents in {time.perf_counter() - start:.1f} s", flush=True)
    py = sys.executable
    cpu0 = _child_cpu_s()
    ours = run_measured(
        [py, "-m", "webtext.cli", "dedup", str(shards), "--out", str(work / f"out-{n}"),
         "--output-workers", "2"],
        cwd=str(ROOT), kind=process_kind,
    )  # fmt: skip
    if ours.returncode != 0:
        raise SystemExit(f"webtext dedup failed ({ours.returncode}):\n{ours.output[-3000:]}")
    report = json.loads((work / f"out-{n}" / "_report" / "report.json").read_text())
    removed = report["documents_in"] - report["documents_out"]
    cpu1 = _child_cpu_s()
    ours_figures = {
        "n": n,
        "dedup_peak_mb": round(ours.peak_mb),
        "dedup_s": round(ours.seconds, 1),
        "dedup_cpu_s": round(cpu1 - cpu0, 1),
        "driver_peak_mb": round(ours.process_peak_mb.get("driver", 0)),
        "worker_peak_mb": round(ours.process_peak_mb.get("worker", 0)),
        "removed": removed,
        "removed_exact": report["removed"]["exact"],
        "candidate_pairs": report["candidate_pairs"],
    }
    if not with_baseline:
        return ours_figures
    pairs = work / f"datasketch-{n}.json"
    base = run_measured(
        [py, str(Path(__file__).resolve()), "--baseline", str(shards), "--pairs", str(pairs)],
        cwd=str(ROOT),
    )
    if base.returncode != 0:
        raise SystemExit(f"baseline failed ({base.returncode}):\n{base.output[-3000:]}")
    base_cpu = _child_cpu_s() - cpu1
    return {
        **ours_figures,
        "datasketch_s": round(base.seconds, 1),
        "datasketch_peak_mb": round(base.peak_mb),
        "datasketch_cpu_s": round(base_cpu, 1),
        "dedup_ratio": round(base.seconds / ours.seconds, 3),
        "dedup_cpu_ratio": round(base_cpu / ours_figures["dedup_cpu_s"], 3),
        "datasketch_removed": _field(base.output, "datasketch_removed"),
        "datasketch_unverified": unverified(pairs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=80_000)
    parser.add_argument(
        "--growth", action="store_true", help="also run 4n (without the baseline): mem_growth"
    )
    parser.add_argument("--no-baseline", action="store_true", help="only webtext dedup")
    parser.add_argument("--work", type=Path, default=Path("/tmp/scale_dedup"))
    parser.add_argument("--baseline", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pairs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        baseline(args.baseline, args.pairs)
        return
    results = [measure(args.n, args.work, not args.no_baseline)]
    if args.growth:
        results.append(measure(4 * args.n, args.work, with_baseline=False))
    for r in results:
        print(" ".join(f"{k}={v}" for k, v in r.items()), flush=True)
    line = dict(results[0])
    if args.growth:
        line["mem_growth"] = round(results[1]["dedup_peak_mb"] / results[0]["dedup_peak_mb"], 2)
        line["time_growth"] = round(results[1]["dedup_s"] / results[0]["dedup_s"], 2)
        line["cpu_growth"] = round(results[1]["dedup_cpu_s"] / results[0]["dedup_cpu_s"], 2)
        for part in ("driver", "worker"):
            key = f"{part}_peak_mb"
            line[f"{part}_growth"] = round(results[1][key] / max(1, results[0][key]), 2)
    print_context(n=args.n, shard_docs=SHARD_DOCS, workers=2, words_per_doc=WORDS_PER_DOC)
    print("scale_dedup: " + " ".join(f"{k}={v}" for k, v in line.items() if k != "n"))


if __name__ == "__main__":
    main()
