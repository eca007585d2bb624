"""The ingest URL stage at real size: a Pushshift-style dump through ``webtext ingest --urls-only``.

The generator streams a deterministic (seeded) zstd NDJSON dump of ``n`` submissions shaped like
a Pushshift month: self posts, NSFW posts, heavy-tailed scores, reposts of the same page under
other spellings (tracking parameters, case, ``www.``, trailing slash), Wikipedia, media and
Reddit links, a few malformed lines. The stage runs as a user runs it (the CLI, 2 workers) with
the peak RSS of its whole process tree sampled (bench/process_tree.py); the baseline is a plain
one-core loop doing the same work with the project's own functions (zstd, json, the same
filters and ``canonicalize``, a dict of postings, the same fold). Both must find the same
number of candidate URLs. ``ingest_ratio`` is loop wall / ingest wall; on a shared machine
``cpu_ratio`` (2 x loop CPU / ingest CPU, the ratio two idle cores would give) is steadier.

    PYTHONPATH=$PWD .venv/bin/python bench/scale_ingest.py [--n 1600000] [--growth]
        [--loop all|1x|none] [--dumps DIR] [--work DIR]

Every 10 s it prints the RSS of the driver and of each SDK worker and how far the phase is (the
spill files of each step, the units written), so a growth can be placed in a process and a step.

Last line: ``scale_ingest: ingest_peak_mb=... ingest_ratio=... ingest_s=... loop_s=...
candidates=...``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.context import print_context  # noqa: E402
from bench.process_tree import process_kind, run_measured  # noqa: E402

SEED = 16
WORKERS = 2
SUBREDDITS = ("news", "worldnews", "technology", "science", "politics", "pics", "askreddit")
MEDIA_HOSTS = ("i.imgur.com", "i.redd.it", "v.redd.it", "gfycat.com", "youtube.com")
SITES = 20_000
"""Distinct news-like domains; page paths make URLs mostly unique, reposts repeat them."""


def _spelling(rng: random.Random, url: str) -> str:
    """Another way users post the same page (same canonical form)."""
    kind = rng.randrange(5)
    if kind == 0:
        return url + "?utm_source=reddit&utm_medium=social"
    if kind == 1:
        return url.replace("http://", "HTTP://").replace("example", "Example")
    if kind == 2:
        return url.replace("://", "://www.", 1)
    if kind == 3:
        return url + "/"
    return url + "#comments"


def _url(rng: random.Random, i: int, pages: list[str]) -> tuple[str, bool]:
    """A submission's URL and whether it is a self post."""
    roll = rng.random()
    if roll < 0.12:
        return f"https://www.reddit.com/r/x/comments/{i:x}/post_{i}/", True
    if roll < 0.17:
        return f"https://en.wikipedia.org/wiki/Article_{rng.randrange(50_000)}", False
    if roll < 0.27:
        host = rng.choice(MEDIA_HOSTS)
        return f"https://{host}/{i:x}.jpg", False
    if roll < 0.29:
        return f"https://www.reddit.com/r/{rng.choice(SUBREDDITS)}/comments/{i:x}/", False
    if pages and roll < 0.47:  # a repost of an earlier page, often spelled differently
        url = pages[rng.randrange(len(pages))]
        return (_spelling(rng, url) if rng.random() < 0.7 else url), False
    url = f"http://example{rng.randrange(SITES)}.com/{rng.randrange(2000, 2020)}/story-{i}"
    if len(pages) < 200_000:
        pages.append(url)
    else:
        pages[rng.randrange(len(pages))] = url
    return url, False


def _score(rng: random.Random) -> int:
    """Heavy-tailed: most posts 0-2 karma, a few thousands."""
    return int(rng.paretovariate(1.1)) - 1 + (rng.random() < 0.1) * rng.randrange(-3, 1)


