"""``webtext export``: a checkpoint to a Hugging Face GPT2LMHeadModel directory."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a checkpoint as a Hugging Face GPT-2 (config.json, model.safetensors)",
        description=(
            "Export a checkpoint to OUT_DIR in the layout transformers' GPT2LMHeadModel and "
            "AutoTokenizer load with from_pretrained(OUT_DIR)."
        ),
    )
    parser.add_argument("checkpoint", help="checkpoint file or checkpoint directory")
    parser.add_argument("out_dir")
    parser.add_argument("--tokenizer", help="tokenizer.json (default: the one the run used)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from foundation import storage
    from foundation.layout import RunLayout
    from trainer.stages import run_export

    layout = RunLayout.at(storage.parent(args.checkpoint), train=args.checkpoint)
    print(run_export(layout, args.out_dir, args.tokenizer))
    return 0
