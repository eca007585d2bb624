"""Beam options from the output settings: the local runner by default, the user's runner wins,
and Dask gets one Create item per partition so that its workers share the work."""

from __future__ import annotations

from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.runners.dask.dask_runner import DaskOptions

from foundation.beam import beam_options
from foundation.config import OutputConfig

DASK = "--runner=apache_beam.runners.dask.dask_runner.DaskRunner"


def _dask(options) -> dict:
    return options.view_as(DaskOptions).get_all_options(drop_default=True, current_only=True)


def test_local_runner_by_default_with_no_dask_partitioning():
    options = beam_options(OutputConfig(workers=2))
    assert options.view_as(StandardOptions).runner == "FnApiRunner"
    assert "partition_size" not in _dask(options)


def test_dask_gets_one_create_item_per_partition():
    options = beam_options(OutputConfig(beam_args=(DASK, "--dask_client_address=tcp://h:1")))
    assert options.view_as(StandardOptions).runner.endswith("DaskRunner")
    assert _dask(options)["partition_size"] == 1


def test_the_users_dask_partitioning_wins():
    options = beam_options(OutputConfig(beam_args=(DASK, "--dask_npartitions=8")))
    assert _dask(options)["npartitions"] == 8
    assert "partition_size" not in _dask(options)
