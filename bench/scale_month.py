"""A real month on one machine (issue 16 item 3): ~1M documents (~4.5 GB of text) through
``webtext dedup``, ``webtext tokenize`` and ``webtext contamination check``, as a user runs
them, with the process tree's wall time, CPU seconds and peak memory (sampled every 0.5 s).

Input (generated, seeded, streamed shard by shard: never the whole text in memory), with the
manifest the ingest job writes, one of two corpora (``--corpus``):

- ``zipf``: text shards of ``--shard-docs`` documents (``output.shard_docs``' default), each
  document one line of ``--words`` Zipf-distributed words from tinyshakespeare's vocabulary
  (bench/zipf_text.py, ~5.6 bytes per word);
- ``near``: bench/scale_dedup.py's documents (~4.5 KB of Zipf-like prose, 20% near copies and
  10% exact copies of earlier ones) in shards of 5,000, what the dedup stage needs.

A tokenizer is trained first on the first ~20 MB (not timed: a month is tokenized with a
tokenizer trained once). Every stage reads the same generated shards. Dedup runs with 2
workers (``--output-workers 2``); the contamination check reads the shards as its training
side (one part per shard) against a small test set: 50 documents' first 40 words (planted
overlap) and 50 fresh lines.

    .venv/bin/python bench/scale_month.py [--docs 1000000] [--corpus zipf|near]
        [--stages dedup,tokenize,contamination] [--work DIR]

With ``--work`` the shards stay there and a later run with the same ``--docs`` reuses them.
Last line: ``scale_month: docs=... dedup_s=... dedup_cpu_s=... dedup_peak_mb=...
dedup_removed=... text_mb=... tok_s=... tok_cpu_s=... tok_peak_mb=... cont_s=... cont_cpu_s=...
cont_peak_mb=...`` (the stages run).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.context import print_context  # noqa: E402
from bench.process_tree import run_measured  # noqa: E402
from bench.zipf_text import zipf_lines  # noqa: E402

CORPUS = "zipf"  # set from --corpus
PLANTED = 50
PLANTED_WORDS = 40
SAMPLE_BYTES = 20_000_000


def documents(docs: int, words: int) -> Iterator[str]:
    """``docs`` documents of ``words`` words, generated batch by batch."""
    if CORPUS == "near":
        from bench.scale_dedup import text_of

        yield from (text_of(k) for k in range(docs))
        return
    left = docs
    for batch in zipf_lines(docs * words * 8, seed=0, words_per_line=words):
        for line in batch.decode().splitlines():
            yield line
            left -= 1
            if not left:
                return


def generate(shards: Path, docs: int, words: int, shard_docs: int) -> None:
    """Text shards and their manifest (written last, as ingest does)."""
    from foundation.shards import Manifest, shard_name, table_from_rows, write_table
    from tests.shard_factory import text_row

    if CORPUS == "near":
        from bench.scale_dedup import write_corpus

        write_corpus(docs, shards)
        return
    shards.mkdir(parents=True, exist_ok=True)
    files, rows = [], []
    for i, text in enumerate(documents(docs, words)):
        rows.append(text_row(text, i))
        if len(rows) == shard_docs:
            path = f"{shards}/{shard_name(len(files), 'parquet')}"
            files.append(write_table(table_from_rows(rows), path, "parquet"))
            rows = []
    if rows:
        path = f"{shards}/{shard_name(len(files), 'parquet')}"
        files.append(write_table(table_from_rows(rows), path, "parquet"))
    Manifest(kind="text", format="parquet", files=files, counts={"docs": docs}).save(str(shards))


def test_set(path: Path, words: int) -> None:
    planted = [" ".join(t.split()[:PLANTED_WORDS]) for t in documents(PLANTED, words)]
    fresh = b"".join(zipf_lines(PLANTED * 1200, seed=1)).decode().splitlines()[:PLANTED]
    path.write_text("\n".join(planted + fresh) + "\n")


def train(shards: Path, out: Path) -> None:
    from foundation.shards import Manifest, read_table
    from trainer.tokenizer import train_tokenizer

    def sample() -> Iterator[str]:
        left = SAMPLE_BYTES
        for p in Manifest.load(str(shards)).paths(str(shards)):
            for text in read_table(p, ["text"]).column("text").to_pylist():
                yield text
                left -= len(text)
                if left <= 0:
                    return

    train_tokenizer(sample(), vocab_size=50257, min_frequency=2).save(str(out))


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(name: str, argv: list[str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak MB) of ``webtext ARGV`` run as a user would."""
    cpu = cpu_children()
    m = run_measured([sys.executable, "-m", "webtext.cli", *argv], cwd=str(ROOT))
    cpu = cpu_children() - cpu
    if m.returncode:
        raise SystemExit(f"{name} failed ({m.returncode}):\n{m.output[-3000:]}")
    return m.seconds, cpu, m.peak_mb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--words", type=int, default=800, help="words per document")
    parser.add_argument("--shard-docs", type=int, default=10_000)
    parser.add_argument("--corpus", choices=("zipf", "near"), default="zipf")
    parser.add_argument("--stages", default="tokenize,contamination")
    parser.add_argument("--work", type=Path, help="keep the shards here (reused when present)")
    args = parser.parse_args(argv)
    global CORPUS
    CORPUS = args.corpus
    stages = args.stages.split(",")
    print_context(docs=args.docs, words=args.words, corpus=args.corpus, stages=args.stages)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        shards = work / f"{'shards' if CORPUS == 'zipf' else 'near'}-{args.docs}"
        if not (shards / "_manifest.json").exists():
            generate(shards, args.docs, args.words, args.shard_docs)
        text_mb = sum(p.stat().st_size for p in shards.glob("*.parquet")) / 1e6
        manifest = json.loads((shards / "_manifest.json").read_text())
        print(f"{args.docs} docs in {len(manifest['files'])} shards ({text_mb:.0f} MB parquet)")
        figures: dict[str, float] = {"docs": args.docs}
        if "dedup" in stages:
            out = Path(tmp) / "dedup"
            s, cpu, peak = measure(
                "dedup", ["dedup", str(shards), "--out", str(out), "--output-workers", "2"]
            )
            report = json.loads((out / "_report" / "report.json").read_text())
            removed = report["documents_in"] - report["documents_out"]
            figures |= {"dedup_s": s, "dedup_cpu_s": cpu, "dedup_peak_mb": peak,
                        "dedup_removed": removed}  # fmt: skip
            print(f"dedup: {s:.0f} s wall, {cpu:.0f} CPU s, peak {peak:.0f} MB; "
                  f"{report['documents_in']} in, {report['documents_out']} out, removed "
                  f"{report['removed']}, {report['candidate_pairs']} candidate pairs",
                  flush=True)  # fmt: skip
            shutil.rmtree(out)
        if "tokenize" in stages:
            tok = work / "tokenizer.json"
            if not tok.exists():
                train(shards, tok)
            out = Path(tmp) / "tokens"
            s, cpu, peak = measure(
                "tokenize", ["tokenize", str(shards), "--out", str(out), "--tokenizer", str(tok),
                             "--workers", "2", "--no-progress"]
            )  # fmt: skip
            counts = json.loads((out / "_manifest.json").read_text())["counts"]
            mb = counts["text_bytes"] / 1e6
            figures |= {"text_mb": mb, "tok_s": s, "tok_cpu_s": cpu, "tok_peak_mb": peak,
                        "tok_mb_per_s": mb / s}  # fmt: skip
            print(f"tokenize: {mb:.0f} MB of text in {s:.0f} s wall, {cpu:.0f} CPU s, peak "
                  f"{peak:.0f} MB; counts {counts}", flush=True)  # fmt: skip
        if "contamination" in stages:
            test = Path(tmp) / "test.txt"
            test_set(test, args.words)
            out = Path(tmp) / "contamination"
            s, cpu, peak = measure(
                "contamination", ["contamination", "check", "--train", str(shards),
                                  "--test", f"planted={test}", "--out", str(out)]
            )  # fmt: skip
            report = json.loads((out / "report.json").read_text())
            planted = report["test_sets"]["planted"]
            filter_mb = (out / "bloom.bin").stat().st_size / 1e6
            figures |= {"cont_s": s, "cont_cpu_s": cpu, "cont_peak_mb": peak,
                        "cont_filter_mb": filter_mb}  # fmt: skip
            print(f"contamination: {s:.0f} s wall, {cpu:.0f} CPU s, peak {peak:.0f} MB, filter "
                  f"{filter_mb:.0f} MB, {report['filter']['ngrams']} 8-grams of "
                  f"{report['filter']['docs']} docs; planted {planted['hits']}/"
                  f"{planted['ngrams']} found", flush=True)  # fmt: skip
    print("scale_month: " + " ".join(f"{k}={v:.4g}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
