"""``webtext train``: GPT-2 on a run's token shards (one process, or many under torchrun)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from foundation import storage
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
    from contamination.gate import ContaminationGateError
    from trainer.checkpoint import CheckpointError
    from trainer.tokens import TokenShardError
    from trainer.train import TrainingDiverged, train

    fixed = {"output.run_dir": args.run_dir}
    if args.allow_contaminated:
        fixed["train.allow_contaminated"] = True
    cfg = resolve_config(args, **fixed)
    tokens = args.tokens or storage.join(cfg.output.run_dir, "tokens")
    out = args.out or storage.join(cfg.output.run_dir, "train")
    if os.environ.get("RANK", "0") == "0":
        write_resolved_config(cfg, "train")
    try:
        result = train(cfg, tokens, out, resume=args.resume, progress=not args.no_progress)
    except (ContaminationGateError, TrainingDiverged, CheckpointError, TokenShardError) as e:
        print(f"webtext train: {e}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":
        what = "interrupted" if result.interrupted else "finished"
        val = f", val loss {result.val_loss:.4f}" if result.val_loss is not None else ""
        print(f"train {what} at step {result.step}{val}; checkpoint {result.checkpoint}")
    return 0
