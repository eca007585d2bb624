"""Scale of the ingest pages path: WARC replay -> extract -> quality -> dedup -> text shards.

The generator writes, streaming and seeded, a gzip WARC of ``n`` varied article pages (~2 KB of
HTML each) and a Pushshift-style .zst dump linking to them: about 3% of the pages repeat
another page's body (exact duplicates), 3% change one word of another (near duplicates), 2%
are captured twice (an older 503 and a newer 200: replay must pick the 200) and 1% of the
submissions link to pages the WARC lacks. ``webtext ingest DUMP --warc WARC`` then runs as a
user would, under :func:`bench.process_tree.run_measured` (the peak RSS of the whole process
tree, sampled every 0.5 s); the figures cover the whole command (its URL phase takes a few
seconds of them). Figures and their history: docs/benchmarks.md, design: docs/scale.md.

    python bench/scale_pages.py [--n 20000] [--growth] [--workers 2]

Prints each kind of process's peak (driver, Beam workers, extraction zygotes and children);
last line: ``scale_pages: pages_peak_mb=... wall_s=... cpu_s=... docs=... <kind>_peak_mb=...`` and,
with ``--growth``, ``peak4x_mb=... growth=...`` (memory at 4x n over memory at n).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.context import print_context  # noqa: E402
from bench.process_tree import VENV_BIN, process_kind, run_measured  # noqa: E402
from tests.page_server import WORDS  # noqa: E402

DEFAULT_N = 20_000
HOST = "news{}.example.com"


def page_html(rng: random.Random, seed: int) -> bytes:
    """An article page of 150-400 seeded words in 3-6 paragraphs, with boilerplate around it."""
    n_words = rng.randint(150, 400)
    n_par = rng.randint(3, 6)
    paragraphs = []
    for _ in range(n_par):
        words = [rng.choice(WORDS) for _ in range(n_words // n_par)]
        paragraphs.append("<p>" + " ".join(words).capitalize() + ".</p>")
    return (
        f"<html><head><title>Story {seed}</title><meta charset='utf-8'></head><body>"
        f"<nav><a href='/'>Home</a> <a href='/world'>World</a></nav>"
        f"<article><h1>Story {seed}</h1>{''.join(paragraphs)}</article>"
        f"<footer>Copyright {seed % 97} example news</footer></body></html>"
    ).encode()


def near_copy(html: bytes, rng: random.Random) -> bytes:
    """The page with one word of its article replaced: a near duplicate."""
    words = html.split(b" ")
    i = rng.randrange(len(words) // 3, len(words) - 5)
    words[i] = rng.choice(WORDS).encode()
    return b" ".join(words)


def page_url(i: int) -> str:
    return f"http://{HOST.format(i % 50)}/{2020 + i % 5}/story-{i}.html"


def generate(n: int, work: Path) -> tuple[Path, Path]:
    """Write ``work/pages.warc.gz`` and ``work/RS_pages.zst`` (streaming); their paths."""
    import zstandard

    from pipeline.warc import KEPT, WarcRecorder

    rng = random.Random(n)
    warc, dump = work / "pages.warc.gz", work / "RS_pages.zst"
    headers = (("Content-Type", "text/html; charset=utf-8"),)
    recent: list[bytes] = []
    with (
        WarcRecorder(str(warc), KEPT) as rec,
        open(dump, "wb") as raw,
        zstandard.ZstdCompressor(level=3).stream_writer(raw) as out,
    ):
        for i in range(n):
            url = page_url(i)
            roll = rng.random()
            if roll < 0.03 and recent:
                html = rng.choice(recent)  # an exact duplicate of a recent page
            elif roll < 0.06 and recent:
                html = near_copy(rng.choice(recent), rng)
            else:
                html = page_html(rng, i)
            recent = [*recent[-49:], html]
            t = 1_600_000_000 + i
            if rng.random() < 0.02:  # an older failed capture of the same URL
                rec.write(url, url, 503, "Unavailable", headers, b"busy", fetch_time=t - 86_400)
            rec.write(url, url, 200, "OK", headers, html, fetch_time=t)
            sub = {
                "id": f"p{i}",
                "subreddit": f"sub{i % 40}",
                "url": url,
                "score": 3 + int(rng.paretovariate(1.5)),
                "created_utc": t,
                "is_self": False,
                "over_18": False,
                "title": f"story {i}",
            }
            out.write((json.dumps(sub) + "\n").encode())
            if rng.random() < 0.01:  # a link the WARC does not hold
                missing = {**sub, "id": f"m{i}", "url": url.replace(".html", "-gone.html")}
                out.write((json.dumps(missing) + "\n").encode())
    return warc, dump


def ingest_argv(dump: Path, warc: Path, run_dir: Path, workers: int) -> list[str]:
    return [
        str(VENV_BIN / "python"),
        "-m",
        "webtext.cli",
        "ingest",
        str(dump),
        "--warc",
        str(warc),
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--output-workers",
        str(workers),
    ]


def _env_argv(argv: list[str]) -> list[str]:
    """``argv`` with PYTHONPATH set to this checkout, so Beam's workers import this code."""
    return ["env", f"PYTHONPATH={ROOT}", *argv]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(n: int, work: Path, workers: int = 2) -> dict[str, float]:
    """Generate ``n`` pages under ``work`` and measure ``webtext ingest`` over them."""
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    warc, dump = generate(n, work)
    print(f"generated {n} pages in {time.perf_counter() - start:.1f} s "
          f"(WARC {warc.stat().st_size / 1e6:.1f} MB)", flush=True)  # fmt: skip
    run_dir = work / "run"
    argv = _env_argv(ingest_argv(dump, warc, run_dir, workers))
    cpu = children_cpu()
    m = run_measured(argv, cwd=str(ROOT), kind=process_kind)
    cpu = children_cpu() - cpu
    if m.returncode != 0:
        raise RuntimeError(f"ingest failed ({m.returncode}):\n{m.output[-3000:]}")
    manifest = json.loads((run_dir / "shards" / "_manifest.json").read_text())
    docs = manifest["counts"].get("shards.documents", 0)
    print(f"ingest: {n} pages, {docs} documents, {m.seconds:.1f} s wall, {cpu:.1f} CPU s, "
          f"peak {m.peak_mb:.0f} MB; load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    for kind in m.kind_peak_mb:
        print(f"  {kind}: peak {m.kind_peak_mb[kind]:.0f} MB (largest process "
              f"{m.process_peak_mb[kind]:.0f} MB), {m.at_peak_mb.get(kind, 0):.0f} MB at the "
              "tree's peak", flush=True)  # fmt: skip
    return {
        "pages_peak_mb": round(m.peak_mb, 1),
        "wall_s": round(m.seconds, 2),
        "pages_per_s": round(n / m.seconds, 1),
        "cpu_s": round(cpu, 1),
        "docs": float(docs),
        "load": round(os.getloadavg()[0], 1),
        **{f"{kind}_peak_mb": mb for kind, mb in m.kind_peak_mb.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=DEFAULT_N, help="pages in the WARC")
    parser.add_argument("--growth", action="store_true", help="also run 4x n: growth")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scale_pages") as tmp:
        result = measure(args.n, Path(tmp) / "x1", args.workers)
        if args.growth:
            import shutil

            shutil.rmtree(Path(tmp) / "x1")
            big = measure(4 * args.n, Path(tmp) / "x4", args.workers)
            result["peak4x_mb"] = big["pages_peak_mb"]
            result["cpu4x_s"] = big["cpu_s"]
            result["growth"] = round(big["pages_peak_mb"] / result["pages_peak_mb"], 2)
            result["time_growth"] = round(big["wall_s"] / result["wall_s"], 2)
            result["cpu_growth"] = round(big["cpu_s"] / result["cpu_s"], 2)
    print_context(n=args.n, workers=args.workers, growth=args.growth)
    print("scale_pages: " + " ".join(f"{k}={v:g}" for k, v in result.items()))


if __name__ == "__main__":
    main()
