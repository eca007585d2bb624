"""Log output of the ``webtext`` command: webtext's own lines, Beam's chatter only with ``-v``.

Beam logs at INFO and WARNING about its own machinery (type-hint conversions, gRPC servers,
option parsing) in the driver, and its FnApiRunner workers are subprocesses that write their
harness's log to the stderr they inherit. Neither says anything a webtext user can act on, so
by default the driver drops Beam's records below ERROR, and the workers log Beam's at WARNING
and webtext's packages' at INFO.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_WORKER_OPTIONS = Path(__file__).with_name("quiet_worker_options.json")
"""Options Beam's SDK worker reads from ``PIPELINE_OPTIONS_FILE``: FnApiRunner in
multi-processing mode hands its workers no pipeline options (Beam 2.77), so its workers'
log level can only reach them through their environment, which they inherit from us."""


class BeamChatter(logging.Filter):
    """Drops records below ERROR that Beam's own code logs, whatever logger it uses (some of
    its modules log on the root logger)."""

    def __init__(self, beam_dir: str | None) -> None:
        super().__init__()
        self.beam_dir = beam_dir

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        from_beam = record.name.startswith("apache_beam") or bool(
            self.beam_dir and record.pathname.startswith(self.beam_dir)
        )
        return not from_beam


def beam_dir() -> str | None:
    """Where apache_beam is installed, found without importing it (the CLI starts fast)."""
    spec = importlib.util.find_spec("apache_beam")
    if spec is None or not spec.submodule_search_locations:
        return None
    return next(iter(spec.submodule_search_locations))


def configure_logging(verbose: int) -> None:
    """INFO and webtext's lines by default; ``-v`` DEBUG with everything Beam says."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=FORMAT)
    if verbose:
        return
    chatter = BeamChatter(beam_dir())
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, BeamChatter) for f in handler.filters):  # main() runs again
            handler.addFilter(chatter)
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    os.environ.setdefault("PIPELINE_OPTIONS_FILE", str(QUIET_WORKER_OPTIONS))
