"""``webtext run CONFIG``: the whole job, ingest -> contamination -> tokenize -> train -> eval.

A rerun skips the stages already complete for this config (``webtext/run.py`` says how), so
after a failure or a change of training settings only what is needed runs again.
"""

from __future__ import annotations

import argparse
import sys

from foundation.config import JobConfig
from webtext.commands.options import add_config_flags, resolve_config

SECTIONS = tuple(JobConfig.__dataclass_fields__)[1:]  # every section (not the job's name)


def register(subparsers: argparse._SubParsersAction) -> None:
    from webtext.run import STAGES

    parser = subparsers.add_parser(
        "run",
        help="run every stage of a job, skipping the ones already complete",
        description=(
            "Ingest (with dedup), check contamination, tokenize, train, sample and evaluate "
            "(on the contamination test sets, clean vs dirty) for one job config. Stages whose "
            "outputs are complete for the same settings are skipped, so rerun the same "
            "command after a failure or after changing the training settings. "
            "Training runs in this process; for several GPUs stop at --until tokenize and "
            "start `webtext train` under torchrun."
        ),
    )
    parser.add_argument("job", nargs="?", metavar="CONFIG", help="job config (TOML)")
    parser.add_argument("--until", choices=STAGES, default=STAGES[-1], help="last stage to run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_config_flags(parser, SECTIONS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.job and args.config:
        print("webtext run: give the config once (CONFIG or --config)", file=sys.stderr)
        return 2
    args.config = args.config or args.job
    cfg = resolve_config(args)
    return run_and_report(cfg, args.until, progress=not args.no_progress)


def run_and_report(cfg: JobConfig, until: str, progress: bool) -> int:
    """Run the job, print what ran and where its outputs are."""
    from foundation import storage
    from webtext.run import run_job
    from webtext.status import format_status, run_status

    result = run_job(cfg, until=until, progress=progress)
    ran = ", ".join(f"{s} ({result.seconds[s]:.0f}s)" for s in result.ran) or "nothing"
    print(f"\nRan: {ran}. Already complete: {', '.join(result.skipped) or 'nothing'}.")
    print(format_status(cfg.output.run_dir, run_status(cfg.output.run_dir)))
    outputs = result.outputs()
    print("\nOutputs:")
    for label, path in outputs.items():
        print(f"  {label:<22}{path}")
    if "sample" in outputs:
        print("\nSample:\n" + storage.read_text(outputs["sample"]).strip())
    return 0
