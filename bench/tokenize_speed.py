"""MB/s of text from text shards to token shards (``tokenize_shards``, 2 workers), beside Hugging
Face ``tokenizers`` ``encode_batch`` with 2 threads on the same text held in memory.

Text: main text of the shared corpus pages (trafilatura) plus tinyshakespeare, repeated under
fresh document ids up to ``--mb``. The tokenizer (GPT-2 size by default) is trained first on the
unrepeated text and is the same for both sides; its training is not timed. Our figure is end to
end (spawning workers, reading Parquet, the split, encoding, writing and packing token files,
the manifest); the HF figure is encoding alone. The two alternate ``--repeats`` times and the
best run of each counts (the machine is shared: load from others hits both sides alike).

    .venv/bin/python bench/tokenize_speed.py [--mb 40] [--workers 2] [--vocab-size 50257]

Last line: ``tokenize_speed: ratio=... mb_per_s=...``.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAYON_NUM_THREADS", "2")  # HF's thread pool: read once, at first use

import argparse
import gzip
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
sys.path.insert(0, str(ROOT))  # tests.shard_factory; spawned workers inherit sys.path

from bench.context import print_context  # noqa: E402


def corpus_docs(pages: int) -> list[str]:
    import trafilatura

    docs = []
    for path in sorted((CORPUS / "pages" / "html").glob("*.html.gz"))[:pages]:
        html = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        if (text := trafilatura.extract(html, fast=True)) and len(text) >= 200:
            docs.append(text)
    lines = (CORPUS / "lm" / "tinyshakespeare" / "input.txt").read_text().splitlines(True)
    docs += ["".join(lines[i : i + 60]) for i in range(0, len(lines), 60)]
    return docs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=40.0, help="MB of text to tokenize")
    ap.add_argument("--pages", type=int, default=602, help="corpus pages to extract text from")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--vocab-size", type=int, default=50257)
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs; best counts")
    ap.add_argument("--shard-docs", type=int, default=500, help="documents per text shard")
    args = ap.parse_args(argv)
    if not CORPUS.is_dir():
        print(f"tokenize_speed: {CORPUS} is not present", file=sys.stderr)
        return 1

    from tokenizers import Tokenizer as HFTokenizer

    from foundation.config import TokenizeConfig
    from tests.shard_factory import make_text_shards
    from trainer.tokenize import tokenize_shards
    from trainer.tokenizer import train_tokenizer

    base = corpus_docs(args.pages)
    base_mb = sum(len(d.encode()) for d in base) / 1e6
    t0 = time.perf_counter()
    tok = train_tokenizer(base, vocab_size=args.vocab_size, min_frequency=2)
    print(
        f"tokenizer: {tok.vocab_size} ids trained on {len(base)} docs ({base_mb:.1f} MB) "
        f"in {time.perf_counter() - t0:.1f} s; engine {tok.engine}"
    )
    docs = base * max(1, round(args.mb / base_mb))
    text_mb = sum(len(d.encode()) for d in docs) / 1e6

    with tempfile.TemporaryDirectory() as tmp:
        tok_path = os.path.join(tmp, "tokenizer.json")
        tok.save(tok_path)
        make_text_shards(os.path.join(tmp, "shards"), docs, shard_docs=args.shard_docs)
        cfg = replace(
            TokenizeConfig(),
            tokenizer=tok_path,
            workers=args.workers,
            val_fraction=0.005,
        )
        hf = HFTokenizer.from_file(tok_path)
        hf.encode_batch(docs[:50], add_special_tokens=False)  # warm the thread pool
        ours_s, hf_s = [], []
        for rep in range(args.repeats):  # alternate, so that both see the same machine load
            out = os.path.join(tmp, f"tokens{rep}")  # fresh: nothing to resume
            t0 = time.perf_counter()
            m = tokenize_shards(os.path.join(tmp, "shards"), out, cfg, False)
            ours_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            encoded = hf.encode_batch(docs, add_special_tokens=False)
            hf_s.append(time.perf_counter() - t0)
        n_tokens = m.counts["tokens_train"] + m.counts["tokens_val"]
        hf_tokens = sum(len(e.ids) for e in encoded) + len(docs)  # + one EOT per document

    t0 = time.perf_counter()
    for d in docs[: len(base)]:
        tok.encode(d)
    tt_mbs = base_mb / (time.perf_counter() - t0)

    print(f"runs (s): ours {[round(t, 2) for t in ours_s]}, HF {[round(t, 2) for t in hf_s]}")
    ours_s, hf_s = min(ours_s), min(hf_s)
    ours, theirs = text_mb / ours_s, text_mb / hf_s
    print(f"text: {len(docs)} docs, {text_mb:.1f} MB in {len(m.files)} token files")
    print(f"ours (shards -> token shards, {args.workers} workers): {ours_s:.2f} s, {ours:.2f} MB/s")
    print(f"HF tokenizers encode_batch (RAYON_NUM_THREADS=2): {hf_s:.2f} s, {theirs:.2f} MB/s")
    print(f"tiktoken engine, one thread, in process: {tt_mbs:.2f} MB/s")
    same = "same" if n_tokens == hf_tokens else "DIFFER"
    print(f"tokens (with one EOT per document): ours {n_tokens}, HF {hf_tokens} ({same})")
    print_context(
        mb=round(text_mb, 1), workers=args.workers, vocab=tok.vocab_size, repeats=args.repeats
    )
    print(
        f"tokenize_speed: ratio={ours / theirs:.2f} mb_per_s={ours:.2f} hf_mb_per_s={theirs:.2f} "
        f"workers={args.workers} mb={text_mb:.1f} vocab={tok.vocab_size}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
