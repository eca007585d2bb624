"""Beam pipeline options from the typed output settings, the same for every stage that runs Beam."""

from __future__ import annotations

import logging
import os

from apache_beam.options.pipeline_options import PipelineOptions

from foundation.config import OutputConfig


def harness_log_level() -> str:
    """Beam's workers log their harness's INFO only when the driver shows Beam's (``-v``)."""
    return "INFO" if logging.getLogger("apache_beam").isEnabledFor(logging.INFO) else "WARNING"


def beam_options(cfg: OutputConfig) -> PipelineOptions:
    """FnApiRunner in multi-processing mode on every core unless Beam args say otherwise."""
    workers = cfg.workers or os.cpu_count() or 1
    defaults = [
        "--runner=FnApiRunner",
        f"--direct_num_workers={workers}",
        "--direct_running_mode=multi_processing",
        f"--default_sdk_harness_log_level={harness_log_level()}",
    ]
    # Later flags win in Beam's argparse, so the user's --runner and the rest take precedence.
    return PipelineOptions([*defaults, *cfg.beam_args])
