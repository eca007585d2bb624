"""Extraction quality: our extraction settings against trafilatura's defaults on gold pages.

Usage: python bench/extraction_quality.py DIR [--verbose] [--limit N] [--sandbox]

DIR is laid out like ../shared/corpus/pages: ``gold.json`` maps each page to its entry, with
``stored_as`` (the gzipped HTML under DIR) and the ``with`` / ``without`` snippet lists. Scoring
follows trafilatura's own evaluation: a ``with`` snippet found in the text is a true positive,
missing a false negative; a ``without`` snippet present is a false positive, absent a true
negative. A page with no extraction has all its ``with`` snippets missing.

"ours" goes through :func:`pipeline.extraction.extract_document` on a FetchResult built from the
page (the code path of the pipeline, with ``ExtractConfig()`` defaults); "baseline" is
``trafilatura.extract(html)`` with every default. ``--sandbox`` also runs ours through the
child process the Extract stage uses, checks it gives the same rows, and reports its overhead, both
as the difference in wall time and as the median round trip of a page to a child that returns
at once (the IPC cost alone, which load from other processes barely moves).
Timings are wall-clock per page, measured interleaved page by page so that load from other
processes affects every variant alike.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.context import print_context
from foundation.config import ExtractConfig
from foundation.records import Candidate, FetchResult
from pipeline.extraction import extract_document, warm_up
from pipeline.sandbox import Sandbox, Zygote


@dataclass
class Score:
    tp: int = 0
    fn: int = 0
    fp: int = 0
    tn: int = 0
    seconds: float = 0.0
    pages_with_text: int = 0
    per_page: list[tuple[int, int, int, int]] = field(default_factory=list)

    def add(self, text: str, with_: list[str], without: list[str]) -> None:
        tp = sum(1 for s in with_ if s in text)
        fp = sum(1 for s in without if s in text)
        counts = (tp, len(with_) - tp, fp, len(without) - fp)
        self.per_page.append(counts)
        self.tp, self.fn = self.tp + counts[0], self.fn + counts[1]
        self.fp, self.tn = self.fp + counts[2], self.tn + counts[3]
        self.pages_with_text += bool(text)

    @property
    def precision(self) -> float:
        return self.tp / max(1, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return self.tp / max(1, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return 2 * self.tp / max(1, 2 * self.tp + self.fp + self.fn)

    @property
    def accuracy(self) -> float:
        return (self.tp + self.tn) / max(1, self.tp + self.tn + self.fp + self.fn)

    def line(self, name: str, pages: int) -> str:
        return (
            f"{name:<10} precision={self.precision:.3f} recall={self.recall:.3f} "
            f"f1={self.f1:.3f} accuracy={self.accuracy:.3f} "
            f"with_found={self.tp}/{self.tp + self.fn} "
            f"without_absent={self.tn}/{self.tn + self.fp} "
            f"empty_pages={pages - self.pages_with_text} "
            f"ms_per_page={1000 * self.seconds / max(1, pages):.1f}"
        )


def child_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a child process so far (Linux /proc; 0 elsewhere)."""
    stat = Path(f"/proc/{pid}/stat")
    if pid is None or not stat.exists():
        return 0.0
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fetch_result(url: str, html: bytes) -> FetchResult:
    candidate = Candidate("0" * 32, url, url, "bench.invalid", 3, 0, ())
    return FetchResult(candidate, "fetched", 200, url, "text/html", html, None, 0)


