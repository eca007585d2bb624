"""Archived pages: the archive backends' page rate against live fetching, the share of dead
links recovered, and the columnar-index join rate (candidates against a Common Crawl-shaped
index) with its memory as the candidates grow.

Fetch part (:mod:`bench.archive_fetch`): the fetch stage on Beam's local runner (``--workers``),
live from a local page server, then the same pages from a local pywb (the ``archive`` backend),
by Common Crawl's route (CDX from pywb, records by Range), and ``live+archive`` over a fixture
whose dead links the archive mostly holds; ``ratio`` = archive pages/s over live pages/s,
measured in this process one after the other; ``recovered`` = dead links recovered / dead links.

Join part: the generator writes, streaming and seeded, a Parquet index laid out as Common
Crawl's table (``crawl=CC-MAIN-2017-51/subset=warc/part-*.parquet``, its column names and types;
row groups of ``ROW_GROUP`` rows): ``index_rows`` captures of ``index_rows / 2`` URLs over
``HOSTS`` hosts, two captures a URL at seeded times in 2016-2019, 5% of them not status 200. The
candidates, ``candidates`` of them as URL unit files (``URL_SCHEMA``), link 70% to indexed URLs
and 30% to URLs the index lacks, posted at seeded times in 2017. Then a child process runs
:class:`pipeline.archive.cc_index.JoinColumnarIndex` on Beam's local runner (multi-processing,
``--workers``) and counts the outcomes, under :func:`bench.process_tree.run_measured` (the peak
RSS of the whole process tree, sampled every 0.5 s). ``--growth`` first joins a quarter of the
candidates against the same index: ``mem_growth`` is the peak at 4x the candidates over it.

    python bench/archive.py [--fetch-pages 3000] [--candidates 1000000] [--index-rows 10000000]
        [--growth]

Last line: ``archive_speed: ratio=... cc_ratio=... recovered=... live_pages_per_s=...
archive_pages_per_s=... cpu_ratio=... join_urls_per_s=... join_s=... join_cpu_s=...
join_peak_mb=... found=... [mem_growth=... time_growth=...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.archive_fetch import TreeCpu, measure_fetch  # noqa: E402
from bench.context import print_context  # noqa: E402
from bench.process_tree import VENV_BIN, run_measured  # noqa: E402

HOSTS = 50_000
ROW_GROUP = 500_000
UNIT_ROWS = 100_000
START = 1_451_606_400  # 2016-01-01
YEAR = 365 * 86_400
PRESENT = 0.7
SKEW_DAYS = 365


def _keys_and_urls(ids, hosts):
    """Vectorised URL strings and their SURT keys (what ``surt`` gives for these URLs: checked
    on a sample in :func:`generate`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    h = pc.cast(pa.array(hosts), pa.string())
    i = pc.cast(pa.array(ids), pa.string())
    urls = pc.binary_join_element_wise("http://www.site", h, ".example.com/story/", i, "")
    keys = pc.binary_join_element_wise("com,example,site", h, ")/story/", i, "")
    return urls, keys


def _repeat(text: str, n: int):
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.fill_null(pa.nulls(n, pa.string()), text)


def write_index(rows: int, directory: Path, seed: int) -> None:
    """``rows`` captures in Common Crawl's columnar layout, a row group at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    schema = pa.schema(
        [
            ("url_surtkey", pa.string()),
            ("url", pa.string()),
            ("fetch_time", pa.timestamp("us", tz="UTC")),
            ("fetch_status", pa.int16()),
            ("content_digest", pa.string()),
            ("content_mime_type", pa.string()),
            ("content_mime_detected", pa.string()),
            ("warc_filename", pa.string()),
            ("warc_record_offset", pa.int64()),
            ("warc_record_length", pa.int64()),
        ]
    )
    part = directory / "crawl=CC-MAIN-2017-51" / "subset=warc"
    part.mkdir(parents=True)
    urls_total = rows // 2
    per_file = 4 * ROW_GROUP
    for f, first in enumerate(range(0, rows, per_file)):
        with pq.ParquetWriter(part / f"part-{f:05d}.parquet", schema) as writer:
            for start in range(first, min(rows, first + per_file), ROW_GROUP):
                n = min(ROW_GROUP, rows - start)
                ids = (np.arange(start, start + n) // 2) % urls_total  # two captures a URL
                urls, keys = _keys_and_urls(ids, ids % HOSTS)
                times = START + rng.integers(0, 4 * YEAR, n)
                status = np.where(rng.random(n) < 0.05, 404, 200).astype(np.int16)
                segments = pc.cast(pa.array(rng.integers(0, 1000, n)), pa.string())
                files = pc.binary_join_element_wise(
                    "crawl-data/CC-MAIN-2017-51/segments/", segments, "/warc/x.warc.gz", ""
                )
                table = pa.Table.from_arrays(
                    [
                        keys,
                        urls,
                        pa.array(times * 1_000_000, pa.timestamp("us", tz="UTC")),
                        pa.array(status),
                        _repeat("SHA1DIGESTSHA1DIGESTSHA1DIGEST32", n),
                        _repeat("text/html", n),
                        _repeat("text/html", n),
                        files,
                        pa.array(rng.integers(0, 1 << 30, n)),
                        pa.array(rng.integers(500, 50_000, n)),
                    ],
                    schema=schema,
                )
                writer.write_table(table, row_group_size=ROW_GROUP)


def write_candidates(n: int, index_rows: int, directory: Path, seed: int) -> list[str]:
    """``n`` candidates as URL unit files of ``UNIT_ROWS`` rows; their paths."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from foundation.shards import URL_SCHEMA, write_table

    rng = np.random.default_rng(seed + 1)
    directory.mkdir(parents=True)
    urls_total = index_rows // 2
    paths = []
    for u, start in enumerate(range(0, n, UNIT_ROWS)):
        m = min(UNIT_ROWS, n - start)
        present = rng.random(m) < PRESENT
        ids = np.where(present, rng.integers(0, urls_total, m), urls_total + start + np.arange(m))
        urls, _ = _keys_and_urls(ids, ids % HOSTS)
        doc_ids = pc.binary_join_element_wise(
            pa.array(np.full(m, "d")),
            pc.cast(pa.array(np.arange(start, start + m)), pa.string()),
            "",
        )
        table = pa.Table.from_arrays(
            [
                doc_ids,
                urls,
                urls,
                _repeat("example.com", m),
                pa.array(np.full(m, 3, np.int64)),
                pa.array(START + YEAR + rng.integers(0, YEAR, m)),
                pa.array([[] for _ in range(m)], URL_SCHEMA.field("submissions").type),
            ],
            schema=URL_SCHEMA,
        )
        path = str(directory / f"part-{u:05d}.parquet")
        write_table(table, path, "parquet")
        paths.append(path)
    return paths


def generate_index(index_rows: int, work: Path, seed: int = 7) -> Path:
    from surt import surt

    start = time.perf_counter()
    write_index(index_rows, work / "index", seed)
    urls, keys = _keys_and_urls(list(range(0, 1000, 7)), [h * 13 for h in range(0, 1000, 7)])
    assert [surt(u) for u in urls.to_pylist()] == keys.to_pylist()
    size = sum(p.stat().st_size for p in (work / "index").rglob("*.parquet"))
    print(f"generated {index_rows} index rows ({size / 1e6:.0f} MB Parquet) "
          f"in {time.perf_counter() - start:.1f} s", flush=True)  # fmt: skip
    return work / "index"


def child(index: str, units: str, spill: str, out: str, workers: int) -> None:
    """The measured job: unit files -> candidates -> JoinColumnarIndex -> outcome counts."""
    import apache_beam as beam
    import pyarrow.parquet as pq
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.archive.cc_index import JoinColumnarIndex, JoinSettings
    from pipeline.fetch import read_unit

    settings = JoinSettings(index=(index,), spill_dir=spill, max_skew_days=SKEW_DAYS)
    options = PipelineOptions(
        [
            "--runner=FnApiRunner",
            f"--direct_num_workers={workers}",
            "--direct_running_mode=multi_processing",
        ]
    )
    paths = sorted(str(x) for x in Path(units).glob("*.parquet"))
    expected = sum(pq.read_metadata(x).num_rows for x in paths)  # as a manifest would say
    with beam.Pipeline(options=options) as p:
        (
            p
            | "Units" >> beam.Create(paths)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.FlatMap(read_unit)
            | "Join" >> JoinColumnarIndex(settings, expected)
            | "Outcome" >> beam.Map(_outcome)
            | "Count" >> beam.combiners.Count.PerElement()
            | "All" >> beam.combiners.ToList()
            | "Write" >> beam.Map(_write_counts, out)
        )


def _outcome(hit) -> str:
    return hit.outcome or "found"


def _write_counts(counts: list, out: str) -> None:
    Path(out).write_text(json.dumps(dict(counts)))


def measure_join(
    candidates: int, index_rows: int, index: Path, work: Path, workers: int
) -> dict[str, float]:
    """The join of ``candidates`` (generated under ``work``) against ``index``, in a child."""
    work.mkdir(parents=True, exist_ok=True)
    units = work / "units"
    write_candidates(candidates, index_rows, units, seed=7)
    out = work / "counts.json"
    job = [str(index), str(units), str(work / "spill"), str(out), str(workers)]
    argv = ["env", f"PYTHONPATH={ROOT}", str(VENV_BIN / "python"), __file__, "--child", *job]
    with TreeCpu() as tree:
        m = run_measured(argv, cwd=str(ROOT))
    cpu = tree.seconds
    if m.returncode != 0:
        raise RuntimeError(f"join failed ({m.returncode}):\n{m.output[-3000:]}")
    counts = json.loads(out.read_text())
    if sum(counts.values()) != candidates:
        raise RuntimeError(f"{sum(counts.values())} hits for {candidates} candidates: {counts}")
    print(f"join: {candidates} candidates x {index_rows} index rows in {m.seconds:.1f} s wall, "
          f"{cpu:.1f} CPU s, peak {m.peak_mb:.0f} MB; outcomes {counts}; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    return {
        "join_urls_per_s": round(candidates / m.seconds),
        "join_s": round(m.seconds, 1),
        "join_cpu_s": round(cpu, 1),
        "join_peak_mb": round(m.peak_mb),
        "found": round(counts.get("found", 0) / candidates, 3),
    }


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        index, units, spill, out, workers = sys.argv[2:7]
        child(index, units, spill, out, int(workers))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fetch-pages", type=int, default=3000, help="0: no fetch runs")
    parser.add_argument("--candidates", type=int, default=1_000_000, help="0: no join")
    parser.add_argument("--index-rows", type=int, default=10_000_000)
    parser.add_argument(
        "--growth", action="store_true", help="also join a quarter of the candidates: mem_growth"
    )
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    result: dict[str, float] = {}
    if args.fetch_pages:
        result.update(measure_fetch(args.fetch_pages, args.workers))
    if args.candidates:
        with tempfile.TemporaryDirectory(prefix="bench_archive") as tmp:
            index = generate_index(args.index_rows, Path(tmp))
            sizes = [args.candidates // 4] if args.growth else []
            joins = [
                measure_join(n, args.index_rows, index, Path(tmp) / f"c{n}", args.workers)
                for n in [*sizes, args.candidates]
            ]
        result.update(joins[-1])
        if args.growth:
            result["mem_growth"] = round(joins[1]["join_peak_mb"] / joins[0]["join_peak_mb"], 2)
            result["time_growth"] = round(joins[1]["join_s"] / joins[0]["join_s"], 2)
    print_context(
        fetch_pages=args.fetch_pages,
        candidates=args.candidates,
        index_rows=args.index_rows,
        workers=args.workers,
    )
    print("archive_speed: " + " ".join(f"{k}={v:g}" for k, v in result.items()))


if __name__ == "__main__":
    main()
