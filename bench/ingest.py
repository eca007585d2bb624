"""Ingest throughput: pages/s through fetch + extract + quality + write, beside plain loops.

The corpus pages (generated ones without ../shared/corpus) are served from a local HTTP server,
each under ``--copies`` URLs, and the pages phase (live fetch with its WARC checkpoint,
extraction in the sandbox, quality, shard writing, the manifest) is timed whole with each of
``--workers``; dedup is off so that every copy is extracted and written. The peers run in this
process on the same pages: ``loop`` (``trafilatura.extract`` with its defaults, the target's
baseline), ``settings loop`` (our ``extract_document`` defaults) and a process pool as wide as
the pipeline (what the cores allow). The machine's speed drifts, so the peers run before the
pipelines and after each one, the last worker count runs ``--repeats`` times, and ``ratio`` is
the median of each run's ratio to the loops just before and after it; ``cpu_ratio`` is the
ratio from CPU per page, less disturbed by the drift. Figures and their history:
docs/benchmarks.md.

    python bench/ingest.py [--copies 4] [--pages N] [--unit-urls 50] [--workers 1 2] [--repeats 3]

Last line: ``ingest_speed: ratio=... pipeline_pages_per_s=... loop_pages_per_s=...``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import apache_beam as beam  # noqa: E402

from bench.context import print_context  # noqa: E402
from foundation.beam import beam_options  # noqa: E402
from foundation.config import JobConfig, with_overrides  # noqa: E402
from foundation.layout import RunLayout  # noqa: E402
from pipeline.ingest import (  # noqa: E402
    build_urls_pipeline,
    run_ingest,
)
from tests.page_server import PageServer, article_html, submission, write_dump  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "pages"


def load_pages(limit: int | None) -> list[bytes]:
    if (CORPUS / "gold.json").exists():
        entries = sorted(json.loads((CORPUS / "gold.json").read_text()).values(), key=str)
        paths = sorted(CORPUS / e["stored_as"] for e in entries)
        pages = [gzip.decompress(p.read_bytes()) for p in paths]
    else:
        pages = [article_html(i, 600) for i in range(600)]
    return pages[:limit] if limit else pages


def default_extract() -> Callable[[bytes], object]:
    import trafilatura

    return trafilatura.extract


def settings_extract() -> Callable[[bytes], object]:
    """Our extraction of one page, in this process: what the sandbox child runs per page."""
    from foundation.config import ExtractConfig
    from foundation.records import Candidate, FetchResult
    from pipeline.extraction import extract_document, warm_up

    warm_up()
    cfg = ExtractConfig()
    candidate = Candidate("0" * 32, "http://bench/", "http://bench/", "bench", 10, 0, ())

    def run(html: bytes) -> object:
        page = FetchResult(candidate, "fetched", status=200, body=html, encoding="utf-8")
        return extract_document(page, cfg)

    return run


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (Beam workers and their sandboxes)."""
    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def loop_pages_per_s(pages: list[bytes], extract: Callable[[bytes], object]) -> tuple[float, float]:
    """Pages per second of wall time, and CPU ms per page."""
    start, cpu = time.perf_counter(), time.process_time()
    for html in pages:
        extract(html)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(pages) / wall, 1000 * cpu / len(pages)


def _trafilatura_extract(html: bytes) -> None:
    import trafilatura

    trafilatura.extract(html)


