"""Beam pipeline options from the typed output settings, the same for every stage that runs Beam."""

from __future__ import annotations

import logging
import os

from apache_beam.options.pipeline_options import PipelineOptions

from foundation.config import OutputConfig


def harness_log_level() -> str:
    """Beam's workers log their harness's INFO only when the driver shows Beam's (``-v``)."""
    return "INFO" if logging.getLogger("apache_beam").isEnabledFor(logging.INFO) else "WARNING"


def on_dask(beam_args: tuple[str, ...]) -> bool:
    """Whether these Beam args pick Beam's DaskRunner."""
    return any(a.startswith("--runner") and a.endswith("DaskRunner") for a in beam_args)


def beam_options(cfg: OutputConfig, dask_partitions: str | None = None) -> PipelineOptions:
    """FnApiRunner in multi-processing mode on every core unless Beam args say otherwise.

    ``dask_partitions`` (``--dask_partition_size=1``, ``--dask_npartitions=N``): how a job that
    has no side inputs cuts its Creates on Dask, the only place Dask splits work (see
    docs/cluster.md); added only on Dask and only when the Beam args set neither option.
    """
    workers = cfg.workers or os.cpu_count() or 1
    defaults = [
        "--runner=FnApiRunner",
        f"--direct_num_workers={workers}",
        "--direct_running_mode=multi_processing",
        f"--default_sdk_harness_log_level={harness_log_level()}",
    ]
    user_set = any(
        a.startswith(("--dask_partition_size", "--dask_npartitions")) for a in cfg.beam_args
    )
    if dask_partitions and on_dask(cfg.beam_args) and not user_set:
        defaults.append(dask_partitions)
    # Later flags win in Beam's argparse, so the user's --runner and the rest take precedence.
    return PipelineOptions([*defaults, *cfg.beam_args])
