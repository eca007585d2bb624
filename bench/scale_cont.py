"""Contamination check at real size: one big training text through ``webtext contamination
check``, as a user runs it, with the process tree's peak memory sampled.

Input (generated, seeded, streamed to disk): a training text of ``n`` MB, one document of 200
Zipf-distributed words per line (bench/zipf_text.py: nearly every 8-gram distinct, as in web
text), and a small test set: 50 fresh lines and 50 that repeat the first 40 words of a training
line (planted overlap). Targets (issue 16): peak <= 1.5x the filter + 1 GB, >= 10 MB/s.

    .venv/bin/python bench/scale_cont.py [--n 400] [--growth]

Last line: ``scale_cont: cont_peak_mb=... cont_mb_per_s=... cont_filter_mb=... cont_s=...``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.context import print_context  # noqa: E402
from bench.process_tree import run_measured  # noqa: E402
from bench.zipf_text import zipf_lines  # noqa: E402

PLANTED = 50
PLANTED_WORDS = 40


def generate(mb: int, work: Path) -> tuple[Path, Path]:
    """The training text (``mb`` MB) and the test set, written batch by batch."""
    train, test = work / "train.txt", work / "test.txt"
    planted: list[str] = []
    with train.open("wb") as f:
        for batch in zipf_lines(mb * 1_000_000, seed=0):
            f.write(batch)
            for line in batch[:20_000].decode().splitlines()[:3]:  # a few from every batch
                if len(planted) < PLANTED:
                    planted.append(" ".join(line.split()[:PLANTED_WORDS]))
    fresh = b"".join(zipf_lines(PLANTED * 1200, seed=1)).decode().splitlines()[:PLANTED]
    test.write_text("\n".join(planted + fresh) + "\n")
    return train, test


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(n: int, work: Path) -> dict[str, float]:
    """Generate ``n`` MB of training text under ``work``, run the check, return its figures."""
    train, test = generate(n, work)
    out = work / "contamination"
    argv = [sys.executable, "-m", "webtext.cli", "contamination", "check",
            "--train", str(train), "--test", f"planted={test}", "--out", str(out),
            "--contamination-text-docs", "line"]  # fmt: skip
    cpu = cpu_children()
    m = run_measured(argv, cwd=str(ROOT))
    cpu = cpu_children() - cpu
    if m.returncode:
        raise SystemExit(f"contamination check failed ({m.returncode}):\n{m.output[-3000:]}")
    report = json.loads((out / "report.json").read_text())
    mb = train.stat().st_size / 1e6
    filter_mb = (out / "bloom.bin").stat().st_size / 1e6
    planted = report["test_sets"]["planted"]
    print(
        f"{mb:.0f} MB: {m.seconds:.1f} s wall, {cpu:.1f} CPU s, peak {m.peak_mb:.0f} MB, "
        f"filter {filter_mb:.0f} MB (target peak <= {1.5 * filter_mb + 1000:.0f} MB); "
        f"planted: {planted['hits']}/{planted['ngrams']} 8-grams found, "
        f"{planted['per_document']['above_pct_share']['1.0'] * 100:.0f}% of docs above 1%",
        flush=True,
    )
    return {
        "cont_peak_mb": m.peak_mb,
        "cont_mb_per_s": mb / m.seconds,
        "cont_filter_mb": filter_mb,
        "cont_s": m.seconds,
        "cont_cpu_s": cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="MB of training text")
    parser.add_argument("--growth", action="store_true", help="also run 4x the size")
    parser.add_argument("--work", type=Path, help="where inputs and outputs go (a temp folder)")
    args = parser.parse_args(argv)
    print_context(n_mb=args.n, growth=args.growth)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        figures = measure(args.n, Path(tmp))
        if args.growth:
            shutil.rmtree(tmp)
            Path(tmp).mkdir()
            four = measure(4 * args.n, Path(tmp))
            figures["mem_growth"] = four["cont_peak_mb"] / figures["cont_peak_mb"]
            figures["time_growth"] = four["cont_s"] / figures["cont_s"]
    print("scale_cont: " + " ".join(f"{k}={v:.3g}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