def text_of(out: dict | object) -> str:
    return out["text"] if isinstance(out, dict) else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="folder with gold.json and the gzipped pages")
    parser.add_argument("--verbose", action="store_true", help="print a per-page table")
    parser.add_argument("--limit", type=int, default=0, help="only the first N pages")
    parser.add_argument("--sandbox", action="store_true", help="also time the child process")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # trafilatura warns for every odd page

    import trafilatura

    gold = json.loads((args.dir / "gold.json").read_text(encoding="utf-8"))
    entries = sorted(gold.items())
    if args.limit:
        entries = entries[: args.limit]
    cfg = ExtractConfig()
    ours, base, boxed = Score(), Score(), Score()
    mismatches = 0
    zygotes = [
        Zygote("pipeline.extraction:extract_document", warm_up="pipeline.extraction:warm_up"),
        Zygote("builtins:id"),  # returns at once: the bare cost of shipping a page over
    ]
    sandbox, echo = (Sandbox(zygote) for zygote in zygotes)
    round_trips: list[float] = []
    cpu = {"ours": 0.0, "sandboxed": 0.0}
    if args.sandbox:
        sandbox.start()
        echo.start()
    warm_up()  # load models before timing, for both variants
    trafilatura.extract(b"<html><body><p>warm-up</p></body></html>")
    rows = []
    for url, entry in entries:
        html = gzip.decompress((args.dir / entry["stored_as"]).read_bytes())
        page = fetch_result(url, html)
        t0 = time.perf_counter()
        baseline_text = trafilatura.extract(html) or ""
        t1, c1 = time.perf_counter(), time.process_time()
        out = extract_document(page, cfg)
        t2 = time.perf_counter()
        cpu["ours"] += time.process_time() - c1
        base.seconds += t1 - t0
        ours.seconds += t2 - t1
        our_text = text_of(out)
        base.add(baseline_text, entry["with"], entry["without"])
        ours.add(our_text, entry["with"], entry["without"])
        if args.sandbox:
            t3, c3, k3 = time.perf_counter(), time.process_time(), child_cpu_s(sandbox.pid)
            boxed_out = sandbox.call(page, cfg, timeout_s=60)
            boxed.seconds += time.perf_counter() - t3
            own = time.process_time() - c3
            cpu["sandboxed"] += own + child_cpu_s(sandbox.pid) - k3
            boxed.add(text_of(boxed_out), entry["with"], entry["without"])
            mismatches += boxed_out != out
            t4 = time.perf_counter()
            echo.call(page, timeout_s=60)
            round_trips.append(time.perf_counter() - t4)
        rows.append((entry["file"], ours.per_page[-1], base.per_page[-1]))
    for process in (sandbox, echo, *zygotes):
        process.close()

    n = len(entries)
    if args.verbose:
        print(f"{'page':<60} ours tp/fn/fp/tn   baseline tp/fn/fp/tn")
        for name, o, b in rows:
            flag = "" if o == b else ("  +" if o[0] - o[2] > b[0] - b[2] else "  -")
            print(f"{name[:60]:<60} {'/'.join(map(str, o)):<17}  {'/'.join(map(str, b))}{flag}")
    print(f"settings: {cfg}")
    print(ours.line("ours", n))
    print(base.line("baseline", n))
    if args.sandbox:
        print(boxed.line("sandboxed", n))
        overhead = 1000 * (boxed.seconds - ours.seconds) / max(1, n)
        median = 1000 * statistics.median(round_trips)
        cpu_overhead = 1000 * (cpu["sandboxed"] - cpu["ours"]) / max(1, n)
        print(
            f"sandbox: cpu_ms_per_page ours={1000 * cpu['ours'] / max(1, n):.1f} "
            f"sandboxed={1000 * cpu['sandboxed'] / max(1, n):.1f} "
            f"cpu_overhead_ms_per_page={cpu_overhead:.2f} "
            f"wall_overhead_ms_per_page={overhead:.2f} "
            f"page_round_trip_median_ms={median:.3f} rows_differing={mismatches}"
        )
    better = sum(1 for _, o, b in rows if o[0] - o[2] > b[0] - b[2])
    worse = sum(1 for _, o, b in rows if o[0] - o[2] < b[0] - b[2])
    print(f"pages where ours is better={better} worse={worse} same={n - better - worse}")
    print_context(pages=n, sandbox=args.sandbox)
    print(
        f"extraction_quality: f1={ours.f1:.4f} baseline_f1={base.f1:.4f} pages={n} "
        f"precision={ours.precision:.4f} recall={ours.recall:.4f} "
        f"baseline_precision={base.precision:.4f} baseline_recall={base.recall:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
