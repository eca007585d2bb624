"""``webtext train``: GPT-2 on a run's token shards (one process, or many under torchrun)."""

from __future__ import annotations

import argparse
import logging
import os

from foundation.layout import RunLayout
from webtext.commands.options import add_config_flags, resolve_config, write_resolved_config

log = logging.getLogger(__name__)

SECTIONS = ("model", "train", "contamination")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train GPT-2 on token shards (checkpoints, metrics, loss curve)",
        description=(
            "Train a GPT-2 on RUN_DIR/tokens, writing checkpoints, metrics.jsonl and loss.png "
            "into RUN_DIR/train. The text shards the tokens came from must have a current "
            "contamination report under the threshold (or pass --allow-contaminated). For "
            "several processes run the same command under torchrun: "
            "`torchrun --standalone --nproc_per_node=N -m webtext.cli train ...`."
        ),
    )
    parser.add_argument("run_dir", nargs="?", help="run directory (output.run_dir)")
    parser.add_argument("--tokens", help="token directory (default RUN_DIR/tokens)")
    parser.add_argument("--out", help="checkpoint/metrics directory (default RUN_DIR/train)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument(
        "--allow-contaminated",
        action="store_true",
        help="train even if the contamination report is missing, stale or over the threshold",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(parser, SECTIONS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trainer.stages import run_train

    fixed = {"output.run_dir": args.run_dir}
    if args.allow_contaminated:
        fixed["train.allow_contaminated"] = True
    cfg = resolve_config(args, **fixed)
    layout = RunLayout.at(cfg.output.run_dir, tokens=args.tokens, train=args.out)
    summary = run_train(cfg, layout, resume=args.resume, progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":
        write_resolved_config(cfg, layout, "train")
        print(summary)
    return 0
