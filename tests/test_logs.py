"""The ``webtext`` command's log: Beam's harness chatter only with ``-v``."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.page_server import PageServer, article_html, submission, write_dump
from webtext.logs import BeamChatter, beam_dir

BOOTSTRAP = (
    "apitools not found",
    "Logging handler created.",
    "Load pipeline options from file",
)
"""What a Beam worker writes before it has read its log level: the only Beam lines left."""


def _ingest(tmp_path: Path, *flags: str) -> str:
    """stderr of ``webtext ingest`` on three local pages with two worker processes."""
    routes = {f"/{i}.html": article_html(i, 150) for i in range(3)}
    with PageServer(routes) as server:
        dump = tmp_path / "RS_logs.zst"
        write_dump(dump, [submission(i, server.base_url + p) for i, p in enumerate(routes)])
        env = {k: v for k, v in os.environ.items() if k != "PIPELINE_OPTIONS_FILE"}
        run_dir = tmp_path / f"run{len(flags)}"
        command = [sys.executable, "-m", "webtext.cli", *flags, "ingest", str(dump)]
        options = ["--run-dir", str(run_dir), "--output-workers", "2", "--no-progress"]
        local = ["--fetch-allow-addresses", "127.0.0.1"]
        done = subprocess.run(
            [*command, *options, *local],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


OURS = ("foundation", "pipeline", "dedup", "contamination", "trainer", "webtext")
"""webtext's packages: a worker writes their lines as ``LEVEL:name:message`` too."""


def _beam_lines(stderr: str) -> list[str]:
    """Lines Beam wrote: its driver-side loggers and its workers' ``LEVEL:name:`` lines."""
    worker_line = re.compile(r"^(DEBUG|INFO|WARNING):([\w.]+):")
    lines = []
    for line in stderr.splitlines():
        worker = worker_line.match(line)
        if worker and worker.group(2).split(".")[0] in OURS:
            continue
        if "apache_beam" in line or worker:
            lines.append(line)
    return lines


@pytest.mark.slow
def test_beam_harness_chatter_only_with_verbose(tmp_path):
    quiet = _ingest(tmp_path)
    assert [x for x in _beam_lines(quiet) if not any(b in x for b in BOOTSTRAP)] == [], quiet
    assert "INFO pipeline." in quiet, quiet  # our own lines stay
    assert "Python sdk harness exiting" in _ingest(tmp_path, "-v")


@pytest.mark.parametrize(
    ("name", "level", "pathname", "kept"),
    [
        ("apache_beam.runners.worker.sdk_worker", logging.INFO, "x.py", False),
        ("apache_beam.options.pipeline_options", logging.WARNING, "x.py", False),
        ("root", logging.WARNING, "{beam}/io/gcp/x.py", False),  # Beam logging on the root
        ("apache_beam.runners.worker.sdk_worker", logging.ERROR, "x.py", True),
        ("pipeline.extract", logging.WARNING, "pipeline/extract.py", True),
        ("root", logging.INFO, "webtext/x.py", True),
    ],
)
def test_beam_chatter_filter(name, level, pathname, kept):
    where = beam_dir()
    record = logging.LogRecord(name, level, pathname.format(beam=where), 1, "m", None, None)
    assert BeamChatter(where).filter(record) is kept
