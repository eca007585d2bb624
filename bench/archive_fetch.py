"""Archived pages through the fetch stage: the archive backends' page rate against live fetching
of the same pages, and the share of dead links ``live+archive`` recovers (for bench/archive.py).

The fixture, seeded: ``pages`` article pages (``tests.page_server.article_html``) at
``/p/<i>`` on a local page server; a share :data:`DEAD` of them answer 404 there (dead links).
The web archive holds, in one WARC served by pywb on 127.0.0.1 (``webtext.archive_server``, the
software Common Crawl's index server runs) and by a Range server over the same file (Common
Crawl's data server): a capture of every live page; of the dead ones, a capture near the
submission for most, only one three years off for :data:`FAR` of them (``archive.too_far``),
none for :data:`UNARCHIVED` (``archive.no_capture``).

Each run is the fetch stage alone (:class:`pipeline.fetch.FetchUnits`: fetch, checkpoint WARC
and log per unit) on Beam's local runner with ``workers`` worker processes, started from this
process one after the other against the same warm servers, over the same unit files:

* ``live``: the live pages from the page server (the baseline);
* ``archive``: the same pages from pywb (a CDX query and an ``id_`` replay each);
* ``archive_cc``: the same pages by Common Crawl's route (a CDX query to pywb, the record by
  Range from the data server);
* ``live+archive``: every page, live first, the dead ones from pywb: ``recovered`` is the share
  of the dead links that come back.

Politeness is the same for both sides (no per-host delay, ``CONCURRENCY`` requests in flight per
host and worker): the rates compare the work per page, not the settings. A rate is pages /
wall seconds of its pipeline, Beam's start-up included. Beside it, the CPU seconds of the Beam
workers (the client, :class:`TreeCpu`; ``cpu_ratio`` is live's CPU per page over the
archive's) and of pywb (one Python process, the server: on a machine of 2 cores the archive
side's bottleneck, not the client).
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

DEAD = 0.3
FAR = 0.1  # of the dead links
UNARCHIVED = 0.1  # of the dead links
UNIT_PAGES = 250
CONCURRENCY = 8
SUBMITTED = int(datetime(2017, 5, 15, tzinfo=UTC).timestamp())


def _warc(path: Path, captures: list[tuple[str, str, bytes]]) -> None:
    from io import BytesIO

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for url, date, body in captures:
            headers = [("Content-Type", "text/html; charset=utf-8")]
            headers.append(("Content-Length", str(len(body))))
            http = StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1")
            record = writer.create_warc_record(
                url, "response", payload=BytesIO(body), http_headers=http,
                warc_headers_dict={"WARC-Date": date},
            )  # fmt: skip
            writer.write_record(record)


def _units(run: Path, urls: list[str]) -> list[str]:
    import pyarrow as pa

    from foundation.records import Candidate, candidate_to_row
    from foundation.shards import URL_SCHEMA, write_table

    paths = []
    for u, start in enumerate(range(0, len(urls), UNIT_PAGES)):
        rows = [
            candidate_to_row(Candidate(f"{i:032x}", url, url, "127.0.0.1", 3, SUBMITTED, ()))
            for i, url in enumerate(urls[start : start + UNIT_PAGES], start)
        ]
        path = run / "urls" / f"part-{u:05d}.parquet"
        write_table(pa.Table.from_pylist(rows, schema=URL_SCHEMA), str(path), "parquet")
        paths.append(str(path))
    return paths


def _fetch(units: list[str], run: Path, fetch_cfg, archive_cfg, workers: int) -> tuple[float, dict]:
    """The fetch stage over ``units``: (wall seconds, outcome counts from its logs)."""
    from collections import Counter

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from foundation.shards import read_table
    from pipeline.fetch import FetchUnits, unit_files

    options = PipelineOptions(
        [
            "--runner=FnApiRunner",
            f"--direct_num_workers={workers}",
            "--direct_running_mode=multi_processing",
        ]
    )
    fetch_dir = str(run / "fetch")
    start = time.perf_counter()
    with beam.Pipeline(options=options) as p:
        _ = p | beam.Create(units) | FetchUnits(fetch_cfg, fetch_dir, archive_cfg)
    seconds = time.perf_counter() - start
    counts: Counter[str] = Counter()
    for unit in units:
        for row in read_table(unit_files(fetch_dir, unit)[1]).to_pylist():
            counts[
                row["outcome"] if row["outcome"] != "fetched" else f"fetched.{row['source']}"
            ] += 1
    return seconds, dict(counts)


def measure_fetch(pages: int, workers: int, seed: int = 11) -> dict[str, float]:
    """The rates and ``recovered`` of the module docstring, printed with their counts."""
    from tests.page_server import PageServer, article_html
    from tests.range_server import RangeServer
    from webtext.archive_server import PywbServer

    rng = random.Random(seed)
    fates = {}
    for i in range(pages):
        r = rng.random()
        if r >= DEAD:
            fates[i] = "live"
        else:
            r /= DEAD
            fates[i] = "far" if r < FAR else "none" if r < FAR + UNARCHIVED else "archived"
    with tempfile.TemporaryDirectory(prefix="bench_archive_fetch") as tmp:
        work = Path(tmp)
        bodies = {i: article_html(i) for i in range(pages)}
        live_pages = {f"/p/{i}": bodies[i] for i, f in fates.items() if f == "live"}
        with PageServer(live_pages) as live:
            base = live.base_url
            captures = [
                (f"{base}/p/{i}", "2014-05-01T00:00:00Z" if f == "far" else "2017-06-01T00:00:00Z",
                 bodies[i])
                for i, f in fates.items() if f != "none"
            ]  # fmt: skip
            _warc(work / "pages.warc.gz", captures)
            collection = {"bench": [work / "pages.warc.gz"]}
            with PywbServer(work / "pywb", collection) as pywb:
                stored = work / "pywb" / "collections" / "bench" / "archive" / "pages.warc.gz"
                with RangeServer({"/pages.warc.gz": stored.read_bytes()}) as data:
                    return _runs(work, base, pywb, data, fates, workers)


def _runs(work: Path, base: str, pywb, data, fates: dict[int, str], workers: int) -> dict:
    """The four runs against the started servers (``pywb``, the Range server ``data``)."""
    import psutil

    from foundation.config import ArchiveConfig, FetchConfig

    alive = [f"{base}/p/{i}" for i, f in fates.items() if f == "live"]
    every = [f"{base}/p/{i}" for i in fates]
    dead = sum(f != "live" for f in fates.values())
    fetch_cfg = FetchConfig(
        allow_addresses=("127.0.0.1",),
        per_host_delay_s=0.0,
        per_host_concurrency=CONCURRENCY,
        concurrency=CONCURRENCY,
        retries=0,
    )
    politeness = dict(requests_per_s=1e6, concurrency=CONCURRENCY, retries=0, backoff_s=0.0)
    replay = ArchiveConfig(sources=(f"local={pywb.cdx_url('bench')}",), **politeness)
    cc = ArchiveConfig(sources=(f"cc={pywb.cdx_url('bench')} warc:{data.base_url}/",), **politeness)
    runs = {
        "live": (alive, replace(fetch_cfg, backend="live"), replay),
        "archive": (alive, replace(fetch_cfg, backend="archive"), replay),
        "archive_cc": (alive, replace(fetch_cfg, backend="archive"), cc),
        "live+archive": (every, replace(fetch_cfg, backend="live+archive"), replay),
    }
    server = psutil.Process(pywb.process.pid)
    rates, counts, cpu = {}, {}, {}
    for name, (urls, fcfg, acfg) in runs.items():
        run = work / name.replace("+", "_")
        units = _units(run, urls)
        before = sum(server.cpu_times()[:2])
        with TreeCpu(skip=(server.pid,)) as tree:
            seconds, counts[name] = _fetch(units, run, fcfg, acfg, workers)
        workers_cpu = tree.seconds
        pywb_cpu = sum(server.cpu_times()[:2]) - before
        rates[name] = len(urls) / seconds
        cpu[name] = workers_cpu / len(urls) * 1000
        print(f"fetch {name}: {len(urls)} pages in {seconds:.1f} s = {rates[name]:.1f} pages/s; "
              f"workers {workers_cpu:.1f} CPU s ({cpu[name]:.2f} ms a page), pywb "
              f"{pywb_cpu:.1f} CPU s; load {os.getloadavg()[0]:.2f}; {counts[name]}",
              flush=True)  # fmt: skip
    recovered = counts["live+archive"].get("fetched.local", 0) / dead
    return {
        "ratio": round(rates["archive"] / rates["live"], 2),
        "cc_ratio": round(rates["archive_cc"] / rates["live"], 2),
        "recovered": round(recovered, 3),
        "live_pages_per_s": round(rates["live"], 1),
        "archive_pages_per_s": round(rates["archive"], 1),
        "cpu_ratio": round(cpu["live"] / cpu["archive"], 2),
    }


class TreeCpu:
    """CPU seconds of this process's descendants while in the ``with`` (the Beam workers of a
    run), sampled every ``interval_s`` per process: Beam does not always wait for the workers it
    stops, so ``RUSAGE_CHILDREN`` can miss them. ``skip``: pids measured apart (pywb). What a
    process spends in its last interval is missed."""

    def __init__(self, skip: tuple[int, ...] = (), interval_s: float = 0.5):
        self.skip, self.interval_s = set(skip), interval_s
        self.seen: dict[int, float] = {}
        self.seconds = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while True:
            for p in me.children(recursive=True):
                if p.pid in self.skip:
                    continue
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    self.seen[p.pid] = max(self.seen.get(p.pid, 0.0), t.user + t.system)
            if self._done.wait(self.interval_s):
                return

    def __enter__(self) -> TreeCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.seconds = sum(self.seen.values())