def records(n: int, seed: int = SEED) -> Iterator[str]:
    """``n`` dump lines, one submission each (a few malformed), deterministically."""
    rng = random.Random(seed)
    pages: list[str] = []
    for i in range(n):
        if rng.random() < 0.0005:
            yield '{"id": "broken", "url": '
            continue
        url, is_self = _url(rng, i, pages)
        sub = rng.choice(SUBREDDITS)
        record = {
            "id": f"{i:x}",
            "author": f"user{rng.randrange(500_000)}",
            "subreddit": sub,
            "subreddit_id": f"t5_{SUBREDDITS.index(sub) + 100:x}",
            "title": f"Post number {i} about topic {rng.randrange(10_000)}",
            "url": url,
            "domain": url.split("/")[2].lower(),
            "permalink": f"/r/{sub}/comments/{i:x}/post_{i}/",
            "score": _score(rng),
            "num_comments": rng.randrange(200),
            "created_utc": 1_546_300_800 + i * 2,
            "retrieved_on": 1_550_000_000 + i,
            "is_self": is_self,
            "over_18": rng.random() < 0.04,
            "stickied": False,
            "selftext": "Some text of a self post." * rng.randrange(1, 6) if is_self else "",
            "thumbnail": "default",
        }
        yield json.dumps(record)


def write_dump(path: Path, n: int) -> int:
    """Stream ``n`` submissions into a zstd dump (Pushshift's long window); its size in bytes."""
    import zstandard

    cctx = zstandard.ZstdCompressor(level=3, write_content_size=False)
    with open(path, "wb") as f, cctx.stream_writer(f) as out:
        batch: list[str] = []
        for line in records(n):
            batch.append(line)
            if len(batch) == 10_000:
                out.write(("\n".join(batch) + "\n").encode())
                batch = []
        if batch:
            out.write(("\n".join(batch) + "\n").encode())
    return path.stat().st_size


def plain_loop(path: Path) -> tuple[int, float]:
    """The same work in one process without Beam: (candidates, CPU seconds)."""
    import io

    import zstandard

    from foundation.config import FilterConfig
    from foundation.records import Candidate, Submission
    from pipeline.candidates import fold
    from pipeline.sources import ZSTD_MAX_WINDOW, parse_line
    from pipeline.submissions import prepare
    from pipeline.url_filters import UrlRules

    cfg = FilterConfig()
    rules = UrlRules.from_config(cfg)
    start = time.process_time()
    by_url: dict[str, list] = {}
    dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
    with open(path, "rb") as f, io.BufferedReader(dctx.stream_reader(f)) as lines:
        for number, line in enumerate(lines, start=1):
            item = parse_line(line, f"{path}:{number}")
            if isinstance(item, Submission):
                out = prepare(item, rules, cfg)
                if isinstance(out, tuple):
                    by_url.setdefault(out[0], []).append(out[1])
    candidates = 0
    for canonical, postings in by_url.items():
        candidates += sum(isinstance(x, Candidate) for x in fold(canonical, postings, cfg))
    return candidates, time.process_time() - start


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _dump(n: int, work: Path, dumps: Path | None) -> Path:
    """The dump of ``n`` submissions: kept in ``dumps`` (and reused from there) when given."""
    folder = dumps or work
    folder.mkdir(parents=True, exist_ok=True)
    dump = folder / f"RS_scale_{n}_{SEED}.zst"
    if dumps is None or not dump.exists():
        start = time.perf_counter()
        partial = dump.with_suffix(".part")
        write_dump(partial, n)
        partial.rename(dump)
        print(f"generated the dump in {time.perf_counter() - start:.0f} s", flush=True)
    size = dump.stat().st_size
    print(f"dump: {n:,} submissions, {size / 1e6:.0f} MB compressed ({dump})", flush=True)
    return dump


def _steps(urls: Path) -> str:
    """How far the URL phase is: files in each spill folder, units written."""
    spill = urls / "_spill"

    def count(folder: Path, pattern: str) -> int:
        try:
            return sum(1 for _ in folder.glob(pattern))
        except OSError:  # removed while listing
            return 0

    return (
        f"chunks {count(spill / 'chunks', '*')}, postings {count(spill / 'postings', '*')}, "
        f"folds {count(spill / 'candidates', '[0-9][0-9][0-9][0-9].arrow')}, "
        f"by-unit {count(spill / 'candidates', '*.by-unit.arrow')}, "
        f"units {count(urls, 'part-*')}"
    )


