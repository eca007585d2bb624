"""Run a command as a user would and measure it: wall time and the peak RSS of its process tree.

Beam's local runner keeps shuffles in the driver and runs workers as child processes, so the
figure that decides whether a job fits a machine is the sum over the whole tree, sampled
(every 0.5 s by default) while the job runs: what this measures. A ``kind`` function names
each process's part (driver, worker, ...), so that the peaks of each part, and what each held
at the moment of the whole tree's peak, say where the memory is.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_mb: float
    returncode: int
    output: str
    kind_peak_mb: dict[str, float] = field(default_factory=dict)
    """Per kind: the highest sum of its processes' RSS in any one sample."""
    at_peak_mb: dict[str, float] = field(default_factory=dict)
    """Per kind: its share of the sample where the whole tree peaked."""
    process_peak_mb: dict[str, float] = field(default_factory=dict)
    """Per kind: the highest RSS of any one of its processes."""


def process_kind(p: psutil.Process, root: psutil.Process) -> str:
    """Which part of a ``webtext`` run process ``p`` is: the driver, a Beam SDK worker, an
    extraction zygote, an extraction child (forked from a zygote) or other."""
    if p.pid == root.pid:
        return "driver"
    cmd = " ".join(p.cmdline())
    if "sdk_worker_main" in cmd:
        return "worker"
    if "pipeline.sandbox" in cmd:
        parent = p.parent()
        is_child = parent is not None and "pipeline.sandbox" in " ".join(parent.cmdline())
        return "extract_child" if is_child else "zygote"
    return "other"


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of ``proc`` and every descendant (processes that vanish count 0)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def tree_rss_by(proc: psutil.Process, kind: Callable[[psutil.Process, psutil.Process], str]):
    """Per process of the tree: (its kind, its resident bytes); ``kind(p, root)``."""
    out = []
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            out.append((kind(p, proc), p.memory_info().rss))
    return out


def run_measured(
    argv: list[str],
    interval_s: float = 0.5,
    cwd: str | None = None,
    kind: Callable[[psutil.Process, psutil.Process], str] | None = None,
    report: Callable[[float, list[tuple[str, int]]], None] | None = None,
    report_s: float = 10.0,
) -> Measured:
    """Run ``argv`` to completion, sampling its process tree's RSS every ``interval_s``
    (by ``kind`` of process too, when given). ``report(elapsed, [(kind, rss), ...])`` sees the
    sample every ``report_s`` (and the largest since the last report), so a long run says
    which process grows and when."""
    start = time.perf_counter()
    child = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    proc, done = psutil.Process(child.pid), threading.Event()
    peak = [0]
    kind_peak: dict[str, int] = {}
    at_peak: dict[str, int] = {}
    process_peak: dict[str, int] = {}
    name = kind or (lambda p, root: "all")
    largest: list[tuple[str, int]] = []
    reported = [start]

    def sample() -> None:
        while not done.wait(interval_s):
            try:
                rows = tree_rss_by(proc, name)
            except psutil.Error:
                return
            if report is not None:
                if sum(r for _, r in rows) >= sum(r for _, r in largest):
                    largest[:] = rows
                if time.perf_counter() - reported[0] >= report_s:
                    reported[0] = time.perf_counter()
                    report(reported[0] - start, list(largest))
                    largest.clear()
            sums: dict[str, int] = {}
            for k, rss in rows:
                sums[k] = sums.get(k, 0) + rss
                process_peak[k] = max(process_peak.get(k, 0), rss)
            for k, total in sums.items():
                kind_peak[k] = max(kind_peak.get(k, 0), total)
            if sum(sums.values()) > peak[0]:
                peak[0] = sum(sums.values())
                at_peak.clear()
                at_peak.update(sums)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = child.communicate()
    done.set()
    sampler.join()

    def mb(d: dict[str, int]) -> dict[str, float]:
        return {k: round(v / 1e6, 1) for k, v in sorted(d.items())} if kind else {}

    return Measured(
        time.perf_counter() - start,
        peak[0] / 1e6,
        child.returncode,
        output,
        mb(kind_peak),
        mb(at_peak),
        mb(process_peak),
    )


def webtext(*args: str) -> list[str]:
    """The argv of ``webtext ARGS`` from this venv, as a user runs it."""
    return [str(VENV_BIN / "webtext"), *args]
