"""Every stage at real size, as a user runs it, against its baseline: issue 16's figures.

Each stage's bench (``bench/scale_<stage>.py``) generates its synthetic input at a size, runs
the ``webtext`` command under :func:`bench.process_tree.run_measured` (the peak RSS of the whole
process tree) and its baseline, and returns its figures. This script runs them at 1x and, with
``--growth``, at 4x, and prints one line for the lot. ``mem_growth`` is the largest 4x/1x ratio
of peak memory over the stages (1.0 means flat), ``time_growth`` the largest 4x/1x ratio of wall
time (4.0 means linear).

    .venv/bin/python bench/scale.py [--stages ingest,pages,dedup,cont] [--growth] [--scale 0.25]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.context import print_context

SIZES = {"ingest": 1_600_000, "pages": 20_000, "dedup": 80_000, "cont": 400}
"""The issue's 1x sizes: submissions, pages, documents, MB of training text."""
REPORTED = {
    "ingest": ("ingest_peak_mb", "ingest_ratio"),
    "pages": ("pages_peak_mb",),
    "dedup": ("dedup_peak_mb", "dedup_ratio"),
    "cont": ("cont_peak_mb", "cont_mb_per_s"),
}
WALL = {"ingest": "ingest_s", "pages": "wall_s", "dedup": "dedup_s", "cont": "cont_s"}
"""Each stage's wall seconds, for ``time_growth`` (4 means linear)."""


def measure(stage: str, n: int, work: Path) -> dict[str, float]:
    """Run ``bench/scale_<stage>.py``'s ``measure`` at size ``n`` in a fresh folder of ``work``."""
    module = importlib.import_module(f"bench.scale_{stage}")
    folder = work / f"{stage}-{n}"
    folder.mkdir(parents=True)
    figures = module.measure(n, folder)
    print(f"{stage} n={n}: " + " ".join(f"{k}={v:g}" for k, v in figures.items()), flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default=",".join(SIZES), help="comma-separated subset")
    parser.add_argument("--growth", action="store_true", help="also run at 4x")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every 1x size")
    parser.add_argument("--work", type=Path, help="where inputs and runs go (a temp folder)")
    args = parser.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    unknown = set(stages) - set(SIZES)
    if unknown:
        parser.error(f"unknown stages {sorted(unknown)}; choose from {list(SIZES)}")
    sizes = {s: max(1, round(SIZES[s] * args.scale)) for s in stages}
    print_context(**{f"{s}_n": n for s, n in sizes.items()}, growth=args.growth)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        results, growth, slower = {}, [], []
        for stage in stages:
            one = measure(stage, sizes[stage], work)
            results.update({k: one[k] for k in REPORTED[stage]})
            if args.growth:
                four = measure(stage, 4 * sizes[stage], work)
                growth.append(four[f"{stage}_peak_mb"] / one[f"{stage}_peak_mb"])
                slower.append(four[WALL[stage]] / one[WALL[stage]])
    if growth:
        results.update(mem_growth=max(growth), time_growth=max(slower))
    print("scale: " + " ".join(f"{k}={_number(v)}" for k, v in results.items()))
    return 0


def _number(v: float) -> str:
    """Megabytes as whole numbers, ratios to three figures."""
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


if __name__ == "__main__":
    sys.exit(main())
