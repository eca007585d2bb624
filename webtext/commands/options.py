"""Shared CLI plumbing: config flags generated from the dataclasses, and config resolution.

Every field of the job config's sections gets a flag, ``--SECTION-FIELD`` (``--fetch-max-bytes``),
so the CLI and the TOML file can set exactly the same things and no flag is silently ignored.
"""

from __future__ import annotations

import argparse
import typing
from typing import Any

from foundation import storage
from foundation.config import JobConfig, flag_fields, with_overrides
from foundation.layout import RunLayout

_UNSET = object()


def add_config_flags(parser: argparse.ArgumentParser, sections: tuple[str, ...]) -> None:
    """Add ``--config`` and one flag per field of the given JobConfig sections."""
    parser.add_argument("--config", metavar="TOML", help="job config file (TOML)")
    for section in sections:
        group = parser.add_argument_group(f"{section} settings")
        for flag, path, tp in flag_fields(JobConfig):
            if not path.startswith(section + "."):
                continue
            origin = typing.get_origin(tp)
            metavar = "A,B,..." if origin is tuple else path.split(".")[-1].upper()
            group.add_argument(
                f"--{flag}",
                dest=f"cfg:{path}",
                default=_UNSET,
                metavar=metavar,
                help=f"{path} ({_type_name(tp)})",
            )


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def resolve_config(args: argparse.Namespace, **fixed: Any) -> JobConfig:
    """TOML file (if any), then CLI flags, then ``fixed`` dotted-path values from positionals."""
    cfg = JobConfig.from_toml(args.config) if getattr(args, "config", None) else JobConfig()
    overrides = {
        key.removeprefix("cfg:"): value
        for key, value in vars(args).items()
        if key.startswith("cfg:") and value is not _UNSET
    }
    overrides.update({k: v for k, v in fixed.items() if v is not None})
    return with_overrides(cfg, overrides) if overrides else cfg


def write_resolved_config(cfg: JobConfig, layout: RunLayout, job: str) -> str:
    """Record the resolved config of a job that ran in the run directory (``config/JOB.json``);
    written after the job, so a mistyped run directory is not created."""
    path = layout.config(job)
    storage.write_text(path, cfg.to_json() + "\n")
    return path