def pool_pages_per_s(pages: list[bytes], processes: int) -> float:
    """Pages per second of wall time of ``trafilatura.extract`` with defaults in a process pool
    (pages sent to the workers, as the pipeline sends them to its extraction children): what
    ``processes`` cores give this machine's extraction with no pipeline at all."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(processes) as pool:
        pool.map(_trafilatura_extract, pages[:processes])  # imports, off the clock
        start = time.perf_counter()
        for _ in pool.imap_unordered(_trafilatura_extract, pages, chunksize=4):
            pass
        return len(pages) / (time.perf_counter() - start)


def pipeline_seconds(pages: list[bytes], copies: int, workers: int, unit_urls: int, tmp: Path):
    """Seconds and CPU seconds of the pages phase over ``copies * len(pages)`` URLs, and the
    documents written. The urls phase runs first on its own, so neither figure includes it."""
    routes = {f"/{c}/{i}.html": html for c in range(copies) for i, html in enumerate(pages)}
    with PageServer(routes) as server:
        dump = tmp / f"RS_bench_{workers}.zst"
        write_dump(dump, [submission(i, server.base_url + p) for i, p in enumerate(routes)])
        cfg = with_overrides(
            JobConfig(),
            {
                "output.run_dir": str(tmp / f"run{workers}"),
                "output.workers": workers,
                "output.unit_urls": unit_urls,
                "source.dumps": (str(dump),),
                "fetch.allow_addresses": ("127.0.0.1",),
                "fetch.per_host_concurrency": 32,
                "fetch.per_host_delay_s": 0.0,
                "dedup.exact": False,
                "dedup.near": False,
                "quality.min_words": 0,
            },
        )
        layout = RunLayout.at(cfg.output.run_dir)
        with beam.Pipeline(options=beam_options(cfg.output)) as p:
            build_urls_pipeline(p, cfg, layout.urls)
        cpu = cpu_seconds()
        result = run_ingest(cfg, layout, progress=False)  # resumes: the urls phase is complete
        cpu = cpu_seconds() - cpu
    return result.seconds["pages"], cpu, result.shards.counts.get("shards.documents", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=4, help="URLs per page")
    parser.add_argument("--pages", type=int, default=None, help="use only the first N pages")
    parser.add_argument(
        "--unit-urls", type=int, default=50, help="URLs per fetch unit (output.unit_urls)"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of the last --workers, each between loops"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    pages = load_pages(args.pages)
    loops = {"loop": default_extract(), "settings loop": settings_extract()}
    rates: dict[str, list[float]] = {name: [] for name in loops}
    cpu_ms: dict[str, list[float]] = {name: [] for name in loops}
    pool_rates: list[float] = []
    processes = args.workers[-1]

    def run_loops() -> None:
        for name, extract in loops.items():
            rate, ms = loop_pages_per_s(pages, extract)
            rates[name].append(rate)
            cpu_ms[name].append(ms)
            print(f"{name}: {rate:.1f} pages/s, {ms:.1f} CPU ms/page over {len(pages)} pages")
        pool_rates.append(pool_pages_per_s(pages, processes))
        print(f"{processes}-process pool: {pool_rates[-1]:.1f} pages/s")

    def neighbours(series: list[float]) -> float:
        """The mean of the last two measurements: the ones just before and after a run."""
        return statistics.mean(series[-2:])

    run_loops()
    n = len(pages) * args.copies
    runs = [*args.workers[:-1], *[processes] * args.repeats]
    pipeline: dict[int, list[float]] = {w: [] for w in args.workers}
    phase_ms: dict[int, list[float]] = {w: [] for w in args.workers}
    ratios, of_pool, settings_ratios = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, workers in enumerate(runs):
            run_tmp = Path(tmp) / f"run{i}"
            run_tmp.mkdir()
            seconds, cpu, docs = pipeline_seconds(
                pages, args.copies, workers, args.unit_urls, run_tmp
            )
            rate = n / seconds
            pipeline[workers].append(rate)
            phase_ms[workers].append(1000 * cpu / n)
            print(
                f"pipeline, {workers} worker(s): {rate:.1f} pages/s "
                f"({n} URLs, {docs} documents written, pages phase {seconds:.1f} s), "
                f"pages phase CPU {phase_ms[workers][-1]:.1f} ms/page"
            )
            run_loops()
            if workers == processes:
                ratios.append(rate / neighbours(rates["loop"]))
                settings_ratios.append(rate / neighbours(rates["settings loop"]))
                of_pool.append(rate / neighbours(pool_rates))
                print(f"  {ratios[-1]:.2f}x the loops just before and after it")
    loop = statistics.mean(rates["loop"])
    ours = statistics.mean(rates["settings loop"])
    loop_ms = statistics.mean(cpu_ms["loop"])
    ours_ms = statistics.mean(cpu_ms["settings loop"])
    print(
        f"loop (trafilatura defaults): {loop:.1f} pages/s, {loop_ms:.1f} CPU ms/page; "
        f"settings loop: {ours:.1f} pages/s, {ours_ms:.1f} CPU ms/page"
    )
    pool = statistics.mean(pool_rates)
    print(f"{processes}-process pool: {pool:.1f} pages/s, {pool / loop:.2f}x the loop")
    for workers, rates_w in pipeline.items():
        rate = statistics.median(rates_w)
        print(
            f"pipeline, {workers} worker(s), median of {len(rates_w)}: {rate:.1f} pages/s, "
            f"{rate / loop:.2f}x the mean loop, {rate / ours:.2f}x the settings loop, "
            f"{rate / pool:.2f}x the pool"
        )
    print("ratios of each run to its neighbouring loops: " + ", ".join(f"{r:.2f}" for r in ratios))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"driver peak RSS: {peak_mb:.0f} MB")
    last_ms = statistics.median(phase_ms[processes])
    cpu_ratio = processes * loop_ms / last_ms
    one = statistics.median(pipeline[1]) if pipeline.get(1) else float("nan")
    print_context(
        pages=n,
        copies=args.copies,
        unit_urls=args.unit_urls,
        workers=",".join(map(str, args.workers)),
        repeats=args.repeats,
    )
    print(
        f"ingest_speed: ratio={statistics.median(ratios):.2f} "
        f"pipeline_pages_per_s={statistics.median(pipeline[processes]):.1f} "
        f"loop_pages_per_s={loop:.1f} min_ratio={min(ratios):.2f} max_ratio={max(ratios):.2f} "
        f"settings_ratio={statistics.median(settings_ratios):.2f} pool_ratio={pool / loop:.2f} "
        f"of_pool={statistics.median(of_pool):.2f} cpu_ratio={cpu_ratio:.2f} "
        f"pipeline_cpu_ms_per_page={last_ms:.1f} loop_cpu_ms_per_page={loop_ms:.1f} "
        f"settings_loop_cpu_ms_per_page={ours_ms:.1f} settings_loop_pages_per_s={ours:.1f} "
        f"one_worker_pages_per_s={one:.1f} workers={processes} repeats={args.repeats} "
        f"pages={n} peak_mb={peak_mb:.0f}"
    )


if __name__ == "__main__":
    main()
