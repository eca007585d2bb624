"""Beam pipeline options from the typed output settings, the same for every stage that runs Beam."""

from __future__ import annotations

import logging
import os

from apache_beam.options.pipeline_options import PipelineOptions

from foundation.config import OutputConfig


def harness_log_level() -> str:
    """Beam's workers log their harness's INFO only when the driver shows Beam's (``-v``)."""
    return "INFO" if logging.getLogger("apache_beam").isEnabledFor(logging.INFO) else "WARNING"


DASK_PARTITIONING = ("--dask_partition_size", "--dask_npartitions")


def dask_defaults(beam_args: tuple[str, ...]) -> list[str]:
    """One ``beam.Create`` item per Dask partition, unless the Beam args say how to partition.

    DaskRunner (Beam 2.77) cuts a Create into partitions of 128 items; a partition is one task
    on one worker thread that keeps each step's whole output as a list of Python objects, and a
    GroupByKey keeps its input's partition count. Our Creates list coarse work (dump files,
    fetch units, shard files), so with the default all of a job's data ran as one task on one
    worker; with one item per partition the workers share it, as the local runner's do.
    """
    runner = [a for a in beam_args if a.startswith("--runner")]
    if not runner or "DaskRunner" not in runner[-1]:
        return []
    if any(a.startswith(DASK_PARTITIONING) for a in beam_args):
        return []
    return ["--dask_partition_size=1"]


def beam_options(cfg: OutputConfig) -> PipelineOptions:
    """FnApiRunner in multi-processing mode on every core unless Beam args say otherwise."""
    workers = cfg.workers or os.cpu_count() or 1
    defaults = [
        "--runner=FnApiRunner",
        f"--direct_num_workers={workers}",
        "--direct_running_mode=multi_processing",
        f"--default_sdk_harness_log_level={harness_log_level()}",
        *dask_defaults(cfg.beam_args),
    ]
    # Later flags win in Beam's argparse, so the user's --runner and the rest take precedence.
    return PipelineOptions([*defaults, *cfg.beam_args])
