"""Ingest throughput: pages/s through fetch + extract + filters + write, beside a plain loop.

The pages of ../shared/corpus/pages (or generated ones when it is absent) are served from a
local HTTP server, each under ``--copies`` URLs so that Beam's start-up is amortised as on a real
job; the pipeline's pages phase (fetch, extract, quality, exact dedup, shard writing) is timed with
1 and 2 workers, and a single-process ``trafilatura.extract`` loop over the same pages is the peer.

    python bench/ingest.py [--copies 3] [--pages N]

Last line: ``ingest_speed: ratio=... pipeline_pages_per_s=... loop_pages_per_s=...``
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.ingest import run_ingest  # noqa: E402
from tests.page_server import PageServer, article_html, submission, write_dump  # noqa: E402
from webtext.config import JobConfig, with_overrides  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "pages"


def load_pages(limit: int | None) -> list[bytes]:
    if (CORPUS / "gold.json").exists():
        entries = sorted(json.loads((CORPUS / "gold.json").read_text()).values(), key=str)
        paths = sorted(CORPUS / e["stored_as"] for e in entries)
        pages = [gzip.decompress(p.read_bytes()) for p in paths]
    else:
        pages = [article_html(i, 600) for i in range(600)]
    return pages[:limit] if limit else pages


def loop_pages_per_s(pages: list[bytes]) -> float:
    import trafilatura

    start = time.perf_counter()
    for html in pages:
        trafilatura.extract(html)
    return len(pages) / (time.perf_counter() - start)


def pipeline_pages_per_s(pages: list[bytes], copies: int, workers: int, tmp: Path) -> float:
    routes = {f"/{c}/{i}.html": html for c in range(copies) for i, html in enumerate(pages)}
    with PageServer(routes) as server:
        dump = tmp / f"RS_bench_{workers}.zst"
        write_dump(dump, [submission(i, server.base_url + p) for i, p in enumerate(routes)])
        cfg = with_overrides(
            JobConfig(),
            {
                "output.run_dir": str(tmp / f"run{workers}"),
                "output.workers": workers,
                "output.unit_urls": 100,
                "source.dumps": (str(dump),),
                "fetch.allow_private_addresses": True,
                "fetch.per_host_concurrency": 32,
                "fetch.per_host_delay_s": 0.0,
                "dedup.near": False,
                "quality.min_words": 0,
            },
        )
        result = run_ingest(cfg, progress=False)
    return len(routes) / result.seconds["pages"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=3, help="URLs per page")
    parser.add_argument("--pages", type=int, default=None, help="use only the first N pages")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    pages = load_pages(args.pages)
    loop = loop_pages_per_s(pages)
    print(f"plain trafilatura.extract loop: {loop:.1f} pages/s over {len(pages)} pages")
    with tempfile.TemporaryDirectory() as tmp:
        one = pipeline_pages_per_s(pages, args.copies, 1, Path(tmp))
        print(f"pipeline, 1 worker:  {one:.1f} pages/s ({one / loop:.2f}x the loop)")
        two = pipeline_pages_per_s(pages, args.copies, 2, Path(tmp))
        print(f"pipeline, 2 workers: {two:.1f} pages/s ({two / loop:.2f}x the loop)")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"driver peak RSS: {peak_mb:.0f} MB")
    print(
        f"ingest_speed: ratio={two / loop:.2f} pipeline_pages_per_s={two:.1f} "
        f"loop_pages_per_s={loop:.1f} one_worker_pages_per_s={one:.1f} peak_mb={peak_mb:.0f}"
    )


if __name__ == "__main__":
    main()
