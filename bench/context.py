"""The machine and sizes a benchmark ran on, printed before its last line.

A figure means little without its context: the shared machine's cores and CPU model, the
library versions it depends on, and the sizes the bench was run at (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path

PACKAGES = ("apache-beam", "trafilatura", "torch", "tokenizers", "datasketch", "pyarrow")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages the benches time, leaving out those not installed."""
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def print_context(**sizes: object) -> None:
    """Print one ``context:`` line: cores, CPU, Python and library versions, then ``sizes``."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    fields = {
        "cores": usable,
        "cpu": cpu_model(),
        "python": platform.python_version(),
        **versions(),
        **sizes,
    }
    print("context: " + " ".join(f"{k}={_value(v)}" for k, v in fields.items()), flush=True)


def _value(value: object) -> str:
    """``value`` as one token: quoted when it holds spaces (a CPU model name)."""
    text = str(value)
    return json.dumps(text) if " " in text else text
