"""Beam pipeline options from the typed output settings, the same for every stage that runs Beam."""

from __future__ import annotations

import ctypes
import ctypes.util
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


MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Cap glibc's malloc arenas in this process and the workers it starts, unless the user set
    ``MALLOC_ARENA_MAX``.

    Why: glibc gives each thread that allocates concurrently its own arena (up to 8 per core),
    and memory freed into one is not reused by another. Beam's driver and workers run gRPC and
    bundle threads, so freed buffers piled up per arena: the ingest pages path at 20k pages
    peaked at 2.62 GB with the default and 2.11 GB with 2 arenas (docs/benchmarks.md). Workers,
    extraction zygotes and their children inherit the variable; this process, whose arenas
    already exist, is capped through ``mallopt`` for those made from now on.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    os.environ["MALLOC_ARENA_MAX"] = str(arenas)
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(_M_ARENA_MAX, arenas)
    except OSError:  # not glibc: the variable is harmless there
        pass


def beam_options(cfg: OutputConfig, dask_partitions: str | None = None) -> PipelineOptions:
    """FnApiRunner in multi-processing mode on every core unless Beam args say otherwise.

    ``dask_partitions`` (``--dask_partition_size=1``, ``--dask_npartitions=N``): how a job that
    has no side inputs cuts its Creates on Dask, the only place Dask splits work (see
    docs/cluster.md); added only on Dask and only when the Beam args set neither option.
    Malloc arenas are capped (:func:`limit_malloc_arenas`).
    """
    limit_malloc_arenas()
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
