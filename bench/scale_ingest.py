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

Last line: ``scale_ingest: ingest_peak_mb=... ingest_ratio=... ingest_s=... loop_s=...
candidates=...``.
"""

from __future__ import annotations

import argparse
import json
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
from bench.process_tree import run_measured  # noqa: E402

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


def measure(n: int, work: Path) -> dict[str, float]:
    """Generate ``n`` submissions under ``work``, run the URL stage and the loop; the figures."""
    work.mkdir(parents=True, exist_ok=True)
    dump = work / "RS_scale.zst"
    size = write_dump(dump, n)
    print(f"dump: {n:,} submissions, {size / 1e6:.0f} MB compressed", flush=True)
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
    run = run_measured(argv, cwd=str(ROOT))
    cpu = _children_cpu() - cpu_before
    if run.returncode != 0:
        raise SystemExit(f"ingest failed ({run.returncode}):\n{run.output[-3000:]}")
    manifest = json.loads((run_dir / "urls" / "_manifest.json").read_text())
    candidates = sum(f["rows"] for f in manifest["files"])
    t0 = time.perf_counter()
    loop_candidates, loop_cpu = plain_loop(dump)
    loop_s = time.perf_counter() - t0
    if loop_candidates != candidates:
        raise SystemExit(f"candidates differ: ingest {candidates}, loop {loop_candidates}")
    print(
        f"ingest: {run.seconds:.1f} s wall, {cpu:.1f} s CPU, {n / run.seconds:,.0f} subs/s, "
        f"peak {run.peak_mb:,.0f} MB; loop: {loop_s:.1f} s wall, {loop_cpu:.1f} s CPU; "
        f"{candidates:,} candidates",
        flush=True,
    )
    return {
        "ingest_peak_mb": round(run.peak_mb, 1),
        "ingest_ratio": round(loop_s / run.seconds, 3),
        "ingest_s": round(run.seconds, 2),
        "ingest_cpu_s": round(cpu, 2),
        "loop_s": round(loop_s, 2),
        "loop_cpu_s": round(loop_cpu, 2),
        "cpu_ratio": round(WORKERS * loop_cpu / cpu, 3),
        "candidates": candidates,
    }


def _line(figures: dict[str, float]) -> str:
    return " ".join(f"{k}={v:g}" for k, v in figures.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_600_000, help="submissions (1x)")
    parser.add_argument("--growth", action="store_true", help="also run 4x, print mem_growth")
    parser.add_argument("--work", type=Path, help="where the dump and run go (a temp folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        one = measure(args.n, Path(tmp) / "1x")
        if args.growth:
            four = measure(4 * args.n, Path(tmp) / "4x")
            one["mem_growth"] = round(four["ingest_peak_mb"] / one["ingest_peak_mb"], 3)
            one["time_growth"] = round(four["ingest_s"] / one["ingest_s"], 3)
            print(f"4x: {_line(four)}")
    print_context(n=args.n, workers=WORKERS, growth=args.growth)
    print(f"scale_ingest: {_line(one)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