def _reporter(urls: Path):
    def report(elapsed: float, rows: list[tuple[str, int]]) -> None:
        driver = sum(rss for kind, rss in rows if kind == "driver")
        workers = "+".join(  # not the shells that start them
            f"{rss / 1e6:.0f}" for kind, rss in rows if kind == "worker" and rss > 20e6
        )
        print(
            f"  {elapsed:6.0f} s: driver {driver / 1e6:.0f} MB, workers {workers or '-'} MB; "
            f"{_steps(urls)}; load {os.getloadavg()[0]:.1f}",
            flush=True,
        )

    return report


def measure(n: int, work: Path, loop: bool = True, dumps: Path | None = None) -> dict[str, float]:
    """Run the URL stage on ``n`` generated submissions under ``work`` (and the loop); the
    figures."""
    work.mkdir(parents=True, exist_ok=True)
    dump = _dump(n, work, dumps)
    run_dir = work / "run"
    argv = [
        sys.executable,
        "-m",
        "webtext.cli",
        "ingest",
        str(dump),
        "--run-dir",
        str(run_dir),
        "--urls-only",
        "--no-progress",
        "--output-workers",
        str(WORKERS),
    ]
    cpu_before = _children_cpu()
    run = run_measured(argv, cwd=str(ROOT), kind=process_kind, report=_reporter(run_dir / "urls"))
    cpu = _children_cpu() - cpu_before
    if run.returncode != 0:
        raise SystemExit(f"ingest failed ({run.returncode}):\n{run.output[-3000:]}")
    manifest = json.loads((run_dir / "urls" / "_manifest.json").read_text())
    candidates = sum(f["rows"] for f in manifest["files"])
    print(
        f"ingest: {run.seconds:.1f} s wall, {cpu:.1f} s CPU, {n / run.seconds:,.0f} subs/s, "
        f"peak {run.peak_mb:,.0f} MB (driver {run.kind_peak_mb.get('driver', 0):,.0f}, "
        f"largest worker {run.process_peak_mb.get('worker', 0):,.0f}); {candidates:,} "
        f"candidates, {len(manifest['files']):,} units; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    figures = {
        "ingest_peak_mb": round(run.peak_mb, 1),
        "driver_peak_mb": run.kind_peak_mb.get("driver", 0.0),
        "worker_peak_mb": run.process_peak_mb.get("worker", 0.0),
        "ingest_s": round(run.seconds, 2),
        "ingest_cpu_s": round(cpu, 2),
        "candidates": candidates,
    }
    if not loop:
        return figures
    t0 = time.perf_counter()
    loop_candidates, loop_cpu = plain_loop(dump)
    loop_s = time.perf_counter() - t0
    if loop_candidates != candidates:
        raise SystemExit(f"candidates differ: ingest {candidates}, loop {loop_candidates}")
    print(f"loop: {loop_s:.1f} s wall, {loop_cpu:.1f} s CPU", flush=True)
    return {
        **figures,
        "ingest_ratio": round(loop_s / run.seconds, 3),
        "loop_s": round(loop_s, 2),
        "loop_cpu_s": round(loop_cpu, 2),
        "cpu_ratio": round(WORKERS * loop_cpu / cpu, 3),
    }


def _line(figures: dict[str, float]) -> str:
    return " ".join(f"{k}={v:g}" for k, v in figures.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_600_000, help="submissions (1x)")
    parser.add_argument("--growth", action="store_true", help="also run 4x, print mem_growth")
    parser.add_argument("--work", type=Path, help="where the dump and run go (a temp folder)")
    parser.add_argument(
        "--loop",
        choices=("all", "1x", "none"),
        default="all",
        help="run the plain-loop baseline at every size, at 1x only, or never",
    )
    parser.add_argument("--dumps", type=Path, help="keep the generated dumps here and reuse them")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        one = measure(args.n, Path(tmp) / "1x", args.loop != "none", args.dumps)
        if args.growth:
            four = measure(4 * args.n, Path(tmp) / "4x", args.loop == "all", args.dumps)
            one["mem_growth"] = round(four["ingest_peak_mb"] / one["ingest_peak_mb"], 3)
            one["time_growth"] = round(four["ingest_s"] / one["ingest_s"], 3)
            one["cpu_growth"] = round(four["ingest_cpu_s"] / one["ingest_cpu_s"], 3)
            print(f"4x: {_line(four)}")
    print_context(n=args.n, workers=WORKERS, growth=args.growth, loop=args.loop)
    print(f"scale_ingest: {_line(one)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
