"""Run a command as a user would and measure it: wall time and the peak RSS of its process tree.

Beam's local runner keeps shuffles in the driver and runs workers as child processes, so the
figure that decides whether a job fits a machine is the sum over the whole tree, sampled
(every 0.5 s by default) while the job runs: what this measures.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_mb: float
    returncode: int
    output: str


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of ``proc`` and every descendant (processes that vanish count 0)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run_measured(argv: list[str], interval_s: float = 0.5, cwd: str | None = None) -> Measured:
    """Run ``argv`` to completion, sampling its process tree's RSS every ``interval_s``."""
    start = time.perf_counter()
    child = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    proc, peak, done = psutil.Process(child.pid), [0], threading.Event()

    def sample() -> None:
        while not done.wait(interval_s):
            try:
                peak[0] = max(peak[0], tree_rss(proc))
            except psutil.Error:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = child.communicate()
    done.set()
    sampler.join()
    return Measured(time.perf_counter() - start, peak[0] / 1e6, child.returncode, output)


def webtext(*args: str) -> list[str]:
    """The argv of ``webtext ARGS`` from this venv, as a user runs it."""
    return [str(VENV_BIN / "webtext"), *args]
