"""The per-item figures of ``webtext plan`` (webtext/plan.py: Figures), measured on real data.

Reads ../shared/corpus: the Pushshift samples (bytes per submission after zstd), the pages
(gzip and raw HTML size, trafilatura's text: bytes per word, Parquet zstd ratio, distinct 8-grams
per word, and BPE tokens per byte with a byte-level BPE trained on half the texts and applied
to the other half) and the URLs of gold.json.

    python bench/plan_figures.py [--pages N]

Last line: ``plan_figures: dump_bytes_per_submission=... warc_bytes_per_page=... ...``
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import lzma
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.context import print_context  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
HEADER_BYTES = 500  # WARC + HTTP headers per record, estimated


def _zstd_per_line(raw: bytes) -> tuple[float, float]:
    import zstandard

    lines = [line for line in raw.splitlines() if line.strip()]
    params = zstandard.ZstdCompressionParameters.from_level(19, window_log=27)
    packed = zstandard.ZstdCompressor(compression_params=params).compress(raw)
    return len(raw) / len(lines), len(packed) / len(lines)


def _tokens_per_byte(texts: list[str]) -> float:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=50257,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        min_frequency=2,
    )
    tok.train_from_iterator(texts[::2], trainer)
    held = texts[1::2]
    tokens = sum(len(e.ids) for e in tok.encode_batch(held))
    return tokens / sum(len(t.encode()) for t in held)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=0, help="use only the first N pages")
    args = ap.parse_args()
    if not CORPUS.is_dir():
        print(f"{CORPUS} is not present", file=sys.stderr)
        return 1
    import pyarrow as pa
    import pyarrow.parquet as pq
    import trafilatura

    old_raw, old_zst = _zstd_per_line(
        lzma.decompress((CORPUS / "reddit/RS_v2_2005-06.xz").read_bytes())
    )
    new = (CORPUS / "reddit/pushshift-importer/test_submissions.json").read_bytes()
    new_raw, new_zst = _zstd_per_line(new)
    print(f"dump, 2005 layout: {old_raw:.0f} B raw, {old_zst:.0f} B zstd per submission")
    print(f"dump, newer layout: {new_raw:.0f} B raw, {new_zst:.0f} B zstd per submission")

    gold = json.loads((CORPUS / "pages/gold.json").read_text())
    urls = [u for u in gold if u.startswith("http")]
    files = sorted((CORPUS / "pages/html").glob("*.html.gz"))
    if args.pages:
        files = files[: args.pages]
    gz = statistics.mean(f.stat().st_size for f in files)
    htmls = [gzip.decompress(f.read_bytes()) for f in files]
    raw = statistics.mean(len(h) for h in htmls)
    print(f"pages: {len(files)}, {gz / 1e3:.1f} KB gzip, {raw / 1e3:.1f} KB raw per page")

    texts = [t for h in htmls if (t := trafilatura.extract(h)) and len(t.split()) >= 128]
    text_bytes = sum(len(t.encode()) for t in texts)
    words = sum(len(t.split()) for t in texts)
    buf = io.BytesIO()
    pq.write_table(pa.table({"text": texts}), buf, compression="zstd")
    ratio = len(buf.getvalue()) / text_bytes
    tokens = [re.findall(r"\w+", t.lower()) for t in texts]
    grams = {tuple(w[i : i + 8]) for w in tokens for i in range(len(w) - 7)}
    ngrams_per_word = len(grams) / sum(len(w) for w in tokens)
    n = len(texts)
    print(f"documents: {n}, {text_bytes / n:.0f} B and {words / n:.0f} words each")
    tpb = _tokens_per_byte(texts)
    print_context(pages=len(files), docs=len(texts))
    print(
        "plan_figures: "
        f"dump_bytes_per_submission={new_zst:.0f} "
        f"warc_bytes_per_page={gz + HEADER_BYTES:.0f} "
        f"parquet_text_ratio={ratio:.3f} "
        f"tokens_per_byte={tpb:.3f} "
        f"bytes_per_word={text_bytes / words:.2f} "
        f"distinct_ngrams_per_word={ngrams_per_word:.3f} "
        f"url_bytes={statistics.mean(len(u) for u in urls):.0f} "
        f"pages={len(files)} docs={len(texts)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
